package runtime

import (
	"errors"
	"fmt"
	"path"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/runtime/initproc"
)

// mountpoint is a path in the rootfs that the container init mounts on.
type mountpoint struct {
	path string // relative to the rootfs
	dir  bool
	// optional mount points are skipped (not injected) when the image has
	// a symlink there; the others make Run fail.
	optional bool
}

var mountpoints = []mountpoint{
	{path: "proc", dir: true},
	{path: "dev", dir: true},
	{path: "sys", dir: true},
	{path: "etc", dir: true},
	{path: "etc/hosts", optional: true},
	{path: "etc/resolv.conf", optional: true},
	{path: "etc/hostname", optional: true},
}

// stub is a mount point the runtime created and has to remove again.
type stub struct {
	mountpoint
	dev, ino    uint64
	parentTimes [2]unix.Timespec // atime, mtime of the parent before
}

// stubs records what prepareMountpoints created in a rootfs.
type stubs struct {
	root    string
	created []stub
	skipped []string // optional mount points that are symlinks
}

// resolveFlags keep every lookup inside the rootfs and refuse symlinks,
// so nothing the image (or a previous step) planted can redirect us.
const resolveFlags = initproc.ResolveFlags

// openInRoot opens rel (a directory) beneath rootfd with O_PATH.
func openInRoot(rootfd int, rel string) (int, error) {
	return unix.Openat2(rootfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: resolveFlags,
	})
}

// prepareMountpoints creates the mount points missing from root. Call
// remove on the result after the container has exited, even on error.
func prepareMountpoints(root string) (*stubs, error) {
	s := &stubs{root: root}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return s, fmt.Errorf("opening rootfs: %w", err)
	}
	defer unix.Close(rootfd)
	for _, mp := range mountpoints {
		if err := s.prepare(rootfd, mp); err != nil {
			return s, fmt.Errorf("mount point /%s: %w", mp.path, err)
		}
	}
	return s, nil
}

func (s *stubs) prepare(rootfd int, mp mountpoint) error {
	dir, name := path.Split(mp.path)
	if dir == "" {
		dir = "."
	}
	pfd, err := openInRoot(rootfd, dir)
	if errors.Is(err, unix.ELOOP) && mp.optional {
		s.skipped = append(s.skipped, mp.path)
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	err = unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		return s.check(mp, st.Mode&unix.S_IFMT)
	}
	if !errors.Is(err, unix.ENOENT) {
		return err
	}
	return s.create(pfd, name, mp)
}

// check accepts an existing mount point of the right type.
func (s *stubs) check(mp mountpoint, typ uint32) error {
	switch {
	case typ == unix.S_IFLNK && mp.optional:
		s.skipped = append(s.skipped, mp.path)
		return nil
	case typ == unix.S_IFLNK:
		return errors.New("is a symlink")
	case mp.dir && typ != unix.S_IFDIR:
		return errors.New("is not a directory")
	case !mp.dir && typ != unix.S_IFREG:
		return errors.New("is not a regular file")
	}
	return nil
}

func (s *stubs) create(pfd int, name string, mp mountpoint) error {
	var parent unix.Stat_t
	if err := unix.Fstat(pfd, &parent); err != nil {
		return err
	}
	// pfd is an O_PATH descriptor; its /proc path reaches the directory.
	dirPath := procFD(pfd)
	if mp.dir {
		if err := unix.Mkdirat(pfd, name, 0o755); err != nil {
			return err
		}
	} else {
		fd, err := unix.Openat(pfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	// Only this process and its container touch the rootfs now; a chmod
	// makes the mode independent of the umask.
	if err := unix.Fchmodat(unix.AT_FDCWD, dirPath+"/"+name, modeOf(mp), 0); err != nil {
		return err
	}
	s.created = append(s.created, stub{
		mountpoint:  mp,
		dev:         st.Dev,
		ino:         st.Ino,
		parentTimes: [2]unix.Timespec{parent.Atim, parent.Mtim},
	})
	return nil
}

func modeOf(mp mountpoint) uint32 {
	if mp.dir {
		return 0o755
	}
	return 0o644
}

// remove deletes what prepareMountpoints created, newest first, and
// restores the parents' timestamps. It never follows a symlink and only
// removes the very inode it created: if a step replaced or filled one of
// them, that one stays.
func (s *stubs) remove() error {
	if len(s.created) == 0 {
		return nil
	}
	rootfd, err := unix.Open(s.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening rootfs: %w", err)
	}
	defer unix.Close(rootfd)
	var errs []error
	for i := len(s.created) - 1; i >= 0; i-- {
		st := s.created[i]
		if err := st.remove(rootfd); err != nil {
			errs = append(errs, fmt.Errorf("removing /%s: %w", st.path, err))
		}
	}
	s.created = nil
	return errors.Join(errs...)
}

func (st stub) remove(rootfd int) error {
	dir, name := path.Split(st.path)
	if dir == "" {
		dir = "."
	}
	pfd, err := openInRoot(rootfd, dir)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOENT) {
		return nil // replaced by the step: not ours any more
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var cur unix.Stat_t
	if err := unix.Fstatat(pfd, name, &cur, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if cur.Dev != st.dev || cur.Ino != st.ino {
		return nil
	}
	flags := 0
	if st.dir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(pfd, name, flags); err != nil {
		if st.dir && errors.Is(err, unix.ENOTEMPTY) {
			return nil // the step put files in it: it is the step's now
		}
		return err
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, procFD(pfd), st.parentTimes[:], 0)
}

func procFD(fd int) string {
	return fmt.Sprintf("/proc/self/fd/%d", fd)
}
