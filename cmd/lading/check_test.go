package main

import (
	"strings"
	"testing"
)

// TestBuildCheck checks build --check: the linter's warnings as
// FILE:LINE lines, no build (the failing RUN never runs), exit 1 only
// with --check=error, and "# check=skip=" honoured.
func TestBuildCheck(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM scratch AS Bad\nMAINTAINER me\nRUN false\nCMD echo hi\n",
		"Skip":       "# check=skip=MaintainerDeprecated,StageNameCasing\nFROM scratch AS Bad\nMAINTAINER me\nRUN false\n",
	})
	r := lading(t, "", "build", "--root", t.TempDir(), "--check", dir)
	for _, want := range []string{
		"Dockerfile:1: warning: StageNameCasing: Stage name 'Bad' should be lowercase",
		"Dockerfile:2: warning: MaintainerDeprecated",
		"Dockerfile:4: warning: JSONArgsRecommended",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--check output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.code != 0 || strings.Contains(r.stderr, "RUN false") {
		t.Errorf("--check: exit %d, stderr %q; want 0 and no build", r.code, r.stderr)
	}
	r = lading(t, "", "build", "--root", t.TempDir(), "--check=error", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "3 linter warning(s)") {
		t.Errorf("--check=error: exit %d, stderr %q; want 1", r.code, r.stderr)
	}
	r = lading(t, "", "build", "--root", t.TempDir(), "--check=error", "-f", dir+"/Skip", dir)
	if r.code != 0 || r.stdout != "" {
		t.Errorf("--check=error with skips: exit %d, stdout %q, stderr %q; want 0 and nothing", r.code, r.stdout, r.stderr)
	}
}
