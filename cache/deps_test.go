package cache

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the layering honest: the cache knows snapshots
// and layers only through callbacks and plain values.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/lading-build/lading/builder",
			"github.com/lading-build/lading/runtime",
			"github.com/lading-build/lading/snapshot",
			"github.com/lading-build/lading/parser",
			"github.com/google/go-containerregistry",
		} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("cache depends on %s", dep)
			}
		}
	}
}
