package copier

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"
)

// Request describes one COPY or ADD.
type Request struct {
	SrcRoot string   // directory sources are relative to; nothing outside it is read
	Sources []string // paths or filepath.Match patterns relative to SrcRoot; with Add also http(s) URLs
	Dest    string   // destination as written; a relative one is relative to Workdir
	Workdir string   // the stage's WORKDIR, absolute; "" means "/"
	// DestRoot is the root filesystem written into; every write is resolved
	// inside it.
	DestRoot string
	// Ignore holds the .dockerignore patterns of the context (nil = none).
	Ignore *patternmatcher.PatternMatcher
	// Chown is the --chown value, resolved against DestRoot's /etc/passwd
	// and /etc/group; "" means root, or the source owner with KeepOwner.
	Chown string
	// KeepOwner keeps the source uid and gid when Chown is "" (COPY --from).
	KeepOwner bool
	// Chmod is the --chmod value, octal or symbolic (see ParseMode),
	// applied to copied files and directories from their source mode (not
	// to symlinks). An octal value also gives its permission bits to the
	// directories the copy creates for the destination, as in BuildKit.
	Chmod string
	// Add selects ADD semantics: local tar archives are extracted, URLs
	// downloaded, Git repositories (see IsGitURL) cloned.
	Add bool
	// Checksum ("sha256:<hex>", also sha384 and sha512) is verified against
	// each URL download and each local file source before anything is
	// written; for a Git source it is the commit (a prefix of its hex
	// name) that the ref must resolve to.
	Checksum string
	// Epoch, when set, is the mtime of downloaded files and of Git
	// checkouts (in seconds); otherwise downloads get their Last-Modified
	// header and checkouts the commit time.
	Epoch *int64
	// HTTPClient downloads URLs; nil means a default client with a timeout
	// that refuses the host's own addresses unless HostNetwork.
	HTTPClient *http.Client
	// HostNetwork lets URL and Git sources reach the host's loopback and
	// link-local addresses (the network.host entitlement); without it a
	// recipe cannot read services listening on the host's 127.0.0.1.
	HostNetwork bool

	// Exclude holds the --exclude patterns, in .dockerignore syntax. Each
	// is matched against the path of an entry relative to its match (the
	// directory named or matched as a source; with Parents, the pivot), as
	// BuildKit does: "*.tmp" excludes the top level only, "**/*.tmp" every
	// level, "!keep.tmp" makes an exception. A file matched by a wildcard
	// is also excluded when its name matches, as documented for
	// "COPY --exclude=*.txt hom* /dir/"; a source named without wildcards
	// never is.
	Exclude []string
	// Parents is COPY --parents: each source keeps its path relative to
	// SrcRoot, or to the pivot "/./" in it ("x/./y/z" keeps "y/z"), under
	// Dest, which is always a directory. Wildcards may use "**".
	Parents bool
	// Unpack is ADD --unpack: nil extracts local archives and never
	// downloads; false extracts nothing; true extracts downloads too.
	Unpack *bool
	// KeepGitDir is ADD --keep-git-dir: a Git source keeps its .git.
	KeepGitDir bool
	// Verify, when set, is called for every regular file copied from
	// SrcRoot (not one extracted from an archive or a Git checkout) with
	// its source and the SHA-256 of the content the copy read and wrote,
	// so each file is read once; an error from it fails the copy. Without
	// it the kernel copies (copy_file_range) and nothing is hashed.
	Verify func(s Source, sum []byte) error
}

// op is a Request being carried out.
type op struct {
	req      Request
	dest     string // clean absolute destination
	dirDest  bool   // the destination is a directory
	chown    *owner // nil without --chown
	created  newDir // owner and mode of directories created for the destination
	chmod    chmod  // nil without --chmod
	checksum *checksum
	commit   string    // for a Git source: the hex commit prefix of --checksum
	checkout *checkout // set while a Git checkout is copied
	dst      *tree
	links    map[[2]uint64]linkRef // hard links: source dev and inode to first copy
}

// linkRef locates the first copy of a hard-linked file.
type linkRef struct{ dir, name string }

