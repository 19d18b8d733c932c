package runtime

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/testutil"
)

// ttyChildEnv names the rootfs for the copy of this test binary that runs
// with a pseudo-terminal as its controlling terminal.
const ttyChildEnv = "LADING_TEST_TTY_ROOTFS"

// TestNoControllingTerminal runs lading's side (this binary again) in a
// session whose controlling terminal is a pseudo-terminal, as in a user's
// shell, and a RUN step that pushes a command into that terminal with
// TIOCSTI through /dev/tty and fds 0-2. Nothing may arrive in the
// terminal's input, while the step's output still reaches its screen.
func TestNoControllingTerminal(t *testing.T) {
	if root := os.Getenv(ttyChildEnv); root != "" {
		ttyChild(root)
		return
	}
	root := newRootfs(t)
	addProbe(t, root)
	master, slave := testutil.OpenPty(t)
	defer master.Close()
	self, err := os.Executable()
	must(t, err)
	cmd := exec.Command(self, "-test.run=^TestNoControllingTerminal$")
	cmd.Env = append(os.Environ(), ttyChildEnv+"="+root)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	must(t, cmd.Start())
	screen := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(master) // ends with EIO once the slave is closed
		screen <- b
	}()
	waitErr := cmd.Wait()
	queued, err := unix.IoctlGetInt(int(slave.Fd()), unix.TIOCINQ)
	must(t, err)
	var input []byte
	if queued > 0 {
		input = make([]byte, queued)
		n, _ := slave.Read(input)
		input = input[:n]
	}
	slave.Close()
	out := <-screen
	if waitErr != nil {
		t.Fatalf("child: %v\n%s", waitErr, out)
	}
	if queued != 0 {
		t.Errorf("the container pushed %q into the caller's terminal\n%s", input, out)
	}
	if !bytes.Contains(out, []byte("fd1: TIOCSTI")) || !bytes.Contains(out, []byte("streamed to the terminal")) {
		t.Errorf("the step's output did not reach the terminal:\n%s", out)
	}
	t.Logf("terminal:\n%s", out)
	if bytes.Contains(out, []byte("TIOCSTI: <nil>")) {
		t.Errorf("TIOCSTI succeeded:\n%s", out)
	}
}

// ttyChild is lading in the user's terminal: it runs the step with the
// terminal as stdout and stderr.
func ttyChild(root string) {
	err := Run(context.Background(), Spec{
		Rootfs: root,
		Args:   []string{"/bin/sh", "-c", "/bin/probe tiocsti 'echo INJECTED\n'; echo streamed to the terminal"},
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	})
	if err != nil {
		fmt.Println("run:", err)
		os.Exit(1)
	}
}
