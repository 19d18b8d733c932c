package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/userns"
)

// ApplyOptions tune ApplyDir.
type ApplyOptions struct {
	// NoChown leaves what the layer creates owned by the applying process
	// instead of the owners recorded in the layer.
	NoChown bool
}

// ApplyDir unpacks the uncompressed OCI layer tar r onto the plain
// directory dir (created if missing): whiteouts delete what they name,
// opaque markers clear their directory's existing children, and owners,
// modes (setuid and sticky bits included), xattrs and mtimes are set from
// the headers, directories' times last. Entries that would reach outside
// dir are rejected with an error wrapping ErrUnsafeLayer; see the package
// documentation for the rules.
func ApplyDir(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("applying layer: %w", err)
	}
	return applyLayer(ctx, dir, nil, r, opts)
}

// maxSymlinkHops bounds symlink resolution, as the kernel does.
const maxSymlinkHops = 40

// applier unpacks one layer into root. With lowers set, root is an overlay
// upper directory over those layers (top first): deletions become whiteout
// devices and opaque xattrs, and lookups see the merged tree.
type applier struct {
	root    string
	rootfd  int
	lowers  []string
	opts    ApplyOptions
	written map[string]bool // entries this layer created
	known   map[string]bool // real directories in root checked by this layer
	dirs    []dirTime
}

type dirTime struct {
	rel string
	ts  []unix.Timespec
}

func applyLayer(ctx context.Context, root string, lowers []string, r io.Reader, opts ApplyOptions) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", root, err)
	}
	a := &applier{
		root:    root,
		rootfd:  fd,
		lowers:  lowers,
		opts:    opts,
		written: map[string]bool{},
		known:   map[string]bool{},
	}
	defer unix.Close(fd)
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading layer: %w", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	return a.finish()
}

func (a *applier) overlay() bool { return len(a.lowers) > 0 }

// cleanRel turns a tar name into a clean path relative to the root ("" for
// the root itself). Leading slashes are dropped; escaping names are unsafe.
func cleanRel(name string) (string, error) {
	n := path.Clean(strings.TrimLeft(name, "/"))
	if n == "." || n == "" {
		return "", nil
	}
	if n == ".." || strings.HasPrefix(n, "../") {
		return "", fmt.Errorf("name leaves the root: %w", ErrUnsafeLayer)
	}
	return n, nil
}

func splitRel(rel string) (dir, base string) {
	dir, base = path.Split(rel)
	return strings.TrimSuffix(dir, "/"), base
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanRel(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("root replaced by a non-directory: %w", ErrUnsafeLayer)
		}
		return a.setMeta(a.rootfd, ".", "", hdr)
	}
	dirRel, base := splitRel(rel)
	for _, comp := range strings.Split(dirRel, "/") {
		if strings.HasPrefix(comp, whiteoutMetaPrefix) {
			return nil // aufs metadata
		}
		if strings.HasPrefix(comp, whiteoutPrefix) {
			return fmt.Errorf("whiteout name used as a directory: %w", ErrUnsafeLayer)
		}
	}
	switch {
	case base == opaqueMarker:
		return a.opaque(dirRel)
	case strings.HasPrefix(base, whiteoutMetaPrefix):
		return nil // aufs metadata
	case strings.HasPrefix(base, whiteoutPrefix):
		return a.whiteout(dirRel, base[len(whiteoutPrefix):])
	}
	parent, err := a.resolveDir(dirRel, true)
	if err != nil {
		return err
	}
	fd, err := a.openDir(parent)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	target := path.Join(parent, base)
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = a.mkdir(fd, target, base, hdr)
	case tar.TypeReg, '\x00':
		err = a.file(fd, target, base, hdr, r)
	case tar.TypeSymlink:
		err = a.symlink(fd, target, base, hdr)
	case tar.TypeLink:
		err = a.hardlink(fd, target, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = a.mknod(fd, target, base, hdr)
	default:
		err = fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	if err != nil {
		return err
	}
	a.written[target] = true
	return nil
}

