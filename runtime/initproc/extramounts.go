package initproc

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// ResolveFlags keep every lookup inside the rootfs and refuse symlinks,
// so nothing the image (or a previous step) planted can redirect us.
const ResolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// mountExtra mounts ms in the rootfs, in order, each onto a descriptor of
// its mount point opened without following any symlink.
func mountExtra(root string, ms []Mount) error {
	if len(ms) == 0 {
		return nil
	}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening rootfs: %w", err)
	}
	defer unix.Close(rootfd)
	for _, m := range ms {
		if err := mountOne(rootfd, m); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.Type, m.Target, err)
		}
	}
	return nil
}

func mountOne(rootfd int, m Mount) error {
	flags := uint64(unix.O_PATH | unix.O_CLOEXEC)
	if m.Dir {
		flags |= unix.O_DIRECTORY
	}
	target, err := unix.Openat2(rootfd, m.Path, &unix.OpenHow{Flags: flags, Resolve: ResolveFlags})
	if err != nil {
		return fmt.Errorf("opening mount point: %w", err)
	}
	defer unix.Close(target)
	var mnt int
	if m.Type == MountTmpfs {
		mnt, err = newTmpfs(m)
	} else {
		mnt, err = cloneTree(m)
	}
	if err != nil {
		return err
	}
	defer unix.Close(mnt)
	err = unix.MoveMount(mnt, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("attaching: %w", err)
	}
	return nil
}

// mountAttrs are the attributes of an extra mount.
func mountAttrs(m Mount) uint64 {
	attrs := uint64(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV)
	if m.Readonly {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	return attrs
}

// cloneTree returns a detached copy of the mount tree at m.Source with
// the attributes applied to every mount in it.
func cloneTree(m Mount) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, m.Source,
		unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return -1, fmt.Errorf("cloning %s: %w", m.Source, err)
	}
	attr := &unix.MountAttr{Attr_set: mountAttrs(m)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("setting mount attributes: %w", err)
	}
	return fd, nil
}

// newTmpfs returns a detached tmpfs mount.
func newTmpfs(m Mount) (int, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("creating tmpfs: %w", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "mode", strconv.FormatUint(uint64(m.Mode), 8)); err != nil {
		return -1, fmt.Errorf("setting tmpfs mode: %w", err)
	}
	if m.Size > 0 {
		if err := unix.FsconfigSetString(fs, "size", strconv.FormatInt(m.Size, 10)); err != nil {
			return -1, fmt.Errorf("setting tmpfs size: %w", err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("creating tmpfs: %w", err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, int(mountAttrs(m)))
	if err != nil {
		return -1, fmt.Errorf("mounting tmpfs: %w", err)
	}
	return mnt, nil
}
