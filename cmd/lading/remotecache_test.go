package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/internal/testutil"
)

// TestRemoteCacheRoundTrip: a build on one root exports its cache to a
// real registry (and a directory); a build of the same recipe on a second,
// empty root serves every step from it, runs no RUN step, and produces
// the same image digest.
func TestRemoteCacheRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t, false)
	recipe := "FROM scratch AS tools\nCOPY rootfs/ /\nRUN echo built-tool > /tool\n\n" +
		"FROM tools\nCOPY --from=tools /tool /usr/bin/tool\nRUN echo $(cat /usr/bin/tool) > /result\nENV X=1\n"
	dir := busyboxContext(t, recipe)
	ref := reg.Host + "/cache/app:buildcache"
	cacheDir := filepath.Join(t.TempDir(), "cachedir")
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	first := t.TempDir()
	testutil.CheckNoMounts(t, first)
	r := ladingEnv(t, env, "build", "--root", first, "--progress", "plain", "--insecure-registry", reg.Host,
		"--cache-to", "type=registry,ref="+ref+",mode=max", "--cache-to", "type=local,dest="+cacheDir+",mode=max", dir)
	if r.code != 0 {
		t.Fatalf("first build: %s", r.stderr)
	}
	want := strings.TrimSpace(r.stdout)
	for _, from := range []string{"type=registry,ref=" + ref, "type=local,src=" + cacheDir} {
		second := t.TempDir()
		testutil.CheckNoMounts(t, second)
		r = ladingEnv(t, env, "build", "--root", second, "--progress", "plain", "--insecure-registry", reg.Host, "--cache-from", from, dir)
		if r.code != 0 {
			t.Fatalf("second build (%s): %s", from, r.stderr)
		}
		if got := strings.TrimSpace(r.stdout); got != want {
			t.Errorf("--cache-from %s: digest %s, want %s", from, got, want)
		}
		if n := strings.Count(r.stderr, "CACHED"); n != 4 {
			t.Errorf("--cache-from %s: %d filesystem steps cached, want all 4:\n%s", from, n, r.stderr)
		}
		if runs := ranSteps(r.stderr, "RUN"); len(runs) != 0 {
			t.Errorf("--cache-from %s: RUN steps executed: %v", from, runs)
		}
	}
}

// ranSteps returns the labels of steps whose text starts with prefix and
// that finished DONE (not CACHED) in plain progress output.
func ranSteps(out, prefix string) []string {
	labels := map[string]string{}
	var ran []string
	for _, line := range strings.Split(out, "\n") {
		id, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(id, "#") {
			continue
		}
		if strings.HasPrefix(rest, "[") {
			if i := strings.Index(rest, "] "); i > 0 {
				labels[id] = rest[i+2:]
			}
			continue
		}
		if strings.HasPrefix(rest, "DONE") && strings.HasPrefix(labels[id], prefix) {
			ran = append(ran, labels[id])
		}
	}
	return ran
}
