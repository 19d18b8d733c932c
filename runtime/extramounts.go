package runtime

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/runtime/initproc"
)

// Extra mounts (Spec.Mounts) go through three stages: newExtraMounts
// checks them, the parent's prepareMounts resolves each target inside
// the rootfs and creates missing mount points as stubs, and the init's
// mountExtra mounts them onto descriptors of the resolved mount points.

// extraMount is a Spec.Mount as the init needs it.
type extraMount = initproc.Mount

// errDangling is a target whose last existing component is a symlink to
// a missing path.
var errDangling = errors.New("is a dangling symlink")

// defaultTmpfsMode is the mode of a tmpfs root when Mount.Mode is 0.
const defaultTmpfsMode = 0o1777

// reservedPaths (relative to the rootfs) are what the runtime itself
// mounts; no extra mount may overlap them.
var reservedPaths = []string{"proc", "dev", "sys", "etc/hosts", "etc/resolv.conf", "etc/hostname"}

// newExtraMounts checks ms and converts them for the config.
func newExtraMounts(ms []Mount) ([]extraMount, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	out := make([]extraMount, 0, len(ms))
	for _, m := range ms {
		e, err := newExtraMount(m)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func newExtraMount(m Mount) (extraMount, error) {
	e := extraMount{
		Type:     m.Type,
		Source:   m.Source,
		Target:   m.Target,
		Readonly: m.Readonly,
		Size:     m.Size,
		Mode:     m.Mode,
	}
	if !path.IsAbs(m.Target) {
		return e, fmt.Errorf("%w target %q: not an absolute path", ErrInvalidMount, m.Target)
	}
	if why := targetConflict(strings.TrimPrefix(path.Clean(m.Target), "/"), nil); why != "" {
		return e, fmt.Errorf("%w target %q: %s", ErrInvalidMount, m.Target, why)
	}
	invalid := func(why string) error {
		return fmt.Errorf("%w on %q: %s", ErrInvalidMount, m.Target, why)
	}
	switch m.Type {
	case MountBind:
		if !filepath.IsAbs(m.Source) {
			return e, invalid(fmt.Sprintf("bind source %q is not an absolute path", m.Source))
		}
		if m.Size != 0 || m.Mode != 0 {
			return e, invalid("size and mode apply to tmpfs only")
		}
		fi, err := os.Stat(m.Source)
		if err != nil {
			return e, fmt.Errorf("%w on %q: bind source: %w", ErrInvalidMount, m.Target, err)
		}
		e.Dir = fi.IsDir()
	case MountTmpfs:
		if m.Source != "" {
			return e, invalid("tmpfs has no source")
		}
		if m.Size < 0 {
			return e, invalid("negative tmpfs size")
		}
		if m.Mode&^0o7777 != 0 {
			return e, invalid(fmt.Sprintf("tmpfs mode %#o has bits other than permissions", m.Mode))
		}
		if e.Mode == 0 {
			e.Mode = defaultTmpfsMode
		}
		e.Dir = true
	default:
		return e, invalid(fmt.Sprintf("unknown type %q", m.Type))
	}
	return e, nil
}

// targetConflict says why rel (a clean path relative to the rootfs, "."
// or "" for its root) cannot be a mount target next to the runtime's
// own mounts and the earlier targets, or returns "".
func targetConflict(rel string, earlier []extraMount) string {
	if rel == "" || rel == "." {
		return "is the root"
	}
	for _, r := range reservedPaths {
		if overlaps(rel, r) {
			return "overlaps /" + r
		}
	}
	for _, e := range earlier {
		if overlaps(rel, e.Path) {
			return "overlaps the mount on " + e.Target
		}
	}
	return ""
}

// overlaps reports whether one of the relative paths a and b contains
// the other.
func overlaps(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

// prepareMounts resolves the target of each mount inside the rootfs,
// following symlinks as the container would see them but never out of
// it, creates missing mount points (and their parents) as stubs that
// remove deletes again, and stores the resolved paths in ms[i].Path.
func (s *stubs) prepareMounts(ms []extraMount) error {
	if len(ms) == 0 {
		return nil
	}
	rootfd, err := unix.Open(s.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening rootfs: %w", err)
	}
	defer unix.Close(rootfd)
	prefix, err := os.Readlink(procFD(rootfd))
	if err != nil {
		return fmt.Errorf("resolving rootfs: %w", err)
	}
	for i := range ms {
		m := &ms[i]
		rel, err := s.place(rootfd, prefix, m)
		if err != nil && !errors.Is(err, ErrInvalidMount) {
			err = fmt.Errorf("mount target %q: %w", m.Target, err)
		}
		if err != nil {
			return err
		}
		if why := targetConflict(rel, ms[:i]); why != "" {
			return fmt.Errorf("%w target %q (/%s in the rootfs): %s", ErrInvalidMount, m.Target, rel, why)
		}
		m.Path = rel
	}
	return nil
}

// place resolves m.Target one component at a time, creating what is
// missing, and returns the resolved path relative to the rootfs.
func (s *stubs) place(rootfd int, prefix string, m *extraMount) (string, error) {
	names := strings.Split(strings.TrimPrefix(path.Clean(m.Target), "/"), "/")
	cur := "." // resolved so far: no symlinks in it
	for i, name := range names {
		// Only name itself can be a symlink; RESOLVE_IN_ROOT treats its
		// absolute targets and ".." as the container would.
		fd, err := unix.Openat2(rootfd, path.Join(cur, name), &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if errors.Is(err, unix.ENOENT) {
			rel, err := s.createPath(rootfd, cur, names[i:], m.Dir)
			if errors.Is(err, errDangling) {
				err = fmt.Errorf("%w target %q: %w", ErrInvalidMount, m.Target, err)
			}
			return rel, err
		}
		if err != nil {
			return "", err
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		if err == nil {
			cur, err = pathIn(prefix, fd)
		}
		unix.Close(fd)
		if err != nil {
			return "", err
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		switch {
		case (i < len(names)-1 || m.Dir) && !isDir:
			return "", fmt.Errorf("%w target %q: /%s is not a directory", ErrInvalidMount, m.Target, cur)
		case i == len(names)-1 && !m.Dir && isDir:
			return "", fmt.Errorf("%w target %q: /%s is a directory, the bind source is not", ErrInvalidMount, m.Target, cur)
		}
	}
	return cur, nil
}

// createPath creates names one below the other in the directory cur (a
// resolved path), as directories except for the last when dir is false,
// and returns the path of the last.
func (s *stubs) createPath(rootfd int, cur string, names []string, dir bool) (string, error) {
	for i, name := range names {
		pfd, err := openInRoot(rootfd, cur)
		if err != nil {
			return "", err
		}
		mp := mountpoint{path: path.Join(cur, name), dir: dir || i < len(names)-1}
		err = s.create(pfd, name, mp)
		unix.Close(pfd)
		if i == 0 && errors.Is(err, unix.EEXIST) {
			return "", fmt.Errorf("/%s: %w", mp.path, errDangling)
		}
		if err != nil {
			return "", fmt.Errorf("creating /%s: %w", mp.path, err)
		}
		cur = mp.path
	}
	return cur, nil
}

// pathIn returns the path of fd relative to the directory prefix (both
// as the kernel names them).
func pathIn(prefix string, fd int) (string, error) {
	p, err := os.Readlink(procFD(fd))
	if err != nil {
		return "", err
	}
	switch {
	case p == prefix:
		return ".", nil
	case prefix == "/":
		return p[1:], nil
	case strings.HasPrefix(p, prefix+"/"):
		return p[len(prefix)+1:], nil
	}
	return "", fmt.Errorf("resolved to %s, outside the rootfs", p)
}
