package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	goruntime "runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// mountNSEnv marks a lading process that already runs in its own mount
// namespace.
const mountNSEnv = "_LADING_PRIVATE_MOUNTS"

// enterMountNamespace re-executes lading (when root) in a private mount
// namespace, so that every mount a build makes disappears with the process,
// even after kill -9. It returns the child's exit code and true in the
// parent, or false in the child and where it does not apply.
func enterMountNamespace() (int, bool) {
	// Every command, not only "lading build": flags may come first
	// ("lading --root R build"), and a private namespace costs little.
	if os.Geteuid() != 0 || os.Getenv(mountNSEnv) != "" {
		return 0, false
	}
	cmd := selfCommand(mountNSEnv + "=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNS,
		Pdeathsig:    syscall.SIGKILL,
	}
	code, err := runChild(cmd, nil)
	if err != nil {
		// No namespace to be had: build in this one.
		return 0, false
	}
	return code, true
}

// selfCommand is lading again, with the same arguments and standard
// streams, and env added to its environment.
func selfCommand(env ...string) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd
}

// runChild starts cmd, calls started (when not nil) with its pid, forwards
// the signals that end lading to it, and returns its exit code (128+signal
// when killed, reported unless the signal was forwarded). An error means
// cmd did not start, or started returned it (then the child is killed and
// reaped).
func runChild(cmd *exec.Cmd, started func(pid int) error) (int, error) {
	// Pdeathsig follows the thread that started the child: keep it.
	goruntime.LockOSThread()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	if started != nil {
		if err := started(cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return 0, err
		}
	}
	forwarded := make(chan os.Signal, 4)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
			select {
			case forwarded <- s:
			default:
			}
		}
	}()
	err := cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			reportKilled(os.Stderr, ws.Signal(), forwarded)
			return 128 + int(ws.Signal()), nil
		}
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 1, nil
	}
	return 0, nil
}

// reportKilled says that the re-executed lading died from sig, unless
// sig is one that lading passed on to it (the user's own Ctrl-C). A
// SIGKILL nobody here sent is most often the kernel's OOM killer.
func reportKilled(w io.Writer, sig syscall.Signal, forwarded <-chan os.Signal) {
	for drained := false; !drained; {
		select {
		case s := <-forwarded:
			if s == sig {
				return
			}
		default:
			drained = true
		}
	}
	name := unix.SignalName(sig)
	if name == "" {
		name = fmt.Sprintf("signal %d", int(sig))
	}
	hint := ""
	if sig == syscall.SIGKILL {
		hint = " (out of memory?)"
	}
	fmt.Fprintf(w, "lading: build process killed by %s%s\n", name, hint)
}
