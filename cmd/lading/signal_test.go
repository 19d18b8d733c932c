package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lading-build/lading/internal/testutil"
)

// busyboxContext makes a build context with a busybox rootfs under rootfs/.
func busyboxContext(t *testing.T, recipe string) string {
	t.Helper()
	dir := t.TempDir()
	testutil.BusyboxRootfs(t, filepath.Join(dir, "rootfs"))
	writeFiles(t, dir, map[string]string{"Recipe": recipe})
	return dir
}

// TestInterruptDuringRun sends SIGINT to lading while a RUN step sleeps:
// lading must exit 130 quickly, leave no mount and no process behind,
// and the next build on the same root must succeed.
func TestInterruptDuringRun(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	marker := "lading-sigint-test-" + filepath.Base(filepath.Dir(root))
	dir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN sleep 300; echo "+marker+"\n")

	cmd, stderr := startBuild(t, root, dir)
	// Wait until the RUN step has started.
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "RUN sleep 300") {
				once = true
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("RUN step did not start")
	}
	// The container starts after the step (and, for the first RUN
	// step, the build's network).
	for deadline := time.Now().Add(30 * time.Second); !processRunning(marker); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the RUN step's process is not running")
		}
	}
	begin := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v, want status 130", err)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("took %v to stop", d)
	}
	if processRunning(marker) {
		t.Error("the RUN step's process survived the interrupt")
	}
	if m := testutil.MountsUnder(t, root); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	// The store is still usable.
	dir2 := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN echo ok > /ok\n")
	if r := lading(t, "", "build", "--root", root, "--progress", "quiet", dir2); r.code != 0 {
		t.Fatalf("rebuild failed (%d):\n%s", r.code, r.stderr)
	}
}

// startBuild starts "lading build" of dir on root with plain progress
// and returns the process and its stderr.
func startBuild(t *testing.T, root, dir string) (*exec.Cmd, io.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "build", "--root", root, "--progress", "plain", dir)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stderr
}

// processRunning reports whether a process whose command line contains s
// exists.
func processRunning(s string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(b), s) && !strings.Contains(string(b), "-test.") {
			return true
		}
	}
	return false
}

// TestChildKilledReported SIGKILLs the re-executed lading (as the OOM
// killer would) while it reads a recipe from stdin: the parent must say
// so, not exit with a bare code.
func TestChildKilledReported(t *testing.T) {
	testutil.RequireRoot(t)
	cmd := exec.Command(os.Args[0], "build", "--root", t.TempDir(), "-f", "-", t.TempDir())
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child blocks reading the recipe until stdin closes.
	child := 0
	deadline := time.Now().Add(30 * time.Second)
	for child == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("lading did not re-execute itself")
		}
		child = childOf(cmd.Process.Pid)
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 137 {
		t.Errorf("exit: %v, want status 137", err)
	}
	if want := "lading: build process killed by SIGKILL (out of memory?)\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

// childOf returns the pid of the re-executed lading, a child of pid, or
// 0: the child whose environment marks it. Not any child: starting its
// first process, Go forks a child that exits at once (its pidfd probe).
func childOf(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(field)
			if err != nil {
				continue
			}
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", n))
			if bytes.Contains(env, []byte("\x00"+mountNSEnv+"=1\x00")) || bytes.HasPrefix(env, []byte(mountNSEnv+"=1\x00")) {
				return n
			}
		}
	}
	return 0
}
