package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// layerWriter streams a layer tar: clean, deterministic headers, hardlinks
// folded to the first path written, mtimes clamped.
type layerWriter struct {
	ctx context.Context
	// tw is where entries go: main, the tar written to the caller, or
	// (split) rest.
	tw, main *tar.Writer
	out      io.Writer // under main
	epoch    *int64
	exclude  map[string]bool
	// links maps a hardlinked file to the first path written in the part
	// of tw (mainLinks or restLinks): a link names a path before it.
	links, mainLinks, restLinks map[[2]uint64]string
	// pending holds unchanged directories on the current path, written
	// only when something below them is (tree diff).
	pending []pendingDir
	// copied is when the upper tree was copied from the lower one (tree
	// diff): a file whose ctime is older was not touched since, so equal
	// size and mtime prove it unchanged. Nil when unknown: such files
	// are compared by content.
	copied *unix.Timespec
	// buf carries file contents into tw: one buffer for the whole layer,
	// not one per file (io.Copy's), which kept the heap growing.
	buf []byte
	// The split part (DiffOptions.Split): its path relative to the root
	// ("" for the whole tree), whether a split was asked for, and whether
	// an entry in it was met. The other entries are held in rest (unless
	// omit) until the split part is written.
	split             string
	splitOn, sawSplit bool
	cut               func() error
	omit              bool
	rest              *tar.Writer
	restBuf           bytes.Buffer
}

type pendingDir struct {
	full, rel string
	st        *unix.Stat_t
}

// child is one directory entry of a walk, with the name it gets in the tar.
type child struct {
	name, rel, emit string
	st              *unix.Stat_t // nil for a deletion (tree diff)
	whiteout        bool
	inLower         bool
}

func newLayerWriter(ctx context.Context, w io.Writer, opts DiffOptions) *layerWriter {
	lw := &layerWriter{
		ctx:       ctx,
		main:      tar.NewWriter(w),
		out:       w,
		epoch:     opts.Epoch,
		exclude:   map[string]bool{},
		mainLinks: map[[2]uint64]string{},
	}
	lw.tw, lw.links = lw.main, lw.mainLinks
	for _, p := range opts.Exclude {
		if c := path.Clean("/" + p)[1:]; c != "" {
			lw.exclude[c] = true
		}
	}
	if opts.Split != "" {
		lw.splitOn, lw.split = true, path.Clean("/" + opts.Split)[1:]
		lw.cut, lw.omit = opts.Cut, opts.OmitSplit
		if !lw.omit {
			lw.rest, lw.restLinks = tar.NewWriter(&lw.restBuf), map[[2]uint64]string{}
		}
	}
	return lw
}

// underSplit reports whether rel is at or below the split part.
func (lw *layerWriter) underSplit(rel string) bool {
	return lw.splitOn && (lw.split == "" || rel == lw.split || strings.HasPrefix(rel, lw.split+"/"))
}

// at runs before the entry named rel is written: with a split, it
// directs the entry to the part it belongs to.
func (lw *layerWriter) at(rel string) error {
	if !lw.splitOn {
		return nil
	}
	in := lw.underSplit(rel)
	lw.sawSplit = lw.sawSplit || in
	if lw.omit || in {
		lw.tw, lw.links = lw.main, lw.mainLinks
	} else {
		lw.tw, lw.links = lw.rest, lw.restLinks
	}
	return nil
}

// end finishes the tar. With a split, the split part was written first:
// Cut is called after it (when it holds anything), then the other
// entries and the tar's end follow.
func (lw *layerWriter) end() error {
	switch {
	case lw.omit && !lw.sawSplit:
		return ErrSplit // nothing at the split
	case lw.rest != nil:
		if err := lw.main.Flush(); err != nil {
			return err
		}
		if lw.sawSplit && lw.cut != nil {
			if err := lw.cut(); err != nil {
				return err
			}
		}
		if err := lw.rest.Flush(); err != nil {
			return err
		}
		if _, err := lw.out.Write(lw.restBuf.Bytes()); err != nil {
			return err
		}
	}
	return lw.main.Close()
}

func (lw *layerWriter) mtime(sec int64) time.Time {
	if lw.epoch != nil && sec > *lw.epoch {
		sec = *lw.epoch
	}
	return time.Unix(sec, 0)
}

// entry writes the header (and content) of the file at full, named rel.
func (lw *layerWriter) entry(full, rel string, st *unix.Stat_t) error {
	if err := lw.at(rel); err != nil {
		return err
	}
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: lw.mtime(st.Mtim.Sec),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
	case unix.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets have no tar form
	}
	if hdr.Typeflag != tar.TypeDir && st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := lw.links[key]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			return lw.tw.WriteHeader(hdr)
		}
		lw.links[key] = rel
	}
	xs, err := xattrs(full)
	if err != nil {
		return err
	}
	if len(xs) > 0 {
		hdr.PAXRecords = make(map[string]string, len(xs))
		for _, x := range xs {
			hdr.PAXRecords[paxXattrPrefix+x.name] = string(x.value)
		}
	}
	if err := lw.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	f, err := os.OpenFile(full, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if lw.buf == nil {
		lw.buf = make([]byte, 32<<10)
	}
	if n, err := io.CopyBuffer(lw.tw, io.LimitReader(f, hdr.Size), lw.buf); err != nil || n < hdr.Size {
		if err == nil {
			err = io.EOF
		}
		return fmt.Errorf("copying %s: %w", rel, err)
	}
	return nil
}

