package snapshot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"

	"github.com/lading-build/lading/internal/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/atomicfile"
)

// Options the overlay snapshotter puts in every overlay mount: no inode
// index, no directory redirects and no metadata-only copy-up, so that an
// upper directory holds complete files and plain directories and can be
// turned into a layer by walking it alone.
var overlayDefaults = []string{"index=off", "redirect_dir=off", "metacopy=off"}

// overlayOptions are overlayDefaults and extra. In a user namespace they
// add userxattr, and redirects are not followed either (lading never
// makes them; overlayfs refuses to follow them with userxattr).
func overlayOptions(extra ...string) []string {
	opts := append([]string{}, overlayDefaults...)
	if userxattr {
		for i, o := range opts {
			if o == "redirect_dir=off" {
				opts[i] = "redirect_dir=nofollow"
			}
		}
		opts = append(opts, "userxattr")
	}
	return append(opts, extra...)
}

// MountAll mounts mounts, in order, at target. Type "bind" is a recursive
// bind mount of Source; "overlay" mounts overlayfs, passing each lowerdir
// separately to the kernel when it supports that (Linux 6.8), so any number
// of layers fits; any other type goes to mount(2). An "ro" option makes the
// mount read-only. On error, whatever MountAll mounted is unmounted again.
func MountAll(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := mountOne(m, target); err != nil {
			for j := i - 1; j >= 0; j-- {
				_ = unmountTop(target)
			}
			return fmt.Errorf("mounting %s at %s: %w", m.Type, target, err)
		}
	}
	return nil
}

// UnmountAll unmounts everything mounted at or below target, most recent
// first, detaching lazily what stays busy. A target with nothing mounted is
// not an error.
func UnmountAll(target string) error {
	abs, err := filepath.Abs(target)
	if err != nil {
		return fmt.Errorf("unmounting %s: %w", target, err)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	if unmountedOne(abs) {
		return nil
	}
	for range 1000 {
		mps, err := mountinfo.Under(abs)
		if err != nil {
			return fmt.Errorf("unmounting %s: %w", target, err)
		}
		if len(mps) == 0 {
			return nil
		}
		mp := mps[len(mps)-1]
		if err := unmountTop(mp); err != nil {
			return fmt.Errorf("unmounting %s: %w", mp, err)
		}
	}
	return fmt.Errorf("unmounting %s: mounts keep appearing", target)
}

// unmountedOne handles the common case of UnmountAll without reading
// /proc/self/mountinfo, which costs milliseconds on a host with many
// mounts: one mount at dir and none below it. It unmounts dir (not
// lazily: umount(2) refuses a mount with mounts below it) and reports
// whether nothing is left at or below dir: dir is no mount point any
// more and is empty, so nothing can be mounted inside it. false leaves
// the rest to the full scan.
func unmountedOne(dir string) bool {
	if unix.Unmount(dir, 0) != nil {
		return false
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, 0, &stx); err != nil ||
		stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 || stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return false
	}
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return len(names) == 0 && errors.Is(err, io.EOF)
}

// unmountTop unmounts the topmost mount at mp, detaching it when busy.
func unmountTop(mp string) error {
	err := unix.Unmount(mp, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(mp, unix.MNT_DETACH)
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil // not a mount point (any more)
	}
	return err
}

// mountFlags splits options into mount(2) flags and filesystem data.
func mountFlags(options []string) (flags uintptr, data []string) {
	for _, o := range options {
		switch o {
		case "ro":
			flags |= unix.MS_RDONLY
		case "rw", "bind", "rbind":
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "nodev":
			flags |= unix.MS_NODEV
		case "noexec":
			flags |= unix.MS_NOEXEC
		case "noatime":
			flags |= unix.MS_NOATIME
		case "relatime":
			flags |= unix.MS_RELATIME
		default:
			data = append(data, o)
		}
	}
	return flags, data
}

func mountOne(m Mount, target string) error {
	switch m.Type {
	case "bind":
		return mountBind(m, target)
	case "overlay":
		return mountOverlay(m.Options, target)
	default:
		flags, data := mountFlags(m.Options)
		return unix.Mount(m.Source, target, m.Type, flags, strings.Join(data, ","))
	}
}

func mountBind(m Mount, target string) error {
	flags, _ := mountFlags(m.Options)
	if err := unix.Mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if flags == 0 {
		return nil
	}
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|flags, ""); err != nil {
		_ = unmountTop(target)
		return fmt.Errorf("remounting read-only: %w", err)
	}
	return nil
}