// openDir opens the directory rel of the root as an O_PATH descriptor; the
// kernel refuses any symlink on the way and anything outside the root.
func (a *applier) openDir(rel string) (int, error) {
	return a.openDirFlags(rel, unix.O_PATH)
}

func (a *applier) openDirFlags(rel string, flags int) (int, error) {
	p := rel
	if p == "" {
		p = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_DIRECTORY | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(a.rootfd, p, &how)
	if errors.Is(err, unix.ENOSYS) {
		fd, err = openDirByComponents(a.rootfd, p, flags)
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		return -1, fmt.Errorf("opening %q: %w: %w", rel, ErrUnsafeLayer, err)
	}
	if err != nil {
		return -1, fmt.Errorf("opening %q: %w", rel, err)
	}
	return fd, nil
}

// openDirByComponents is the openat2 fallback: one O_NOFOLLOW step per
// component.
func openDirByComponents(rootfd int, rel string, flags int) (int, error) {
	fd, err := unix.Dup(rootfd)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "." || c == "" {
			continue
		}
		nfd, err := unix.Openat(fd, c, flags|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = nfd
	}
	return fd, nil
}

func (a *applier) statAt(fd int, name string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, err
	}
	return &st, nil
}

// followLink returns the path, relative to the root, that a symlink at
// dir/name with target points to, resolved as if the root were "/": an
// absolute target starts at the root and ".." stops there, the way a
// chroot (and containerd's and Docker's appliers) see it. Real images
// need this (Debian's /var/run -> /run); a hostile link cannot leave the
// root this way.
func followLink(dir, name, target string) (string, error) {
	base := "/" + dir
	if path.IsAbs(target) {
		base = "/"
	}
	j := path.Join(base, target)
	return strings.TrimPrefix(j, "/"), nil
}

// resolveDir returns the symlink-free path, relative to the root, of the
// directory rel. Relative symlinks that stay inside the root are followed;
// missing directories are created when create is set (otherwise
// fs.ErrNotExist is returned). In overlay mode, directories that only
// exist in lower layers are copied up.
func (a *applier) resolveDir(rel string, create bool) (string, error) {
	if rel == "" || a.known[rel] {
		return rel, nil
	}
	comps := strings.Split(rel, "/")
	cur := ""
	for hops := 0; len(comps) > 0; {
		c := comps[0]
		comps = comps[1:]
		next := path.Join(cur, c)
		if a.known[next] {
			cur = next
			continue
		}
		target, err := a.stepDir(cur, c, create)
		if err != nil {
			return "", err
		}
		if target != nil {
			hops++
			if hops > maxSymlinkHops {
				return "", fmt.Errorf("resolving %q: %w", rel, unix.ELOOP)
			}
			j, err := followLink(cur, c, *target)
			if err != nil {
				return "", err
			}
			rest := comps
			comps = nil
			if j != "" {
				comps = strings.Split(j, "/")
			}
			comps = append(comps, rest...)
			cur = ""
			continue
		}
		a.known[next] = true
		cur = next
	}
	return cur, nil
}

