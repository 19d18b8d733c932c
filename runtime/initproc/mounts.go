package initproc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/userns"
)

// Flags of the kernel file systems in the container.
const (
	procFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	devFlags  = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_STRICTATIME
	sysFlags  = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY
)

// devices are bound from the host's /dev into the container's.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// devLinks are the symlinks of a container's /dev.
var devLinks = [][2]string{
	{"pts/ptmx", "ptmx"},
	{"/proc/self/fd", "fd"},
	{"/proc/self/fd/0", "stdin"},
	{"/proc/self/fd/1", "stdout"},
	{"/proc/self/fd/2", "stderr"},
}

// maskedPaths hide kernel information that leaks host details or allows
// attacks, as runc's default spec does; readonlyPaths can be read only.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore",
		"/proc/keys", "/proc/latency_stats", "/proc/timer_list",
		"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// mount is mount(2) with the container path in its error.
func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mounting %s: %w", target, err)
	}
	return nil
}

// setupRootfs builds the container's file system tree in this (new,
// private) mount namespace and makes it the root. Every mount target is a
// mount point that prepareMountpoints checked to be free of symlinks, or
// lies in a file system the init itself just mounted, or (for extra
// mounts) is opened without following symlinks.
func setupRootfs(c *Config) error {
	if err := mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	root := c.Rootfs
	if err := mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	// Device nodes work only in the container's /dev: one a step creates
	// in the rootfs cannot be opened.
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(unix.AT_FDCWD, root, unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("making rootfs nodev: %w", err)
	}
	steps := []func(string) error{
		func(r string) error { return mountEtc(r, c) },
		mountProc,
		mountDev,
		mountSys,
		maskPaths,
		func(r string) error { return mountExtra(r, c.Mounts) },
	}
	for _, step := range steps {
		if err := step(root); err != nil {
			return err
		}
	}
	return pivotRoot(root)
}

func mountProc(root string) error {
	err := mount("proc", root+"/proc", "proc", procFlags, "")
	if errors.Is(err, unix.EPERM) && userns.Inside() {
		// The kernel refuses a new proc in a user namespace while
		// parts of the visible one are covered, as container engines
		// do.
		return fmt.Errorf("%w (rootless: /proc has paths mounted over it; in a container, run it with --security-opt systempaths=unconfined, see docs/where-it-runs.md)", err)
	}
	if err != nil {
		return err
	}
	for _, p := range readonlyPaths {
		if err := readonly(root + p); err != nil {
			return err
		}
	}
	return nil
}

// readonly bind-mounts path onto itself read-only; missing paths are fine.
func readonly(path string) error {
	err := unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REC, "")
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("binding %s: %w", path, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(unix.AT_FDCWD, path, unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("making %s read-only: %w", path, err)
	}
	return nil
}

func mountDev(root string) error {
	dev := root + "/dev"
	if err := mount("tmpfs", dev, "tmpfs", devFlags, "mode=755,size=65536k"); err != nil {
		return err
	}
	for _, d := range devices {
		if err := bindDevice(dev, d); err != nil {
			return err
		}
	}
	for _, l := range devLinks {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	const ptsOpts = "newinstance,ptmxmode=0666,mode=0620"
	err := unix.Mount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsOpts+",gid=5")
	if errors.Is(err, unix.EINVAL) {
		// Rootless with only the caller's own ids mapped, group tty
		// (5) does not exist.
		err = unix.Mount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsOpts)
	}
	if err != nil {
		return fmt.Errorf("mounting %s: %w", dev+"/pts", err)
	}
	if err := mount("shm", dev+"/shm", "tmpfs", procFlags, "mode=1777,size=65536k"); err != nil {
		return err
	}
	return mount("mqueue", dev+"/mqueue", "mqueue", procFlags, "")
}

// bindDevice binds the host's /dev/name onto a new file in dev.
func bindDevice(dev, name string) error {
	target := dev + "/" + name
	fd, err := unix.Open(target, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o666)
	if err != nil {
		return fmt.Errorf("creating %s: %w", target, err)
	}
	unix.Close(fd)
	return mount("/dev/"+name, target, "", unix.MS_BIND, "")
}

// mountSys mounts a read-only sysfs. Rootless in the host's network
// namespace (owned by the host's user namespace) a new sysfs is refused:
// the host's /sys is bound instead, read-only at the top; below it, the
// files of the host's root are out of reach in the user namespace anyway.
func mountSys(root string) error {
	err := unix.Mount("sysfs", root+"/sys", "sysfs", sysFlags, "")
	if errors.Is(err, unix.EPERM) {
		if err := mount("/sys", root+"/sys", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		return mount("", root+"/sys", "", unix.MS_BIND|unix.MS_REMOUNT|sysFlags, "")
	}
	if err != nil {
		return fmt.Errorf("mounting %s: %w", root+"/sys", err)
	}
	return nil
}

// maskPaths covers files with /dev/null and directories with an empty
// read-only tmpfs.
func maskPaths(root string) error {
	for _, p := range maskedPaths {
		var st unix.Stat_t
		err := unix.Lstat(root+p, &st)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("masking %s: %w", p, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = mount("tmpfs", root+p, "tmpfs", unix.MS_RDONLY|procFlags, "size=0")
		} else {
			err = mount(root+"/dev/null", root+p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// etcFiles are given to every container from a private tmpfs.
var etcFiles = []string{"hosts", "resolv.conf", "hostname"}

// mountEtc writes the container's /etc files into a small tmpfs mounted
// for a moment over the rootfs's /dev, binds each onto /etc, and detaches
// the tmpfs again: the image's own files are hidden, not modified.
func mountEtc(root string, c *Config) error {
	tmp := root + "/dev"
	if err := mount("tmpfs", tmp, "tmpfs", procFlags, "mode=755,size=1m"); err != nil {
		return err
	}
	content := map[string]string{
		"hosts":       c.Hosts,
		"resolv.conf": c.ResolvConf,
		"hostname":    c.Hostname + "\n",
	}
	for _, name := range etcFiles {
		if c.skips("etc/" + name) {
			continue
		}
		src := tmp + "/" + name
		if err := os.WriteFile(src, []byte(content[name]), 0o644); err != nil {
			return err
		}
		if err := mount(src, root+"/etc/"+name, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	if err := unix.Unmount(tmp, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmounting %s: %w", tmp, err)
	}
	return nil
}

// pivotRoot makes root the root of this mount namespace and detaches the
// host's tree, so that no host path can be reached any more.
func pivotRoot(root string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /: %w", err)
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening rootfs: %w", err)
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return fmt.Errorf("entering rootfs: %w", err)
	}
	// With new and old root the same directory, the old root ends up
	// stacked on top of the new one, where "." reaches it via oldroot.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return fmt.Errorf("entering old root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("entering new root: %w", err)
	}
	return nil
}
