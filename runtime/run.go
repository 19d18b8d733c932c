package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	goruntime "runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/runtime/initproc"
)

// waitDelay bounds how long Run waits for the output streams once the
// container's init has exited (all its processes are dead by then).
const waitDelay = 5 * time.Second

// Run runs spec.Args in a new container and waits for it. It returns an
// *ExitError when the command exits non-zero or is killed, an error
// starting with "setting up container: " when the container could not be
// set up, and ctx.Err() when ctx ends first (the container is killed).
// Nothing it created is left behind: processes, mounts, cgroups, the
// network namespace and pasta it made when spec.Netns is nil, and the
// mount points it had to create in the rootfs (for Spec.Mounts too).
func Run(ctx context.Context, spec Spec) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := newConfig(spec)
	if err != nil {
		return fmt.Errorf("invalid container spec: %w", err)
	}
	exe, err := sealedExe()
	if err != nil {
		return fmt.Errorf("preparing container init: %w", err)
	}
	st, err := prepareMountpoints(c.Rootfs)
	defer func() { err = joinCleanup(err, st.remove()) }()
	if err != nil {
		return fmt.Errorf("preparing rootfs: %w", err)
	}
	c.Skip = st.skipped
	if err := st.prepareMounts(c.Mounts); err != nil {
		return fmt.Errorf("preparing mounts: %w", err)
	}
	cg, err := newCgroup(spec.Limits)
	if err != nil {
		return fmt.Errorf("creating cgroup: %w", err)
	}
	if cg != nil {
		defer func() { err = joinCleanup(err, cg.remove()) }()
	}
	release, err := c.joinNetns(ctx, spec)
	if err != nil {
		return fmt.Errorf("setting up network: %w", err)
	}
	defer release()
	return run(ctx, c, spec, exe, cg)
}

// joinCleanup adds a cleanup error to the result of Run.
func joinCleanup(err, cleanup error) error {
	if cleanup == nil {
		return err
	}
	cleanup = fmt.Errorf("cleaning up container: %w", cleanup)
	if err == nil {
		return cleanup
	}
	return errors.Join(err, cleanup)
}

func cloneFlags(network string) uintptr {
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if network == NetworkNone {
		flags |= unix.CLONE_NEWNET
	}
	return flags
}

// run starts the init, feeds it the config, and waits for it.
func run(ctx context.Context, c *config, spec Spec, exe *os.File, cg *cgroup) error {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("starting container: %w", err)
	}
	defer cfgW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return fmt.Errorf("starting container: %w", err)
	}
	defer errR.Close()
	cmd := initCmd(c, spec, exe, cfgR, errW)
	forker, err := startLocked(cmd)
	cfgR.Close()
	errW.Close()
	if err != nil {
		return fmt.Errorf("starting container: %w", err)
	}
	defer forker.release()
	if initStarted != nil {
		initStarted(cmd.Process.Pid)
	}
	var killed atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		killed.Store(true)
		cmd.Process.Kill()
	})
	setupErr := feed(cmd.Process.Pid, c, cg, cfgW, errR)
	if setupErr != nil {
		cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	stop()
	switch {
	case killed.Load():
		return ctx.Err()
	case setupErr != nil:
		return fmt.Errorf("setting up container: %w", setupErr)
	}
	return exitError(cmd, waitErr)
}

// initCmd is the command that starts the container init in its new
// namespaces, with the config pipe as fd 3 and the error pipe as fd 4.
func initCmd(c *config, spec Spec, exe, cfgR, errW *os.File) *exec.Cmd {
	return &exec.Cmd{
		Path: exePath(exe),
		Args: []string{initproc.Name},
		// The init is single-threaded work and allocates little.
		Env:        []string{initproc.Env + "=" + initproc.EnvValue, "GOMAXPROCS=1", "GOGC=off"},
		Stdout:     pipedWriter(spec.Stdout),
		Stderr:     pipedWriter(spec.Stderr),
		ExtraFiles: c.initFiles(cfgR, errW),
		WaitDelay:  waitDelay,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: cloneFlags(c.Network),
			// A session of its own: the container has no controlling
			// terminal, so /dev/tty leads nowhere and TIOCSTI fails.
			Setsid: true,
			// Should lading die, its containers die with it. The
			// signal follows the thread that forked, which startLocked
			// keeps alive until the init is reaped.
			Pdeathsig: syscall.SIGKILL,
		},
	}
}

// pipedWriter hides an *os.File behind a plain io.Writer, so that
// exec.Cmd gives the container a pipe and copies from it rather than
// handing over the descriptor: a terminal passed as stdout would let the
// container change its modes or push input into it.
func pipedWriter(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return struct{ io.Writer }{w}
}

// lockedThread is an OS thread, locked to a goroutine that does nothing
// else, from which a child (the container init, pasta) was forked. The
// kernel sends the child its parent-death signal when that thread exits,
// not when the process does, and Go ends a thread whenever a goroutine
// exits while locked to it (snapshot's overlay fallback does): so the
// thread has to stay until the child is reaped.
type lockedThread struct {
	done chan struct{}
}

// startLocked starts cmd from a thread locked to a new goroutine, which
// keeps it until release is called.
func startLocked(cmd *exec.Cmd) (*lockedThread, error) {
	return startLockedSetup(cmd, nil)
}

// startLockedSetup is startLocked running setup on the thread first and
// the function setup returns, if any, once cmd has started; a thread
// setup ran on (whose state it may have changed) ends with its
// goroutine.
func startLockedSetup(cmd *exec.Cmd, setup func() (after func(), err error)) (*lockedThread, error) {
	t := &lockedThread{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		var err error
		after := func() {}
		if setup != nil {
			var a func()
			if a, err = setup(); a != nil {
				after = a
			}
		}
		if err == nil {
			err = cmd.Start()
		}
		after()
		started <- err
		if err == nil {
			<-t.done
		}
		if setup == nil {
			// Nothing changed this thread's state: it can serve others.
			goruntime.UnlockOSThread()
		}
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return t, nil
}

// release lets the thread go once the child has been reaped.
func (t *lockedThread) release() { close(t.done) }

// feed puts the init into its cgroup, sends it the config and returns
// the error it reports, if any, once it has executed the command.
func feed(pid int, c *config, cg *cgroup, cfgW, errR *os.File) error {
	if cg != nil {
		if err := cg.add(pid); err != nil {
			return err
		}
	}
	// A write error means the init died; its wait status tells why.
	json.NewEncoder(cfgW).Encode(&c.Config)
	cfgW.Close()
	msg, err := io.ReadAll(errR)
	if err != nil {
		return fmt.Errorf("reading init status: %w", err)
	}
	if len(msg) == 0 {
		return nil
	}
	var e initproc.SetupError
	if err := json.Unmarshal(msg, &e); err != nil {
		return fmt.Errorf("bad init status %q: %w", msg, err)
	}
	return &e
}

// exitError turns the init's wait status into Run's result.
func exitError(cmd *exec.Cmd, waitErr error) error {
	if cmd.ProcessState == nil {
		return fmt.Errorf("waiting for container: %w", waitErr)
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return fmt.Errorf("waiting for container: %w", waitErr)
	}
	switch {
	case ws.Signaled():
		sig := int(ws.Signal())
		return &ExitError{Code: 128 + sig, Signal: sig}
	case ws.ExitStatus() != 0:
		return &ExitError{Code: ws.ExitStatus()}
	case waitErr != nil:
		// exited 0, but the output could not be copied
		return fmt.Errorf("copying container output: %w", waitErr)
	}
	return nil
}
