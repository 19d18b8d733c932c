package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var probe struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

// addProbe builds testdata/probe once per test binary, statically, and
// copies it into root as /bin/probe.
func addProbe(tb testing.TB, root string) {
	tb.Helper()
	probe.once.Do(func() {
		probe.dir, probe.err = os.MkdirTemp("", "lading-probe-")
		if probe.err != nil {
			return
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			probe.err = fmt.Errorf("the probe is built with the go command: %w", err)
			return
		}
		cmd := exec.Command(gobin, "build", "-o", filepath.Join(probe.dir, "probe"), "./testdata/probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		probe.out, probe.err = cmd.CombinedOutput()
	})
	if probe.err != nil {
		tb.Fatalf("building probe: %v\n%s", probe.err, probe.out)
	}
	b, err := os.ReadFile(filepath.Join(probe.dir, "probe"))
	must(tb, err)
	must(tb, os.WriteFile(filepath.Join(root, "bin/probe"), b, 0o755))
}