// Copy carries out req: it selects the sources, then writes them into
// req.DestRoot.
func Copy(ctx context.Context, req Request) (err error) {
	o, err := newOp(req)
	if err != nil {
		return err
	}
	srcs, err := Select(req)
	if err != nil {
		return err
	}
	if len(srcs) == 0 {
		return nil // all excluded
	}
	if o.checksum != nil {
		for _, s := range srcs {
			if err := o.verifyLocal(s); err != nil {
				return err
			}
		}
	}
	if o.dst, err = openTree(req.DestRoot); err != nil {
		return err
	}
	defer o.dst.close()
	slash := o.dirDest
	for len(srcs) > 0 {
		// Each match goes into the destination if it is a directory by
		// now, else becomes it: several files onto a destination that is
		// not a directory overwrite each other, as in BuildKit.
		o.dirDest = slash || o.dst.isDir(o.dest)
		n := 1
		for n < len(srcs) && srcs[n].Match == srcs[0].Match {
			n++
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := o.copyMatch(ctx, srcs[:n]); err != nil {
			return err
		}
		srcs = srcs[n:]
	}
	return nil
}

func newOp(req Request) (*op, error) {
	if req.Workdir == "" {
		req.Workdir = "/"
	}
	o := &op{req: req, links: map[[2]uint64]linkRef{}}
	d := req.Dest
	o.dest = path.Clean(path.Join("/", req.Workdir, d))
	if path.IsAbs(d) {
		o.dest = path.Clean(d)
	}
	base := path.Base(d)
	o.dirDest = d == "" || strings.HasSuffix(d, "/") || base == "." || base == ".."
	if err := o.parseFlags(); err != nil {
		return nil, err
	}
	if req.Chown != "" {
		uid, gid, err := LookupOwner(req.DestRoot, req.Chown)
		if err != nil {
			return nil, fmt.Errorf("resolving --chown=%s: %w", req.Chown, err)
		}
		o.chown = &owner{uid, gid}
		o.created.owner = *o.chown
	}
	return o, nil
}

// Check validates the flags of req that need no file to check (--chown
// syntax, --chmod, --checksum), so that a builder can reject a bad step
// before it runs any step.
func Check(req Request) error {
	o := &op{req: req}
	return o.parseFlags()
}

// parseFlags parses --chmod and --checksum and checks the syntax of
// --chown, USER[:GROUP].
func (o *op) parseFlags() error {
	req := o.req
	if req.Chown != "" {
		if strings.Count(req.Chown, ":") > 1 {
			return fmt.Errorf("invalid --chown=%s: want USER[:GROUP]", req.Chown)
		}
	}
	if req.Chmod != "" {
		c, err := parseMode(req.Chmod)
		if err != nil {
			return err
		}
		o.chmod = c
		if m, err := ParseChmod(req.Chmod); err == nil {
			// BuildKit creates the destination's missing directories with
			// an octal --chmod's permission bits.
			o.created.mode, o.created.setMode = m&0o777, true
		}
	}
	if req.Checksum != "" {
		if err := o.parseChecksum(); err != nil {
			return err
		}
	}
	return nil
}

// parseChecksum reads --checksum: a commit for a Git source (which must
// then be the only source), else a content digest.
func (o *op) parseChecksum() error {
	s := o.req.Checksum
	for _, src := range o.req.Sources {
		if !o.req.Add || !IsGitURL(src) {
			continue
		}
		if len(o.req.Sources) != 1 {
			return errors.New("--checksum with a Git source: the Git source must be the only source")
		}
		if !commitPrefix.MatchString(s) {
			return fmt.Errorf("invalid --checksum=%s: for a Git source, want a commit (hex digits)", s)
		}
		o.commit = strings.ToLower(s)
		return nil
	}
	c, err := parseChecksum(s)
	if err != nil {
		return err
	}
	o.checksum = c
	return nil
}

// mode computes the mode a source entry with mode m is copied with.
func (o *op) mode(m uint32, dir bool) uint32 {
	if o.chmod == nil {
		return m
	}
	return o.chmod(m, dir)
}

// unpack reports whether an archive is extracted: a local one or a
// download.
func (o *op) unpack(download bool) bool {
	if !o.req.Add || o.checkout != nil {
		return false
	}
	if o.req.Unpack != nil {
		return *o.req.Unpack
	}
	return !download
}

// copyMatch copies one match: its first entry, then its walk if any.
func (o *op) copyMatch(ctx context.Context, srcs []Source) error {
	top := srcs[0]
	switch {
	case top.Git:
		return o.addGit(ctx, top.URL)
	case top.URL != "":
		return o.addURL(ctx, top.URL)
	case top.Info.IsDir():
		dir, err := o.dst.mkdirAll(o.dest, o.created)
		if err != nil {
			return err
		}
		return o.copyTree(ctx, dir, srcs[1:])
	}
	f, err := openSource(top)
	if err != nil {
		return err
	}
	defer f.Close()
	if top.Info.Mode().IsRegular() && o.unpack(false) {
		done, err := o.extractFile(ctx, f, top.Rel)
		if done || err != nil {
			return err
		}
	}
	target := o.dest
	if o.dirDest {
		target = path.Join(o.dest, top.Name)
	}
	dir, err := o.dst.mkdirAll(path.Dir(target), o.created)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := o.copyEntry(dir, path.Dir(target), path.Base(target), top, f); err != nil {
		return fmt.Errorf("copying %s to %s: %w", top.Rel, target, err)
	}
	return nil
}

// openSource opens a regular file source without following a symlink
// (Select already resolved a match inside SrcRoot); others give nil.
func openSource(s Source) (*os.File, error) {
	if !s.Info.Mode().IsRegular() {
		return nil, nil
	}
	f, err := os.OpenFile(s.Path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening source %s: %w", s.Rel, err)
	}
	return f, nil
}

// frame is a directory being copied: open, with metadata to set when done.
type frame struct {
	sub string
	dir *os.File
	m   *meta // nil for the destination directory itself, left as it was
}

// copyTree copies the walk below a directory match into dir, which it closes.
func (o *op) copyTree(ctx context.Context, dir *os.File, srcs []Source) (err error) {
	stack := []frame{{dir: dir}}
	pop := func() error {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		var err error
		if f.m != nil {
			err = finishDir(f.dir, *f.m)
		}
		if cerr := f.dir.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("copying to %s: %w", path.Join(o.dest, f.sub), err)
		}
		return nil
	}
	defer func() {
		for len(stack) > 0 {
			if perr := pop(); err == nil {
				err = perr
			}
		}
	}()
	for _, s := range srcs {
		if err := ctx.Err(); err != nil {
			return err
		}
		parent := path.Dir(s.Sub)
		if parent == "." {
			parent = ""
		}
		for stack[len(stack)-1].sub != parent {
			if err := pop(); err != nil {
				return err
			}
		}
		d := stack[len(stack)-1].dir
		name := path.Base(s.Sub)
		target := path.Join(o.dest, s.Sub)
		if s.Info.IsDir() {
			m, err := o.meta(s)
			if err != nil {
				return err
			}
			sub, err := makeDir(d, name, m, false)
			if err != nil {
				return fmt.Errorf("copying %s to %s: %w", s.Rel, target, err)
			}
			stack = append(stack, frame{sub: s.Sub, dir: sub, m: &m})
			continue
		}
		f, err := openSource(s)
		if err != nil {
			return err
		}
		err = o.copyEntry(d, path.Dir(target), name, s, f)
		if f != nil {
			f.Close()
		}
		if err != nil {
			return fmt.Errorf("copying %s to %s: %w", s.Rel, target, err)
		}
	}
	return nil
}