// stepDir makes sure the component c of directory cur is a real directory
// in the root, or returns the target of the symlink it is.
func (a *applier) stepDir(cur, c string, create bool) (*string, error) {
	fd, err := a.openDir(cur)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	next := path.Join(cur, c)
	st, err := a.statAt(fd, c)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("looking up %q: %w", next, err)
	}
	switch {
	case st != nil && isDir(st):
		return nil, nil
	case st != nil && st.Mode&unix.S_IFMT == unix.S_IFLNK:
		t, err := readlinkAt(fd, c)
		return &t, err
	case st != nil && a.overlay() && isWhiteout(st):
		if !create {
			return nil, fmt.Errorf("looking up %q: %w", next, os.ErrNotExist)
		}
		// Deleted below: a new directory here must hide the old one.
		if err := unix.Unlinkat(fd, c, 0); err != nil {
			return nil, err
		}
		return nil, a.mkdirOpaque(fd, c, true, 0o755)
	case st != nil:
		return nil, fmt.Errorf("parent %q: %w", next, unix.ENOTDIR)
	}
	if a.overlay() {
		lst, where, err := a.lowerLookup(next)
		if err != nil {
			return nil, err
		}
		if lst != nil {
			switch {
			case isDir(lst):
				if err := unix.Mkdirat(fd, c, 0o700); err != nil {
					return nil, fmt.Errorf("copying up %q: %w", next, err)
				}
				return nil, copyMeta(where, procPath(fd, c), lst)
			case lst.Mode&unix.S_IFMT == unix.S_IFLNK:
				t, err := os.Readlink(where)
				return &t, err
			default:
				return nil, fmt.Errorf("parent %q: %w", next, unix.ENOTDIR)
			}
		}
	}
	if !create {
		return nil, fmt.Errorf("looking up %q: %w", next, os.ErrNotExist)
	}
	if err := unix.Mkdirat(fd, c, 0o755); err != nil {
		return nil, fmt.Errorf("creating %q: %w", next, err)
	}
	return nil, nil
}

func (a *applier) mkdirOpaque(fd int, name string, opaque bool, mode uint32) error {
	if err := unix.Mkdirat(fd, name, mode); err != nil {
		return err
	}
	if opaque {
		if err := unix.Lsetxattr(procPath(fd, name), overlayXattr("opaque"), []byte("y"), 0); err != nil {
			return fmt.Errorf("marking %s opaque: %w", name, err)
		}
	}
	return nil
}

func readlinkAt(fd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(fd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// lowerLookup finds rel in the merged view of the root (as overlay upper)
// and its lower layers, as overlayfs would: whiteouts hide, opaque
// directories stop the merge, a non-directory hides what lies below it. It
// returns nil when rel does not exist, and otherwise the entry and its path
// in the topmost layer that has it.
func (a *applier) lowerLookup(rel string) (*unix.Stat_t, string, error) {
	return mergedLookup(a.root, a.lowers, rel)
}

// mergedLookup is lowerLookup for the upper directory root over lowers
// (top first).
func mergedLookup(root string, lowers []string, rel string) (*unix.Stat_t, string, error) {
	comps := strings.Split(rel, "/")
	active := append([]string{root}, lowers...)
	for i := range comps {
		prefix := strings.Join(comps[:i+1], "/")
		var next []string
		var top *unix.Stat_t
		var topPath string
		for _, layer := range active {
			p := filepath.Join(layer, prefix)
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
					continue
				}
				return nil, "", err
			}
			if isWhiteout(&st) {
				break
			}
			if top == nil {
				top, topPath = &st, p
			}
			if !isDir(&st) || !isDir(top) {
				break
			}
			next = append(next, layer)
			if hasOpaque(p) {
				break
			}
		}
		if top == nil {
			return nil, "", nil
		}
		if i == len(comps)-1 {
			return top, topPath, nil
		}
		if !isDir(top) {
			return nil, "", nil
		}
		active = next
	}
	return nil, "", nil
}

// forget drops cached directory checks at and below rel.
func (a *applier) forget(rel string) {
	for k := range a.known {
		if k == rel || strings.HasPrefix(k, rel+"/") {
			delete(a.known, k)
		}
	}
}

// clear removes whatever is at name before a non-directory is created
// there.
func (a *applier) clear(fd int, rel, name string) error {
	wasDir, err := removeAt(fd, name)
	if err != nil {
		return err
	}
	if wasDir {
		a.forget(rel)
	}
	return nil
}

