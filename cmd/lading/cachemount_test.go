package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/internal/testutil"
)

// TestCacheMountExportImport carries a cache mount's contents from one
// root to another, as a CI system carries them between runners.
func TestCacheMountExportImport(t *testing.T) {
	testutil.RequireRoot(t)
	rootA, rootB := t.TempDir(), t.TempDir()
	testutil.CheckNoMounts(t, rootA)
	testutil.CheckNoMounts(t, rootB)
	dir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\n"+
		"RUN --mount=type=cache,id=deps,target=/cache,uid=1000 "+
		"if [ -f /cache/downloaded ]; then echo warm > /state; else echo fetched > /cache/downloaded; echo cold > /state; fi\n")
	out := t.TempDir()
	build := func(root, dest string) string {
		r := lading(t, "", "build", "--root", root, "--no-cache", "--progress", "quiet", "--output", "type=local,dest="+dest, dir)
		if r.code != 0 {
			t.Fatalf("build: %s", r.stderr)
		}
		b, _ := os.ReadFile(filepath.Join(dest, "state"))
		return string(b)
	}
	if got := build(rootA, filepath.Join(out, "a")); got != "cold\n" {
		t.Fatalf("first build on A: %q", got)
	}
	archive := filepath.Join(out, "cache.tgz")
	if r := lading(t, "", "cache", "export", "--root", rootA, "-o", archive); r.code != 0 {
		t.Fatalf("export: %s", r.stderr)
	}
	r := lading(t, "", "cache", "import", "--root", rootB, "-i", archive)
	if r.code != 0 || !strings.Contains(r.stdout, "imported cache mount deps") {
		t.Fatalf("import: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if got := build(rootB, filepath.Join(out, "b")); got != "warm\n" {
		t.Errorf("build on B after import: %q, want warm", got)
	}
	if r := lading(t, "", "cache", "ls", "--root", rootB); strings.TrimSpace(r.stdout) != "deps" {
		t.Errorf("cache ls: %q", r.stdout)
	}
}
