package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lading-build/lading/internal/testutil"
)

// TestKillDuringBuild SIGKILLs lading at several points of a build with
// many committing steps, then checks that the next build on the same root
// succeeds, that its image is right, and that nothing was left running or
// mounted.
func TestKillDuringBuild(t *testing.T) {
	testutil.RequireRoot(t)
	if testing.Short() {
		t.Skip("kills several builds")
	}
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	marker := "lading-kill-test-" + filepath.Base(filepath.Dir(root))
	var recipe strings.Builder
	recipe.WriteString("FROM scratch\nCOPY rootfs/ /\n")
	const steps = 25
	for i := 1; i <= steps; i++ {
		fmt.Fprintf(&recipe, "RUN echo %d > /f%d && sleep 0.01; : %s\n", i, i, marker)
	}
	dir := busyboxContext(t, recipe.String())

	for _, delay := range []time.Duration{150, 300, 450, 600, 800} {
		cmd := exec.Command(os.Args[0], "build", "--root", root, "--progress", "quiet", dir)
		cmd.Env = append(os.Environ(), cliEnv+"=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		waitGone(t, marker)
	}
	// Every blob the killed builds stored is whole.
	if r := lading(t, "", "check", "--root", root); r.code != 0 {
		t.Errorf("lading check after kills: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	out := t.TempDir()
	r := lading(t, "", "build", "--root", root, "--progress", "plain", "--output", "type=local,dest="+filepath.Join(out, "rootfs"), dir)
	if r.code != 0 {
		t.Fatalf("build after kills failed (%d):\n%s", r.code, r.stderr)
	}
	for i := 1; i <= steps; i++ {
		b, err := os.ReadFile(filepath.Join(out, "rootfs", fmt.Sprintf("f%d", i)))
		if err != nil || string(b) != fmt.Sprintf("%d\n", i) {
			t.Errorf("/f%d = %q, %v; want %d", i, b, err, i)
		}
	}
	// And it is all cached now.
	r = lading(t, "", "build", "--root", root, "--progress", "plain", dir)
	if r.code != 0 || strings.Count(r.stderr, "CACHED") != steps+1 {
		t.Errorf("rebuild: exit %d, %d cached steps, want %d:\n%s", r.code, strings.Count(r.stderr, "CACHED"), steps+1, r.stderr)
	}
}

// waitGone waits until no process with marker in its command line is
// left (the container of a killed build dies with it).
func waitGone(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for processRunning(marker) {
		if time.Now().After(deadline) {
			t.Fatalf("processes of a killed build are still running")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