func (a *applier) mkdir(fd int, rel, name string, hdr *tar.Header) error {
	st, err := a.statAt(fd, name)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	if st == nil || !isDir(st) {
		replaced := st != nil
		if replaced {
			if err := a.clear(fd, rel, name); err != nil {
				return err
			}
		}
		// In an upper directory, a directory replacing something else
		// must not merge with a lower directory of the same name.
		if err := a.mkdirOpaque(fd, name, replaced && a.overlay(), 0o700); err != nil {
			return fmt.Errorf("creating directory: %w", err)
		}
	}
	a.known[rel] = true
	return a.setMeta(fd, name, rel, hdr)
}

func (a *applier) file(fd int, rel, name string, hdr *tar.Header, r io.Reader) error {
	if err := a.clear(fd, rel, name); err != nil {
		return err
	}
	nfd, err := unix.Openat(fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("creating file: %w", err)
	}
	f := os.NewFile(uintptr(nfd), rel)
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("writing file: %w", err)
	}
	return a.setMeta(fd, name, rel, hdr)
}

func (a *applier) symlink(fd int, rel, name string, hdr *tar.Header) error {
	if err := a.clear(fd, rel, name); err != nil {
		return err
	}
	if err := unix.Symlinkat(hdr.Linkname, fd, name); err != nil {
		return fmt.Errorf("creating symlink: %w", err)
	}
	return a.setMeta(fd, name, rel, hdr)
}

