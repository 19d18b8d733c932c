package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/internal/testutil"
)

// TestSecurityOptSeccomp builds a RUN step that creates a user namespace:
// refused by the default filter with the recipe line, allowed with
// --security-opt seccomp=unconfined, refused again by a profile file.
func TestSecurityOptSeccomp(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	dir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN grep Seccomp: /proc/self/status && unshare -U true\n")
	r := lading(t, "", "build", "--root", root, "--progress", "plain", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "Recipe:3: RUN") || !strings.Contains(r.stderr, "Seccomp:\t2") {
		t.Fatalf("default filter: exit %d\n%s", r.code, r.stderr)
	}
	r = lading(t, "", "build", "--root", root, "--progress", "plain", "--security-opt", "seccomp=unconfined", dir)
	if r.code != 0 || !strings.Contains(r.stderr, "Seccomp:\t0") {
		t.Fatalf("unconfined: exit %d\n%s", r.code, r.stderr)
	}
	profile := filepath.Join(t.TempDir(), "deny-unshare.json")
	writeFiles(t, filepath.Dir(profile), map[string]string{filepath.Base(profile): `{"defaultAction":"SCMP_ACT_ALLOW",
		"syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ERRNO"}]}`})
	r = lading(t, "", "build", "--root", root, "--progress", "plain", "--security-opt", "seccomp="+profile, dir)
	if r.code != 1 || !strings.Contains(r.stderr, "Recipe:3: RUN") {
		t.Fatalf("profile file: exit %d\n%s", r.code, r.stderr)
	}
	for _, opt := range []string{"seccomp=" + filepath.Join(root, "missing.json"), "apparmor=unconfined", "seccomp=" + dir + "/Recipe"} {
		r = lading(t, "", "build", "--root", root, "--security-opt", opt, dir)
		if r.code != 1 || !strings.Contains(lastLine(r.stderr), "--security-opt") {
			t.Errorf("%s: exit %d, last line %q", opt, r.code, lastLine(r.stderr))
		}
	}
}
