package main

import (
	"os"
	"os/exec"
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
	if n := count(t, r.stdout, `cache records\s+(\d+)`); n != 4 {
		t.Errorf("du reports %d records, want 4:\n%s", n, r.stdout)
	}
	blobsBefore := countFiles(t, filepath.Join(root, "blobs", "sha256"))
	content := filepath.Join(root, "cache", "content")
	if n := countFiles(t, content); n == 0 {
		t.Error("no copy content entry after two COPY steps")
	}

	r = lading(t, "", "prune", "--root", root)
	if r.code != 0 || !strings.Contains(r.stdout, "removed 4 cache records") {
		t.Fatalf("prune: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Their snapshots went with the records: the entries go too.
	if n := countFiles(t, content); n != 0 {
		t.Errorf("%d copy content entries left after prune", n)
	}
	// Nothing is left in the snapshotter: no record uses any snapshot.
	if n := countFiles(t, filepath.Join(root, "snapshots", "overlay", "snapshots")); n != 0 {
		t.Errorf("%d snapshots left after prune", n)
	}
	if n := count(t, lading(t, "", "du", "--root", root).stdout, `cache records\s+(\d+)`); n != 0 {
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

// TestDuAndPruneFilters builds with both snapshotters and two cache
// mounts, checks that du's total matches du -sb of the root, then prunes
// one cache mount by id, nothing by age, every record of both
// snapshotters by default, and the last mount with --all.
func TestDuAndPruneFilters(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	dir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\n"+
		"RUN --mount=type=cache,id=keep,target=/c echo kept > /c/f && echo one > /one\n"+
		"RUN --mount=type=cache,id=drop,target=/d dd if=/dev/zero of=/d/f bs=1k count=300 2>/dev/null\n")
	for _, sn := range []string{"overlay", "native"} {
		if r := lading(t, "", "build", "--root", root, "--snapshotter", sn, "--progress", "quiet", dir); r.code != 0 {
			t.Fatalf("%s build: %s", sn, r.stderr)
		}
	}
	du := ok(t, "", "du", "--root", root)
	for _, kind := range []string{"blobs", "step snapshots", "cache records", "cache mounts"} {
		if n := count(t, du, kind+`\s+\d+\s+\S+ \S+\s+(\d+)`); n == 0 {
			t.Errorf("du reports no bytes of %s:\n%s", kind, du)
		}
	}
	if n := count(t, du, `cache records\s+(\d+)`); n != 6 {
		t.Errorf("du reports %d cache records, want 3 per snapshotter:\n%s", n, du)
	}
	if n := count(t, du, `cache mounts\s+(\d+)`); n != 2 {
		t.Errorf("du reports %d cache mounts, want 2:\n%s", n, du)
	}
	total := count(t, du, `total\s+\S+ \S+\s+(\d+)`)
	out, err := exec.Command("du", "-sb", root).Output()
	if err != nil {
		t.Fatal(err)
	}
	real, _ := strconv.Atoi(strings.Fields(string(out))[0])
	t.Logf("du total %d, du -sb %d", total, real)
	if diff := float64(total-real) / float64(real); diff > 0.03 || diff < -0.03 {
		t.Errorf("du total %d, du -sb %d: %.1f%% apart\n%s", total, real, 100*diff, du)
	}

	r := lading(t, "", "prune", "--root", root, "--filter", "id=drop")
	if r.code != 0 || !strings.Contains(r.stdout, "removed 0 cache records") || !strings.Contains(r.stdout, "1 cache mounts") {
		t.Fatalf("prune --filter id=drop: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := countFiles(t, filepath.Join(root, "cache-mounts")); n != 1 {
		t.Errorf("%d cache mounts left, want 1 (keep)", n)
	}
	r = lading(t, "", "prune", "--root", root, "--mounts", "--filter", "until=1h")
	if r.code != 0 || !strings.Contains(r.stdout, "removed 0 cache records") || !strings.Contains(r.stdout, "0 cache mounts") {
		t.Fatalf("prune --filter until=1h removed recent things: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = lading(t, "", "prune", "--root", root)
	if r.code != 0 || !strings.Contains(r.stdout, "removed 6 cache records") || !strings.Contains(r.stdout, "0 cache mounts") {
		t.Fatalf("prune: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, sn := range []string{"overlay", "native"} {
		if n := countFiles(t, filepath.Join(root, "snapshots", sn, "snapshots")); n != 0 {
			t.Errorf("%d %s snapshots left after prune", n, sn)
		}
	}
	if n := countFiles(t, filepath.Join(root, "cache-mounts")); n != 1 {
		t.Errorf("prune without --mounts removed cache mounts: %d left", n)
	}
	if r = lading(t, "", "prune", "--root", root, "--all"); r.code != 0 || !strings.Contains(r.stdout, "1 cache mounts") {
		t.Fatalf("prune --all: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, bad := range []string{"id=", "until=soon", "color=red"} {
		if r := lading(t, "", "prune", "--root", root, "--filter", bad); r.code == 0 || !strings.Contains(r.stderr, "--filter") {
			t.Errorf("prune --filter %s: exit %d, stderr %q", bad, r.code, r.stderr)
		}
	}
}
