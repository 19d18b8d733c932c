package builder_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/internal/testutil"
)

// TestRunNeedsEmulation: a RUN in an image of an architecture this
// machine neither runs natively nor has a binfmt_misc handler for fails,
// naming the platform and how to enable emulation.
func TestRunNeedsEmulation(t *testing.T) {
	var arch string
	for _, a := range []string{"s390x", "riscv64", "mips64le", "ppc64le"} {
		if ok, _ := builder.BinfmtEnabled(a); !ok && !builder.NativeArch(a) {
			arch = a
			break
		}
	}
	if arch == "" {
		t.Skip("every candidate architecture has a binfmt_misc handler")
	}
	e := newEnv(t)
	ctxDir := e.context(nil)
	testutil.BusyboxRootfs(t, filepath.Join(ctxDir, "rootfs"))
	recipe := "FROM --platform=linux/" + arch + " scratch\nCOPY rootfs/ /\nRUN true\n"
	_, err := e.build(ctxDir, recipe, nil)
	if err == nil {
		t.Fatal("the RUN of a " + arch + " image ran without emulation")
	}
	for _, want := range []string{"Recipe:3:", "linux/" + arch, "qemu-user-static", "lading binfmt --install"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
