package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lading-build/lading/internal/testutil"
)

// TestPruneAndDu fills the cache, checks du reports it, prunes it all and
// checks the next build runs every step again while the named image's
// blobs survive.
func TestPruneAndDu(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "skopeo")
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	dir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN echo one > /one\nRUN echo two > /two\n")
	if r := lading(t, "", "build", "--root", root, "-t", "kept:1", "--progress", "quiet", dir); r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	// An unnamed image whose blobs prune may delete.
	other := busyboxContext(t, "FROM scratch\nCOPY rootfs/bin/busybox /bb\n")
	if r := lading(t, "", "build", "--root", root, "--progress", "quiet", other); r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	r := lading(t, "", "du", "--root", root)
	if n := count(t, r.stdout, `cache records:\s+(\d+)`); n != 4 {
		t.Errorf("du reports %d records, want 4:\n%s", n, r.stdout)
	}
	blobsBefore := countFiles(t, filepath.Join(root, "blobs", "sha256"))

	r = lading(t, "", "prune", "--root", root)
	if r.code != 0 || !strings.Contains(r.stdout, "removed 4 cache records") {
		t.Fatalf("prune: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Nothing is left in the snapshotter: no record uses any snapshot.
	if n := countFiles(t, filepath.Join(root, "snapshots", "overlay", "snapshots")); n != 0 {
		t.Errorf("%d snapshots left after prune", n)
	}
	if n := count(t, lading(t, "", "du", "--root", root).stdout, `cache records:\s+(\d+)`); n != 0 {
		t.Errorf("du after prune reports %d records", n)
	}
	if after := countFiles(t, filepath.Join(root, "blobs", "sha256")); after >= blobsBefore {
		t.Errorf("prune deleted no blob (%d before, %d after)", blobsBefore, after)
	}
	// The named image is intact.
	out := filepath.Join(t.TempDir(), "kept.tar")
	if r := lading(t, "", "build", "--root", root, "--progress", "plain", "-t", "kept:1", "--output", "type=oci,dest="+out, dir); r.code != 0 || strings.Contains(r.stderr, "CACHED") {
		t.Fatalf("rebuild after prune: exit %d, want every step run:\n%s", r.code, r.stderr)
	}
	var img struct{ Layers []string }
	inspect(t, "oci-archive:"+out, &img)
	if len(img.Layers) != 3 {
		t.Errorf("rebuilt image has %d layers, want 3", len(img.Layers))
	}
}

func count(t *testing.T, s, pattern string) int {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%q not found in:\n%s", pattern, s)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
