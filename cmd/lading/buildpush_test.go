package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/internal/testutil"
)

// TestBuildPullsAndPushes: a base image pushed to a real registry with
// skopeo is pulled by FROM, and --push sends the result to the registry,
// where skopeo sees the digest lading printed.
func TestBuildPullsAndPushes(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "skopeo")
	reg := testutil.StartRegistry(t, false)
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)

	// A busybox base, built locally, exported, and pushed with skopeo.
	baseDir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\n")
	baseTar := filepath.Join(t.TempDir(), "base.tar")
	if r := lading(t, "", "build", "--root", t.TempDir(), "--progress", "quiet", "-t", "base:1", "--output", "type=oci,dest="+baseTar, baseDir); r.code != 0 {
		t.Fatalf("base build: %s", r.stderr)
	}
	out, err := exec.Command("skopeo", "copy", "--dest-tls-verify=false", "oci-archive:"+baseTar, "docker://"+reg.Host+"/base:1").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}

	app := writeRecipe(t, "FROM "+reg.Host+"/base:1\nRUN echo built > /app\n")
	r := lading(t, "", "build", "--root", root, "--progress", "plain", "--insecure-registry", reg.Host,
		"-t", reg.Host+"/app:1", "--push", app)
	if r.code != 0 {
		t.Fatalf("build --push failed (%d):\n%s", r.code, r.stderr)
	}
	digest := strings.TrimSpace(r.stdout)
	var remote struct{ Digest string }
	out, err = exec.Command("skopeo", "inspect", "--tls-verify=false", "docker://"+reg.Host+"/app:1").Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	if err := json.Unmarshal(out, &remote); err != nil || remote.Digest != digest {
		t.Errorf("registry has %q, lading printed %q (%v)", remote.Digest, digest, err)
	}
	// --progress json: the pull's progress comes as JSON log events,
	// and nothing else is written but JSON lines.
	r = lading(t, "", "build", "--root", t.TempDir(), "--progress", "json", "--insecure-registry", reg.Host, app)
	if r.code != 0 {
		t.Fatalf("json build failed (%d):\n%s", r.code, r.stderr)
	}
	fetched := false
	for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
		var e struct{ Type, Text string }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("--progress json wrote a line that is not JSON: %q", l)
		}
		fetched = fetched || e.Type == "log" && strings.Contains(e.Text, "fetched")
	}
	if !fetched {
		t.Errorf("no pull progress among the events:\n%s", r.stderr)
	}
	// --pull=never with an empty root fails clearly; missing pulls again.
	r = lading(t, "", "build", "--root", t.TempDir(), "--pull=never", app)
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "Recipe:1: ") {
		t.Errorf("--pull=never: exit %d, %q", r.code, lastLine(r.stderr))
	}
}
