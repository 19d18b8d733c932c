package snapshot

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/userns"
)

const (
	paxXattrPrefix     = "SCHILY.xattr."
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	opaqueMarker       = ".wh..wh..opq"
)

// isWhiteout reports whether st is an overlay whiteout: a character device
// with device number 0/0.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// Overlayfs keeps its own attributes (opaque, redirect, ...) in
// trusted.overlay.*, or in user.overlay.* when mounted with the userxattr
// option, as it must be in a user namespace (rootless mode), where
// trusted.* is out of reach. userxattr is set in a user namespace.
var userxattr = userns.Inside()

// overlayXattr is the name of overlayfs' attribute name.
func overlayXattr(name string) string {
	if userxattr {
		return "user.overlay." + name
	}
	return "trusted.overlay." + name
}

// isOverlayXattr reports whether n is an attribute of overlayfs (in
// either namespace), which never goes into a layer nor comes from one.
func isOverlayXattr(n string) bool {
	return strings.HasPrefix(n, "trusted.overlay.") || strings.HasPrefix(n, "user.overlay.")
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// xattrs returns the extended attributes of path (not following a final
// symlink), sorted by name, leaving out overlayfs' own.
func xattrs(path string) ([]xattr, error) {
	names, err := listXattrs(path)
	if err != nil {
		return nil, err
	}
	var out []xattr
	for _, n := range names {
		if isOverlayXattr(n) {
			continue
		}
		v, err := getXattr(path, n)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", n, path, err)
		}
		out = append(out, xattr{n, v})
	}
	return out, nil
}

type xattr struct {
	name  string
	value []byte
}

func listXattrs(path string) ([]string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Llistxattr(path, nil)
			if err != nil {
				return nil, fmt.Errorf("listing xattrs of %s: %w", path, err)
			}
			buf = make([]byte, sz+64)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing xattrs of %s: %w", path, err)
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		sort.Strings(names)
		return names, nil
	}
}

func getXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 128)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// hasOpaque reports whether the directory at path carries the overlay
// opaque marker.
func hasOpaque(path string) bool {
	v, err := getXattr(path, overlayXattr("opaque"))
	return err == nil && string(v) == "y"
}

// procPath names the entry name in the directory open as dirfd, for calls
// that have no *at form (l*xattr). The magic link only resolves our own fd;
// the final component is not followed by l* calls.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// removeAt deletes name in dirfd and, if it is a directory, everything in
// it, without following symlinks. It reports whether a directory was
// removed. A missing name is not an error.
func removeAt(dirfd int, name string) (bool, error) {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return false, fmt.Errorf("removing %s: %w", name, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", name, err)
	}
	if err := clearDirAt(fd, nil); err != nil {
		unix.Close(fd)
		return false, err
	}
	unix.Close(fd)
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil {
		return false, fmt.Errorf("removing %s: %w", name, err)
	}
	return true, nil
}

// clearDirAt removes the children of the directory open as fd for which
// keep is nil or returns false.
func clearDirAt(fd int, keep func(string) bool) error {
	dup, err := unix.Dup(fd)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), "dir")
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading directory: %w", err)
	}
	for _, n := range names {
		if keep != nil && keep(n) {
			continue
		}
		if _, err := removeAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}

// lstat is unix.Lstat with the path in the error.
func lstat(path string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return &st, nil
}
