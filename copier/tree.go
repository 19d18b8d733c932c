package copier

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/userns"
)

// owner is a numeric uid and gid.
type owner struct{ uid, gid int }

// newDir is the owner and permission bits (0755 unless setMode) of the
// directories mkdirAll creates.
type newDir struct {
	owner
	mode    uint32
	setMode bool
}

// meta is the metadata given to one written entry.
type meta struct {
	owner
	mode   uint32 // permission bits with setuid, setgid and sticky (07777)
	mtime  time.Time
	xattrs []xattr
}

type xattr struct {
	name  string
	value []byte
}

// tree is a directory that entries are written into. Every path given to
// it is resolved inside it, with symlinks interpreted as if the tree were
// the root directory.
type tree struct {
	root *os.File
}

func openTree(dir string) (*tree, error) {
	f, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening destination root: %w", err)
	}
	return &tree{root: f}, nil
}

func (t *tree) close() error { return t.root.Close() }

// components splits a slash path relative to the tree into clean names;
// ".." cannot climb above the tree.
func components(rel string) []string {
	p := path.Clean("/" + rel)
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// openDir opens the existing directory rel, resolving symlinks inside the tree.
func (t *tree) openDir(rel string) (*os.File, error) {
	h, err := pathrs.OpenatInRoot(t.root, path.Clean("/"+rel))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return pathrs.Reopen(h, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
}

// isDir reports whether rel resolves (inside the tree) to a directory.
func (t *tree) isDir(rel string) bool {
	d, err := t.openDir(rel)
	if err != nil {
		return false
	}
	d.Close()
	return true
}

// mkdirAll makes rel a directory and returns it opened. Symlinks on the way
// are resolved inside the tree; directories it creates get the owner and
// mode of own.
func (t *tree) mkdirAll(rel string, own newDir) (*os.File, error) {
	return t.mkdirAllDepth(rel, own, 0)
}

// mkdirAllDepth is mkdirAll with a count of dangling symlinks followed.
func (t *tree) mkdirAllDepth(rel string, own newDir, depth int) (*os.File, error) {
	cur, err := dupDir(t.root)
	if err != nil {
		return nil, err
	}
	comps := components(rel)
	for i, c := range comps {
		next, err := t.step(cur, comps[:i+1], c, own, depth)
		cur.Close()
		if err != nil {
			return nil, fmt.Errorf("creating directory /%s: %w", strings.Join(comps[:i+1], "/"), err)
		}
		cur = next
	}
	return cur, nil
}

// step enters (creating if needed) the directory name inside dir; prefix is
// its path from the tree root, used to resolve a symlink in its place.
func (t *tree) step(dir *os.File, prefix []string, name string, own newDir, depth int) (*os.File, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(int(dir.Fd()), name, flags, 0)
	switch {
	case err == nil:
		return os.NewFile(uintptr(fd), name), nil
	case errors.Is(err, unix.ENOENT):
		if err := unix.Mkdirat(int(dir.Fd()), name, 0o755); err != nil {
			if errors.Is(err, unix.EEXIST) { // made meanwhile: enter it as found
				return t.step(dir, prefix, name, own, depth)
			}
			return nil, err
		}
		fd, err := unix.Openat(int(dir.Fd()), name, flags, 0)
		if err != nil {
			return nil, err
		}
		f := os.NewFile(uintptr(fd), name)
		err = fchown(f, own.owner)
		if err == nil {
			mode := os.FileMode(0o755)
			if own.setMode {
				mode = os.FileMode(own.mode & 0o777)
			}
			err = f.Chmod(mode) // past the umask
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		// A symlink (or a non-directory): resolve it inside the tree.
		p := "/" + strings.Join(prefix, "/")
		d, err := t.openDir(p)
		if errors.Is(err, unix.ENOENT) {
			// A dangling symlink: create what it points to, as BuildKit does.
			target, rerr := readlinkAt(dir, name)
			if rerr != nil {
				return nil, fmt.Errorf("not a directory")
			}
			if !path.IsAbs(target) {
				target = path.Join(t.relOf(dir, path.Dir(p)), target)
			}
			if depth >= 40 {
				return nil, unix.ELOOP
			}
			return t.mkdirAllDepth(target, own, depth+1)
		}
		if errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("not a directory")
		}
		return d, err
	default:
		return nil, err
	}
}

// relOf returns where the open directory dir really is inside the tree
// (its path may have gone through symlinks); logical if that is unknown.
func (t *tree) relOf(dir *os.File, logical string) string {
	d, err1 := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", dir.Fd()))
	r, err2 := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", t.root.Fd()))
	if err1 != nil || err2 != nil {
		return logical
	}
	if d == r {
		return "/"
	}
	if rel, ok := strings.CutPrefix(d, strings.TrimSuffix(r, "/")+"/"); ok {
		return "/" + rel
	}
	return logical
}

func readlinkAt(dir *os.File, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(dir.Fd()), name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func dupDir(f *os.File) (*os.File, error) {
	fd, err := unix.Openat(int(f.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// clear prepares name in dir for a new entry: anything but a directory is
// removed. An existing directory is kept when keepDir (the new entry is a
// directory too, so they merge); otherwise it is removed when empty and an
// error when not.
func clear(dir *os.File, name string, keepDir bool) (isDir bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if keepDir {
			return true, nil
		}
		if err := unix.Unlinkat(int(dir.Fd()), name, unix.AT_REMOVEDIR); err != nil {
			return true, fmt.Errorf("cannot replace directory with a non-directory: %w", err)
		}
		return false, nil
	}
	return false, unix.Unlinkat(int(dir.Fd()), name, 0)
}

// writeFile creates the regular file name in dir with the contents of r.
// When r is an *os.File the kernel copies (copy_file_range).
func writeFile(dir *os.File, name string, r io.Reader, m meta) error {
	if _, err := clear(dir, name, false); err != nil {
		return err
	}
	fd, err := unix.Openat(int(dir.Fd()), name,
		unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if _, ok := r.(*os.File); ok {
		_, err = io.Copy(f, r)
	} else {
		buf := copyBufs.Get().(*[]byte)
		_, err = io.CopyBuffer(writerOnly{f}, r, *buf)
		copyBufs.Put(buf)
	}
	if err != nil {
		return err
	}
	if err := setMeta(f, m); err != nil {
		return err
	}
	if err := setTime(dir, name, m.mtime); err != nil {
		return err
	}
	return f.Close()
}

// hashReader reads r and hashes what it reads into h. It is not an
// *os.File, so writeFile copies it through a buffer (see copyBuffer).
type hashReader struct {
	r io.Reader
	h hash.Hash
}

func (hr hashReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}

// copyBufs are the buffers of copies that go through user space.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// writerOnly hides an *os.File's ReadFrom, so io.CopyBuffer uses the
// buffer it is given.
type writerOnly struct{ io.Writer }

// makeDir creates (or reuses an existing) directory name in dir and
// returns it opened, with owner and xattrs set; finishDir sets its mode and
// mtime once its contents are written. An existing non-directory (a symlink
// included) is replaced when replace, else an error, as in BuildKit.
func makeDir(dir *os.File, name string, m meta, replace bool) (*os.File, error) {
	var st unix.Stat_t
	err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		if err := unix.Mkdirat(int(dir.Fd()), name, 0o700); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
	case !replace:
		return nil, errors.New("cannot copy a directory onto a non-directory")
	default:
		if err := unix.Unlinkat(int(dir.Fd()), name, 0); err != nil {
			return nil, err
		}
		if err := unix.Mkdirat(int(dir.Fd()), name, 0o700); err != nil {
			return nil, err
		}
	}
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if err := fchown(f, m.owner); err != nil {
		f.Close()
		return nil, err
	}
	if err := setXattrs(f, m.xattrs); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// finishDir sets the mode and mtime of an open directory.
func finishDir(d *os.File, m meta) error {
	if err := d.Chmod(FileMode(m.mode)); err != nil {
		return err
	}
	return setTime(d, ".", m.mtime)
}

func makeSymlink(dir *os.File, name, target string, m meta) error {
	if _, err := clear(dir, name, false); err != nil {
		return err
	}
	if err := unix.Symlinkat(target, int(dir.Fd()), name); err != nil {
		return err
	}
	if err := lchownAt(dir, name, m.owner); err != nil {
		return err
	}
	return setTime(dir, name, m.mtime)
}

// makeNode creates a device node or fifo; typ is unix.S_IFCHR, S_IFBLK or S_IFIFO.
func makeNode(dir *os.File, name string, typ uint32, dev uint64, m meta) error {
	if _, err := clear(dir, name, false); err != nil {
		return err
	}
	if err := unix.Mknodat(int(dir.Fd()), name, typ|0o600, int(dev)); err != nil {
		return err
	}
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if err := lchownAt(dir, name, m.owner); err != nil {
		return err
	}
	// fchmod does not work on O_PATH handles; go through the handle's proc link,
	// which names this very inode.
	if err := unix.Fchmodat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), m.mode, 0); err != nil {
		return err
	}
	return setTime(dir, name, m.mtime)
}

// makeLink hard-links oldName in oldDir as name in dir.
func makeLink(oldDir *os.File, oldName string, dir *os.File, name string) error {
	if _, err := clear(dir, name, false); err != nil {
		return err
	}
	return unix.Linkat(int(oldDir.Fd()), oldName, int(dir.Fd()), name, 0)
}

// setMeta sets owner, mode and xattrs of an open file, in the order that
// keeps setuid bits and capabilities (chown clears both).
func setMeta(f *os.File, m meta) error {
	if err := fchown(f, m.owner); err != nil {
		return err
	}
	if err := f.Chmod(FileMode(m.mode)); err != nil {
		return err
	}
	return setXattrs(f, m.xattrs)
}

func setXattrs(f *os.File, xs []xattr) error {
	for _, x := range xs {
		err := unix.Fsetxattr(int(f.Fd()), x.name, x.value, 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("setting xattr %s: %w", x.name, err)
		}
	}
	return nil
}

func setTime(dir *os.File, name string, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	ts := unix.NsecToTimespec(mtime.UnixNano())
	return unix.UtimesNanoAt(int(dir.Fd()), name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// fchown changes the owner; an unprivileged process cannot, and then keeps
// its own (tests run without root).
func fchown(f *os.File, o owner) error {
	return permitted(unix.Fchown(int(f.Fd()), o.uid, o.gid), o)
}

func lchownAt(dir *os.File, name string, o owner) error {
	return permitted(unix.Fchownat(int(dir.Fd()), name, o.uid, o.gid, unix.AT_SYMLINK_NOFOLLOW), o)
}

func permitted(err error, o owner) error {
	if errors.Is(err, unix.EPERM) && os.Geteuid() != 0 {
		return nil
	}
	if errors.Is(err, unix.EINVAL) && userns.Inside() {
		return fmt.Errorf("owner %d:%d is not mapped in lading's user namespace (rootless: give your user ranges in /etc/subuid and /etc/subgid): %w", o.uid, o.gid, err)
	}
	return err
}

// FileMode converts unix permission bits (07777, with setuid, setgid and
// sticky) to an os.FileMode.
func FileMode(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		fm |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= os.ModeSticky
	}
	return fm
}