// overlayConfig is a parsed overlay option list.
type overlayConfig struct {
	lowers        []string
	upper, work   string
	ro            bool
	flags         uintptr
	other         []string // key=value or flag options passed through
	otherFlagOnly []bool
}

func parseOverlay(options []string) overlayConfig {
	var c overlayConfig
	flags, data := mountFlags(options)
	c.ro = flags&unix.MS_RDONLY != 0
	c.flags = flags
	for _, o := range data {
		k, v, ok := strings.Cut(o, "=")
		switch {
		case ok && k == "lowerdir":
			c.lowers = append(c.lowers, strings.Split(v, ":")...)
		case ok && k == "upperdir":
			c.upper = v
		case ok && k == "workdir":
			c.work = v
		default:
			c.other = append(c.other, o)
			c.otherFlagOnly = append(c.otherFlagOnly, !ok)
		}
	}
	return c
}

func mountOverlay(options []string, target string) error {
	c := parseOverlay(options)
	if len(c.lowers) == 0 {
		return errors.New("overlay mount without lowerdir")
	}
	err := mountOverlayFsopen(c, target)
	if errors.Is(err, errNoMountAPI) {
		return mountOverlayClassic(c, target)
	}
	return err
}

var errNoMountAPI = errors.New("mount API without lowerdir+ unavailable")

