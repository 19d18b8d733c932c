package builder_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

func fileHash(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestRecipeCannotEscape builds hostile recipes: WORKDIR through
// /proc/self/fd (runc CVE-2024-21626) must not reach host directories,
// and writing through /proc/self/exe (CVE-2019-5736) must not change the
// binary running the build.
func TestRecipeCannotEscape(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, exe)
	hostSecret := "host-only-" + fmt.Sprint(os.Getpid())
	secretFile, err := os.CreateTemp("", "lading-host-secret-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(secretFile.Name())
	secretFile.WriteString(hostSecret)
	secretFile.Close()

	ctxDir := e.context(nil)
	for fd := 3; fd <= 9; fd++ {
		recipe := fmt.Sprintf("FROM busybox:test\nWORKDIR /proc/self/fd/%d\n"+
			"RUN (ls -la ../../../../ ; cat %s ; find / -xdev -name 'lading-host-secret-*' 2>/dev/null) > /leak.txt 2>&1 || true\n",
			fd, secretFile.Name())
		res, err := e.build(ctxDir, recipe, nil)
		if err != nil {
			// Refusing the step is containment too, if it says where.
			if !strings.HasPrefix(err.Error(), "Recipe:") {
				t.Errorf("fd %d: error without a recipe line: %v", fd, err)
			}
			continue
		}
		root := umociUnpack(t, e.exportOCI(res.Image))
		got, _ := stat(t, root, "leak.txt")
		if strings.Contains(got.content, hostSecret) || strings.Contains(got.content, "lading-host-secret-") {
			t.Errorf("WORKDIR /proc/self/fd/%d reached the host:\n%s", fd, got.content)
		}
	}
	e.mustBuild(ctxDir, "FROM busybox:test\nRUN for p in /proc/self/exe /proc/1/exe; do (echo pwned > $p) 2>/dev/null; (cat /bin/busybox > $p) 2>/dev/null; done; true\n")
	if after := fileHash(t, exe); after != before {
		t.Errorf("the binary running the build changed (%s -> %s)", before, after)
	}
}
