package initproc

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/lading-build/lading/passwd"
	"golang.org/x/sys/unix"
)

// execUser runs in the container after pivot_root: it resolves the user,
// closes what must not leak, enters the working directory, drops
// privileges and executes the command.
func execUser(c *Config) error {
	u, err := lookupUser(c.User)
	if err != nil {
		return err
	}
	env := containerEnv(c.Env, u.Home)
	if err := sealFDs(); err != nil {
		return err
	}
	// Only now, with no host directory open, the working directory is
	// resolved: inside the container's root and its new /proc.
	if err := os.MkdirAll(c.Cwd, 0o755); err != nil {
		return fmt.Errorf("creating working directory: %w", err)
	}
	if err := unix.Chdir(c.Cwd); err != nil {
		return fmt.Errorf("entering working directory: %w", err)
	}
	pathEnv, _ := lookupEnv(env, "PATH")
	argv0, err := lookPath(c.Args[0], pathEnv)
	if err != nil {
		return err
	}
	if err := loadSeccomp(c.Seccomp); err != nil {
		return err
	}
	if err := switchUser(u, ContainerCaps); err != nil {
		return err
	}
	unix.Umask(0o022)
	err = unix.Exec(argv0, c.Args, env)
	return fmt.Errorf("exec %s: %w", c.Args[0], err)
}

// lookupUser resolves spec against the container's /etc/passwd and
// /etc/group.
func lookupUser(spec string) (passwd.User, error) {
	pw, closePw := openOptional("/etc/passwd")
	defer closePw()
	gr, closeGr := openOptional("/etc/group")
	defer closeGr()
	u, err := passwd.Lookup(spec, pw, gr)
	if err != nil {
		return u, fmt.Errorf("resolving user %q: %w", spec, err)
	}
	return u, nil
}

// openOptional opens a file for reading, or returns a nil reader.
func openOptional(name string) (io.Reader, func()) {
	f, err := os.Open(name)
	if err != nil {
		return nil, func() {}
	}
	return f, func() { f.Close() }
}

// sealFDs makes every descriptor above stderr close on exec and closes
// now the directories among them, so that no inherited host directory is
// reachable through /proc/self/fd (CVE-2024-21626). stdin becomes the
// container's /dev/null.
func sealFDs() error {
	null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/null: %w", err)
	}
	err = unix.Dup3(null, 0, 0)
	unix.Close(null)
	if err != nil {
		return fmt.Errorf("redirecting stdin: %w", err)
	}
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("marking descriptors close-on-exec: %w", err)
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing descriptors: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 || fd == ErrorFD {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			unix.Close(fd)
		}
	}
	return nil
}

// lookPath finds file in pathEnv like a shell, inside the container.
func lookPath(file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		if err := checkExecutable(file); err != nil {
			return "", fmt.Errorf("exec %s: %w", file, err)
		}
		return file, nil
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %q: executable file not found in $PATH", file)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return syscall.EACCES
	}
	return nil
}

// switchUser limits capabilities to caps and takes on u's identity. A
// non-root user keeps no effective capabilities, since the kernel clears
// them at setuid. No-new-privileges stays off so that
// setuid binaries in the image work, as in a Docker build.
func switchUser(u passwd.User, caps uint64) error {
	if err := limitBounding(caps); err != nil {
		return err
	}
	groups := u.Groups
	if groups == nil {
		groups = []int{}
	}
	if err := unix.Setgroups(groups); err != nil && !(len(groups) == 0 && setgroupsDenied()) {
		return fmt.Errorf("setting supplementary groups: %w", err)
	}
	if err := setresid(unix.SYS_SETRESGID, u.GID); err != nil {
		return fmt.Errorf("setting group id: %w", err)
	}
	if err := setCaps(caps); err != nil {
		return err
	}
	if err := setresid(unix.SYS_SETRESUID, u.UID); err != nil {
		return fmt.Errorf("setting user id: %w", err)
	}
	// The kernel forgets the parent-death signal on credential changes.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("setting parent-death signal: %w", err)
	}
	return nil
}

// setresid sets real, effective and saved ids of this thread only. The Go
// wrappers change every thread of the process, stopping the world to do
// so, which costs milliseconds; the thread that calls execve is the only
// one whose credentials the command inherits.
func setresid(trap uintptr, id int) error {
	_, _, errno := unix.RawSyscall(trap, uintptr(id), uintptr(id), uintptr(id))
	if errno != 0 {
		return errno
	}
	return nil
}

// setgroupsDenied reports whether setgroups(2) is denied in this user
// namespace, as in rootless mode with only the caller's own ids mapped:
// the caller's groups then stay, unmapped, and cannot be dropped.
func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}