// mountOverlayFsopen mounts with fsopen/fsconfig/fsmount/move_mount,
// appending one lower layer per "lowerdir+" call.
func mountOverlayFsopen(c overlayConfig, target string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		return errNoMountAPI
	}
	if err != nil {
		return fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fd)
	fail := func(what string, err error) error {
		if msg := fsLog(fd); msg != "" {
			return fmt.Errorf("%s: %w (%s)", what, err, msg)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	for i, l := range c.lowers {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			if i == 0 && errors.Is(err, unix.EINVAL) {
				if _, statErr := os.Stat(l); statErr == nil {
					return errNoMountAPI // kernel before 6.8
				}
			}
			return fail("adding lower layer "+l, err)
		}
	}
	if c.upper != "" {
		if err := unix.FsconfigSetString(fd, "upperdir", c.upper); err != nil {
			return fail("setting upperdir", err)
		}
		if err := unix.FsconfigSetString(fd, "workdir", c.work); err != nil {
			return fail("setting workdir", err)
		}
	}
	for i, o := range c.other {
		if c.otherFlagOnly[i] {
			err = unix.FsconfigSetFlag(fd, o)
		} else {
			k, v, _ := strings.Cut(o, "=")
			err = unix.FsconfigSetString(fd, k, v)
		}
		if err != nil {
			return fail("setting overlay option "+o, err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fail("creating overlay", err)
	}
	var attrs int
	if c.ro {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	if c.flags&unix.MS_NOSUID != 0 {
		attrs |= unix.MOUNT_ATTR_NOSUID
	}
	if c.flags&unix.MS_NODEV != 0 {
		attrs |= unix.MOUNT_ATTR_NODEV
	}
	if c.flags&unix.MS_NOEXEC != 0 {
		attrs |= unix.MOUNT_ATTR_NOEXEC
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fail("fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// fsLog drains the messages the kernel queued on a filesystem context.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 16 {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}

// mountOverlayClassic mounts with mount(2) and one option string, which the
// kernel limits to a page. When the absolute paths do not fit, it retries
// with paths relative to their common directory, from a thread whose
// working directory is private to it.
func mountOverlayClassic(c overlayConfig, target string) error {
	data := c.data("")
	if len(data) < os.Getpagesize() {
		return unix.Mount("overlay", target, "overlay", c.flags, data)
	}
	base := commonDir(append(append([]string{}, c.lowers...), c.upper, c.work))
	data = c.data(base)
	if base == "" || len(data) >= os.Getpagesize() {
		return fmt.Errorf("overlay options of %d bytes exceed a page and this kernel lacks lowerdir+", len(data))
	}
	absTarget, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, whose working directory now
		// differs from the process's, exits with the goroutine.
		goruntime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- fmt.Errorf("unsharing working directory: %w", err)
			return
		}
		if err := unix.Chdir(base); err != nil {
			done <- err
			return
		}
		done <- unix.Mount("overlay", absTarget, "overlay", c.flags, data)
	}()
	return <-done
}

// data renders the option string, with paths relative to base when set.
func (c overlayConfig) data(base string) string {
	rel := func(p string) string {
		if base == "" || p == "" {
			return p
		}
		return strings.TrimPrefix(p, base+"/")
	}
	var opts []string
	opts = append(opts, c.other...)
	lowers := make([]string, len(c.lowers))
	for i, l := range c.lowers {
		lowers[i] = rel(l)
	}
	opts = append(opts, "lowerdir="+strings.Join(lowers, ":"))
	if c.upper != "" {
		opts = append(opts, "upperdir="+rel(c.upper), "workdir="+rel(c.work))
	}
	return strings.Join(opts, ",")
}

// commonDir returns the deepest directory containing all paths, or "".
func commonDir(paths []string) string {
	var dirs []string
	for _, p := range paths {
		if p != "" {
			dirs = append(dirs, filepath.Clean(p))
		}
	}
	if len(dirs) == 0 {
		return ""
	}
	sort.Strings(dirs)
	a, b := strings.Split(dirs[0], "/"), strings.Split(dirs[len(dirs)-1], "/")
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	common := strings.Join(a[:n], "/")
	if common == "" || !filepath.IsAbs(common) {
		return ""
	}
	// A path equal to the common directory would become empty.
	for _, d := range dirs {
		if d == common {
			return filepath.Dir(common)
		}
	}
	return common
}

// OverlaySupported reports whether overlay snapshots work in dir: it mounts
// a two-layer overlay in a temporary directory under dir, deletes a lower
// file through it (which needs whiteouts in the upper directory) and
// unmounts it. A nil error means NewOverlay(dir) can be used.
func OverlaySupported(dir string) (err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("probing overlay support: %w", err)
	}
	// A probe that passed is remembered for the same kernel, user and
	// user namespace, which are what decide the answer: every build
	// would otherwise pay for a mount and an unmount.
	mark, where := probeMark(dir), filepath.Join(dir, ".overlay-probe-ok")
	if b, err := os.ReadFile(where); err == nil && mark != "" && string(b) == mark {
		return nil
	}
	defer func() {
		if err == nil && mark != "" {
			_ = atomicfile.Write(where, []byte(mark), 0o600)
		}
	}()
	tmp, err := os.MkdirTemp(dir, ".overlay-probe-")
	if err != nil {
		return fmt.Errorf("probing overlay support: %w", err)
	}
	defer func() {
		if rmErr := os.RemoveAll(tmp); rmErr != nil && err == nil {
			err = fmt.Errorf("probing overlay support: %w", rmErr)
		}
	}()
	p := func(n string) string { return filepath.Join(tmp, n) }
	for _, d := range []string{"l1", "l2", "upper", "work", "merged"} {
		if err := os.Mkdir(p(d), 0o755); err != nil {
			return fmt.Errorf("probing overlay support: %w", err)
		}
	}
	if err := os.WriteFile(p("l2/f"), []byte("x"), 0o644); err != nil {
		return fmt.Errorf("probing overlay support: %w", err)
	}
	opts := overlayOptions("lowerdir="+p("l1")+":"+p("l2"), "upperdir="+p("upper"), "workdir="+p("work"))
	if err := MountAll([]Mount{{Type: "overlay", Source: "overlay", Options: opts}}, p("merged")); err != nil {
		return fmt.Errorf("probing overlay support: %w", err)
	}
	defer func() {
		if uErr := UnmountAll(p("merged")); uErr != nil && err == nil {
			err = fmt.Errorf("probing overlay support: %w", uErr)
		}
	}()
	if b, err := os.ReadFile(p("merged/f")); err != nil || string(b) != "x" {
		return fmt.Errorf("probing overlay support: lower file not visible: %v", err)
	}
	if err := os.Remove(p("merged/f")); err != nil {
		return fmt.Errorf("probing overlay support: deleting through overlay: %w", err)
	}
	st, err := lstat(p("upper/f"))
	if err != nil || !isWhiteout(st) {
		return fmt.Errorf("probing overlay support: no whiteout in upper directory: %v", err)
	}
	return nil
}

// probeMark names what an overlay probe in dir depends on: the kernel
// release, the filesystem dir is on, the effective user and the user
// namespace's uid map. "" when one cannot be read.
func probeMark(dir string) string {
	var u unix.Utsname
	var st unix.Stat_t
	if unix.Uname(&u) != nil || unix.Stat(dir, &st) != nil {
		return ""
	}
	uidMap, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return ""
	}
	return fmt.Sprintf("kernel=%s dev=%d euid=%d uid_map=%s", unix.ByteSliceToString(u.Release[:]), st.Dev, os.Geteuid(), strings.Join(strings.Fields(string(uidMap)), " "))
}