// marker writes an empty whiteout-style entry.
func (lw *layerWriter) marker(name string) error {
	if err := lw.at(name); err != nil {
		return err
	}
	return lw.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		ModTime:  time.Unix(0, 0),
	})
}

func (lw *layerWriter) whiteout(rel string) error {
	dir, base := path.Split(rel)
	return lw.marker(dir + whiteoutPrefix + base)
}

func (lw *layerWriter) opaque(dirRel string) error {
	return lw.marker(dirRel + "/" + opaqueMarker)
}

// flush writes the pending directories.
func (lw *layerWriter) flush() error {
	for _, p := range lw.pending {
		if err := lw.entry(p.full, p.rel, p.st); err != nil {
			return err
		}
	}
	lw.pending = lw.pending[:0]
	return nil
}

// children lists dir's entries (dir relative to root) sorted by the name
// they get in the tar. With overlay set, whiteout devices become deletions.
func (lw *layerWriter) children(root, rel string, overlay bool) ([]child, error) {
	names, err := readDirNames(filepath.Join(root, rel))
	if err != nil {
		return nil, err
	}
	kids := make([]child, 0, len(names))
	for _, n := range names {
		c := child{name: n, rel: path.Join(rel, n), emit: n}
		if lw.exclude[c.rel] {
			continue
		}
		st, err := lstat(filepath.Join(root, c.rel))
		if err != nil {
			return nil, err
		}
		c.st = st
		if overlay && isWhiteout(st) {
			c.whiteout, c.emit = true, whiteoutPrefix+n
		} else if strings.HasPrefix(n, whiteoutPrefix) {
			return nil, fmt.Errorf("file %q has a whiteout name, which a layer cannot hold", c.rel)
		}
		kids = append(kids, c)
	}
	return kids, nil
}

