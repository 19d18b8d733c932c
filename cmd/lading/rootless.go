package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/store"
)

// Environment of the processes of a rootless lading.
const (
	// usernsEnv is usernsWait in the first process started in the new
	// user namespace, and usernsReady in lading proper, executed again
	// once the namespace has its id maps.
	usernsEnv   = "_LADING_USERNS"
	usernsWait  = "wait"
	usernsReady = "ready"
	// defaultRootEnv carries the store default of the calling user, which
	// root inside the namespace would otherwise take for /var/lib/lading.
	defaultRootEnv = "_LADING_DEFAULT_ROOT"
	// parentEnv is the caller's pid, for lading proper to check.
	parentEnv = "_LADING_PARENT"
	// usernsSyncFD is the pipe on which the first process waits for its
	// maps: one byte means go on, EOF means give up.
	usernsSyncFD = 3
)

// rootlessRequested reports whether lading runs rootless: always when
// not root, and as root with --rootless (for tests) before any "--".
func rootlessRequested() bool {
	if os.Geteuid() != 0 {
		return true
	}
	for _, a := range os.Args[1:] {
		switch a {
		case "--":
			return false
		case "--rootless", "--rootless=true":
			return true
		}
	}
	return false
}

// enterUserNamespace re-executes lading in a user namespace where the
// caller is root, with a private mount namespace, and returns the exit
// code and true in the caller. In lading proper (in the namespace) and
// where rootless mode does not apply it returns false. The first process
// in the namespace waits for its id maps, then executes lading again,
// since only an execve as root of the namespace grants the capabilities
// there; it never returns.
func enterUserNamespace() (int, bool) {
	switch os.Getenv(usernsEnv) {
	case usernsReady:
		inUserNamespace()
		return 0, false
	case usernsWait:
		os.Exit(awaitMaps())
	}
	if !rootlessRequested() {
		return 0, false
	}
	maps, err := builder.RootlessMaps()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lading: rootless mode: reading subordinate ids: %v\n", err)
		return 1, true
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lading: rootless mode: %v\n", err)
		return 1, true
	}
	defer syncW.Close()
	cmd := selfCommand(usernsEnv+"="+usernsWait, defaultRootEnv+"="+store.DefaultRoot(), mountNSEnv+"=1")
	cmd.ExtraFiles = []*os.File{syncR}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	code, err := runChild(cmd, func(pid int) error {
		syncR.Close()
		if maps.Single {
			fmt.Fprintf(os.Stderr, "lading: warning: /etc/subuid or /etc/subgid has no range for uid %d: mapping only your own ids, "+
				"so files owned by other users (in base images, COPY --chown, RUN as another USER) cannot be created; "+
				"add ranges (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER) for builds identical to root's\n", os.Getuid())
		}
		if err := maps.Apply(pid); err != nil {
			return fmt.Errorf("rootless mode: mapping ids: %w", err)
		}
		_, err := syncW.Write([]byte{1})
		syncW.Close()
		return err
	})
	if cmd.Process == nil {
		err = builder.UserNamespaceError(err)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lading: %v\n", err)
		return 1, true
	}
	return code, true
}

// awaitMaps runs in the first process in the new namespace: it waits
// until the caller has written the id maps, then executes lading again.
func awaitMaps() int {
	var b [1]byte
	if n, _ := unix.Read(usernsSyncFD, b[:]); n != 1 {
		return 1 // the caller reports why
	}
	unix.Close(usernsSyncFD)
	os.Setenv(usernsEnv, usernsReady)
	os.Setenv(parentEnv, strconv.Itoa(os.Getppid()))
	err := unix.Exec("/proc/self/exe", os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "lading: rootless mode: executing lading: %v\n", err)
	return 1
}

// inUserNamespace sets up lading proper in the namespace: the execve that
// granted the capabilities cleared the parent-death signal, so set it
// again, and stop at once if the caller already died.
func inUserNamespace() {
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	if strconv.Itoa(os.Getppid()) != os.Getenv(parentEnv) {
		os.Exit(1)
	}
	os.Unsetenv(parentEnv)
	// Temporary files (downloads, Git checkouts) go to the user's
	// runtime directory, or under its store, never to a shared /tmp.
	tmp := filepath.Join(defaultRoot(), "run")
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		tmp = filepath.Join(d, "lading")
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "lading: rootless mode: %v\n", err)
		os.Exit(1)
	}
	os.Setenv("TMPDIR", tmp)
	// The kernel already keeps mounts made here from reaching the
	// caller's namespace (shared mounts became slaves); private also
	// keeps the caller's later mounts out.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Fprintf(os.Stderr, "lading: rootless mode: making mounts private: %v\n", err)
		os.Exit(1)
	}
}

// defaultRoot is the store used without --root: the calling user's, also
// inside the user namespace of rootless mode.
func defaultRoot() string {
	if d := os.Getenv(defaultRootEnv); d != "" {
		return d
	}
	return store.DefaultRoot()
}