func (a *applier) mknod(fd int, rel, name string, hdr *tar.Header) error {
	if err := a.clear(fd, rel, name); err != nil {
		return err
	}
	mode := uint32(unix.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode = unix.S_IFCHR
	case tar.TypeBlock:
		mode = unix.S_IFBLK
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(fd, name, mode|0o600, int(dev)); err != nil {
		return fmt.Errorf("creating device node: %w", err)
	}
	return a.setMeta(fd, name, rel, hdr)
}

func (a *applier) hardlink(fd int, rel, name string, hdr *tar.Header) error {
	trel, err := cleanRel(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	if trel == "" {
		return fmt.Errorf("hardlink to the root directory: %w", ErrUnsafeLayer)
	}
	tdir, tbase := splitRel(trel)
	tparent, err := a.resolveDir(tdir, false)
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	tfd, err := a.openDir(tparent)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	target := path.Join(tparent, tbase)
	if target == rel {
		return nil
	}
	st, err := a.statAt(tfd, tbase)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	if st == nil && a.overlay() {
		if st, err = a.copyUp(tfd, target, tbase); err != nil {
			return err
		}
	}
	if st == nil || (a.overlay() && isWhiteout(st)) {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, os.ErrNotExist)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return fmt.Errorf("hardlink to directory %q", hdr.Linkname)
	case unix.S_IFLNK:
		lt, err := readlinkAt(tfd, tbase)
		if err != nil {
			return err
		}
		if _, err := followLink(tparent, tbase, lt); err != nil {
			return fmt.Errorf("hardlink target: %w", err)
		}
	}
	if err := a.clear(fd, rel, name); err != nil {
		return err
	}
	if err := unix.Linkat(tfd, tbase, fd, name, 0); err != nil {
		return fmt.Errorf("creating hardlink: %w", err)
	}
	return nil
}

// copyUp copies the non-directory rel from a lower layer into the upper
// directory (open as fd, entry name), so it can be hardlinked. It returns
// nil when no layer has it.
func (a *applier) copyUp(fd int, rel, name string) (*unix.Stat_t, error) {
	lst, where, err := a.lowerLookup(rel)
	if err != nil || lst == nil || isDir(lst) {
		return nil, err
	}
	c := &copier{}
	if err := c.copyEntry(where, procPath(fd, name), lst); err != nil {
		return nil, fmt.Errorf("copying up %q: %w", rel, err)
	}
	return a.statAt(fd, name)
}

// setMeta applies owner, mode, xattrs and times from hdr to name in fd
// (name "." with rel "" is the root). Directory times are deferred.
func (a *applier) setMeta(fd int, name, rel string, hdr *tar.Header) error {
	isLink := hdr.Typeflag == tar.TypeSymlink
	if !a.opts.NoChown {
		err := unix.Fchownat(fd, name, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.EINVAL) && userns.Inside() {
			return fmt.Errorf("setting owner %d:%d: not mapped in lading's user namespace (rootless: give your user ranges in /etc/subuid and /etc/subgid): %w", hdr.Uid, hdr.Gid, err)
		}
		if err != nil {
			return fmt.Errorf("setting owner: %w", err)
		}
	}
	if !isLink {
		// After chown, which clears setuid and setgid.
		if err := unix.Fchmodat(fd, name, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("setting mode: %w", err)
		}
	}
	var keys []string
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattrPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		x := strings.TrimPrefix(k, paxXattrPrefix)
		if isOverlayXattr(x) || x == "" {
			continue
		}
		if err := unix.Lsetxattr(procPath(fd, name), x, []byte(hdr.PAXRecords[k]), 0); err != nil {
			return fmt.Errorf("setting xattr %s: %w", x, err)
		}
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if hdr.Typeflag == tar.TypeDir {
		a.dirs = append(a.dirs, dirTime{rel, ts})
		return nil
	}
	if err := unix.UtimesNanoAt(fd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// whiteout deletes name in dirRel, or in overlay mode records the deletion
// as a whiteout device.
func (a *applier) whiteout(dirRel, name string) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("invalid whiteout: %w", ErrUnsafeLayer)
	}
	parent, err := a.resolveDir(dirRel, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing there to delete
	}
	if err != nil {
		return err
	}
	target := path.Join(parent, name)
	if a.written[target] {
		return nil // whiteouts only apply to lower layers
	}
	fd, err := a.openDir(parent)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := a.clear(fd, target, name); err != nil {
		return err
	}
	if !a.overlay() {
		return nil
	}
	lst, _, err := a.lowerLookup(target)
	if err != nil || lst == nil {
		return err
	}
	if err := unix.Mknodat(fd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("creating whiteout: %w", err)
	}
	return nil
}

// opaque empties dirRel of what lower layers put there.
func (a *applier) opaque(dirRel string) error {
	dir, err := a.resolveDir(dirRel, true)
	if err != nil {
		return err
	}
	fd, err := a.openDirFlags(dir, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	keep := func(n string) bool { return a.written[path.Join(dir, n)] }
	if err := clearDirAt(fd, keep); err != nil {
		return err
	}
	for k := range a.known {
		if strings.HasPrefix(k, dir+"/") || dir == "" {
			delete(a.known, k)
		}
	}
	if !a.overlay() {
		return nil
	}
	if dir != "" {
		if err := unix.Fsetxattr(fd, overlayXattr("opaque"), []byte("y"), 0); err != nil {
			return fmt.Errorf("marking %q opaque: %w", dir, err)
		}
		return nil
	}
	// The root of an overlay cannot be opaque: hide each lower entry.
	seen := map[string]bool{}
	for _, l := range a.lowers {
		names, err := readDirNames(l)
		if err != nil {
			return err
		}
		for _, n := range names {
			if seen[n] || keep(n) {
				continue
			}
			seen[n] = true
			if err := unix.Mknodat(fd, n, unix.S_IFCHR, 0); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("creating whiteout: %w", err)
			}
		}
	}
	return nil
}

// finish sets directory times, deepest last-written first.
func (a *applier) finish() error {
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		if d.rel == "" {
			if err := unix.UtimesNanoAt(a.rootfd, ".", d.ts, 0); err != nil {
				return fmt.Errorf("setting root times: %w", err)
			}
			continue
		}
		dir, base := splitRel(d.rel)
		fd, err := a.openDir(dir)
		if err != nil {
			continue // replaced later in the layer
		}
		err = unix.UtimesNanoAt(fd, base, d.ts, unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("setting times of %q: %w", d.rel, err)
		}
	}
	return nil
}