func sortChildren(kids []child) {
	sort.Slice(kids, func(i, j int) bool { return kids[i].emit < kids[j].emit })
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// writeUpperDiff writes every entry under root. With overlay set, root is
// an overlay upper directory: whiteout devices become ".wh." entries and
// opaque directories get an opaque marker; trusted.overlay.* xattrs are
// never written.
func writeUpperDiff(ctx context.Context, root string, overlay bool, w io.Writer, opts DiffOptions) error {
	lw := newLayerWriter(ctx, w, opts)
	if err := lw.walk(root, "", overlay); err != nil {
		return err
	}
	return lw.end()
}

func (lw *layerWriter) walk(root, rel string, overlay bool) error {
	kids, err := lw.children(root, rel, overlay)
	if err != nil {
		return err
	}
	sortChildren(kids)
	for _, c := range kids {
		if err := lw.ctx.Err(); err != nil {
			return err
		}
		if lw.omit && lw.underSplit(c.rel) {
			if err := lw.at(c.rel); err != nil {
				return err
			}
			continue // left out, and all below it
		}
		if c.whiteout {
			if err := lw.whiteout(c.rel); err != nil {
				return err
			}
			continue
		}
		full := filepath.Join(root, c.rel)
		if err := lw.entry(full, c.rel, c.st); err != nil {
			return err
		}
		if !isDir(c.st) {
			continue
		}
		if overlay {
			if _, err := getXattr(full, overlayXattr("redirect")); err == nil {
				return fmt.Errorf("directory %q was renamed with redirect_dir, which a layer cannot express", c.rel)
			}
			if hasOpaque(full) {
				if err := lw.opaque(c.rel); err != nil {
					return err
				}
			}
		}
		if err := lw.walk(root, c.rel, overlay); err != nil {
			return err
		}
	}
	return nil
}

// writeTreeDiff writes the changes of the tree upper over the tree lower
// ("" for none). copied is when upper was copied from lower, nil when
// unknown (see layerWriter.copied).
func writeTreeDiff(ctx context.Context, upper, lower string, copied *unix.Timespec, w io.Writer, opts DiffOptions) error {
	if opts.OmitSplit {
		return fmt.Errorf("%w: a part can be left out of an overlay layer only", ErrSplit)
	}
	lw := newLayerWriter(ctx, w, opts)
	lw.copied = copied
	var err error
	if lower == "" {
		err = lw.walk(upper, "", false)
	} else {
		err = lw.compare(upper, lower, "")
	}
	if err != nil {
		return err
	}
	return lw.end()
}

func (lw *layerWriter) compare(upper, lower, rel string) error {
	kids, err := lw.children(upper, rel, false)
	if err != nil {
		return err
	}
	lowNames, err := readDirNames(filepath.Join(lower, rel))
	if err != nil {
		return err
	}
	inUpper := make(map[string]bool, len(kids))
	for _, c := range kids {
		inUpper[c.name] = true
	}
	inLower := make(map[string]bool, len(lowNames))
	for _, n := range lowNames {
		inLower[n] = true
		r := path.Join(rel, n)
		if !inUpper[n] && !lw.exclude[r] {
			kids = append(kids, child{name: n, rel: r, emit: whiteoutPrefix + n, whiteout: true})
		}
	}
	for i := range kids {
		kids[i].inLower = inLower[kids[i].name]
	}
	sortChildren(kids)
	for _, c := range kids {
		if err := lw.ctx.Err(); err != nil {
			return err
		}
		if err := lw.compareChild(upper, lower, c); err != nil {
			return err
		}
	}
	return nil
}

func (lw *layerWriter) compareChild(upper, lower string, c child) error {
	if c.whiteout {
		if err := lw.flush(); err != nil {
			return err
		}
		return lw.whiteout(c.rel)
	}
	full := filepath.Join(upper, c.rel)
	var lst *unix.Stat_t
	if c.inLower {
		var err error
		if lst, err = lstat(filepath.Join(lower, c.rel)); err != nil {
			return err
		}
	}
	if lst != nil && isDir(c.st) && isDir(lst) {
		same, err := lw.sameEntry(full, filepath.Join(lower, c.rel), c.st, lst)
		if err != nil {
			return err
		}
		if same {
			lw.pending = append(lw.pending, pendingDir{full, c.rel, c.st})
		} else if err := lw.flushEntry(full, c.rel, c.st); err != nil {
			return err
		}
		depth := len(lw.pending)
		if err := lw.compare(upper, lower, c.rel); err != nil {
			return err
		}
		if same && len(lw.pending) == depth {
			lw.pending = lw.pending[:depth-1] // nothing below changed
		}
		return nil
	}
	if lst != nil {
		same, err := lw.sameEntry(full, filepath.Join(lower, c.rel), c.st, lst)
		if err != nil || same {
			return err
		}
	}
	if err := lw.flushEntry(full, c.rel, c.st); err != nil {
		return err
	}
	if isDir(c.st) {
		return lw.walk(upper, c.rel, false) // new directory: all of it
	}
	return nil
}

func (lw *layerWriter) flushEntry(full, rel string, st *unix.Stat_t) error {
	if err := lw.flush(); err != nil {
		return err
	}
	return lw.entry(full, rel, st)
}

// sameEntry reports whether two entries of one type look unchanged. A
// regular file whose mtime changed but whose size and bytes did not counts
// as unchanged. Equal size and mtime are not enough: `cp -p`, `tar -x`
// and `touch -r` rewrite a file and put its old mtime back. Only a ctime
// older than the copy (which nothing can set) proves the file untouched;
// otherwise the bytes are compared.
func (lw *layerWriter) sameEntry(up, low string, ust, lst *unix.Stat_t) (bool, error) {
	if ust.Mode != lst.Mode || ust.Uid != lst.Uid || ust.Gid != lst.Gid {
		return false, nil
	}
	sameTime := ust.Mtim == lst.Mtim
	switch ust.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if !sameTime {
			return false, nil
		}
	case unix.S_IFREG:
		if ust.Size != lst.Size {
			return false, nil
		}
		if ust.Dev == lst.Dev && ust.Ino == lst.Ino {
			break // one file, seen through two views
		}
		if !sameTime || !lw.untouched(ust) {
			eq, err := sameContent(up, low)
			if err != nil || !eq {
				return false, err
			}
		}
	case unix.S_IFLNK:
		a, err := os.Readlink(up)
		if err != nil {
			return false, err
		}
		b, err := os.Readlink(low)
		if err != nil || a != b {
			return false, err
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if ust.Rdev != lst.Rdev {
			return false, nil
		}
	}
	ux, err := xattrs(up)
	if err != nil {
		return false, err
	}
	lx, err := xattrs(low)
	if err != nil {
		return false, err
	}
	if len(ux) != len(lx) {
		return false, nil
	}
	for i := range ux {
		if ux[i].name != lx[i].name || !bytes.Equal(ux[i].value, lx[i].value) {
			return false, nil
		}
	}
	return true, nil
}

// untouched reports whether the upper file st is known not to have
// changed since the upper tree was copied.
func (lw *layerWriter) untouched(st *unix.Stat_t) bool {
	c := lw.copied
	return c != nil && (st.Ctim.Sec < c.Sec || st.Ctim.Sec == c.Sec && st.Ctim.Nsec < c.Nsec)
}

func sameContent(a, b string) (bool, error) {
	fa, err := os.OpenFile(a, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.OpenFile(b, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64*1024), make([]byte, 64*1024)
	for {
		na, errA := io.ReadFull(fa, ba)
		nb, errB := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		doneA := errors.Is(errA, io.EOF) || errors.Is(errA, io.ErrUnexpectedEOF)
		doneB := errors.Is(errB, io.EOF) || errors.Is(errB, io.ErrUnexpectedEOF)
		if doneA || doneB {
			return doneA && doneB, nil
		}
		if errA != nil {
			return false, errA
		}
		if errB != nil {
			return false, errB
		}
	}
}