// copyEntry writes the non-directory s as name in dir (at dirPath in the
// destination); f is s opened when it is a regular file.
func (o *op) copyEntry(dir *os.File, dirPath, name string, s Source, f *os.File) error {
	m, err := o.meta(s)
	if err != nil {
		return err
	}
	st := s.Info.Sys().(*syscall.Stat_t)
	mode := s.Info.Mode()
	switch {
	case mode.IsRegular():
		if st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if ref, ok := o.links[key]; ok {
				old, err := o.dst.openDir(ref.dir)
				if err != nil {
					return err
				}
				defer old.Close()
				return makeLink(old, ref.name, dir, name)
			}
			o.links[key] = linkRef{dirPath, name}
		}
		if o.req.Verify == nil || o.checkout != nil {
			return writeFile(dir, name, f, m)
		}
		h := sha256.New()
		if err := writeFile(dir, name, hashReader{f, h}, m); err != nil {
			return err
		}
		return o.req.Verify(s, h.Sum(nil))
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(s.Path)
		if err != nil {
			return err
		}
		return makeSymlink(dir, name, target, m)
	case mode&fs.ModeNamedPipe != 0:
		return makeNode(dir, name, unix.S_IFIFO, 0, m)
	case mode&fs.ModeDevice != 0:
		typ := uint32(unix.S_IFBLK)
		if mode&fs.ModeCharDevice != 0 {
			typ = unix.S_IFCHR
		}
		return makeNode(dir, name, typ, st.Rdev, m)
	}
	return nil // sockets and other special files are skipped
}

// meta is the metadata a source entry is copied with.
func (o *op) meta(s Source) (meta, error) {
	st := s.Info.Sys().(*syscall.Stat_t)
	m := meta{
		mode:  st.Mode & 0o7777,
		mtime: time.Unix(st.Mtim.Unix()),
	}
	switch {
	case o.chown != nil:
		m.owner = *o.chown
	case o.req.KeepOwner && o.checkout == nil:
		m.owner = owner{int(st.Uid), int(st.Gid)}
	}
	if o.checkout != nil {
		m.mtime = o.checkout.mtime
	}
	if s.Info.Mode()&fs.ModeSymlink != 0 {
		return m, nil
	}
	if o.checkout != nil {
		m.mode = gitMode(m.mode, s.Info.IsDir())
	}
	m.mode = o.mode(m.mode, s.Info.IsDir())
	if o.checkout != nil {
		return m, nil // a checkout has no extended attributes of its own
	}
	if s.Info.Mode().IsRegular() || s.Info.IsDir() {
		xs, err := readXattrs(s.Path)
		if err != nil {
			return m, fmt.Errorf("reading xattrs of %s: %w", s.Rel, err)
		}
		m.xattrs = xs
	}
	return m, nil
}

// readXattrs lists the extended attributes of p (not following a symlink).
func readXattrs(p string) ([]xattr, error) {
	buf := make([]byte, 1024)
	n, err := unix.Llistxattr(p, buf)
	if err == unix.ERANGE {
		if n, err = unix.Llistxattr(p, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Llistxattr(p, buf)
		}
	}
	if err == unix.ENOTSUP {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []xattr
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		sz, err := unix.Lgetxattr(p, name, nil)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return nil, err
		}
		v := make([]byte, sz)
		sz, err = unix.Lgetxattr(p, name, v)
		if err != nil {
			return nil, err
		}
		out = append(out, xattr{name, v[:sz]})
	}
	return out, nil
}
