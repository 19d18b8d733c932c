package builder_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lading-build/lading/builder"
)

// TestCopySourceChangedAfterKeying changes a context file after its COPY
// is keyed and before it is copied: the build fails naming the file, no
// cache record is left under the key of the old content (a rebuild with
// the old content restored copies it again and gets the old content),
// and the rebuild after that hits the cache.
func TestCopySourceChangedAfterKeying(t *testing.T) {
	e := newEnv(t)
	ctxDir := e.context(map[string]string{"d/a": "old", "d/b": "b"})
	src := filepath.Join(ctxDir, "d/a")
	recipe := "FROM scratch\nCOPY d/ /d/\n"
	calls := 0
	e.opts = func(o *builder.Options) {
		o.CopyKeyed = func() {
			calls++
			if err := os.WriteFile(src, []byte("new content"), 0o644); err != nil {
				t.Error(err)
			}
		}
	}
	_, err := e.build(ctxDir, recipe, nil)
	if calls != 1 {
		t.Fatalf("CopyKeyed called %d times, want 1", calls)
	}
	if err == nil || !strings.Contains(err.Error(), "d/a changed during the build") {
		t.Fatalf("build with d/a changed after keying: err %v, want one naming d/a", err)
	}

	e.opts = nil
	if err := os.WriteFile(src, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(wantHit bool) {
		t.Helper()
		res := e.mustBuild(ctxDir, recipe)
		if got := imageFiles(t, res.Image)["/d/a"].content; got != "old" {
			t.Errorf("/d/a is %q, want %q", got, "old")
		}
		hits, misses := e.last.cachedSteps()
		want := []string{"COPY d/ /d/"}
		if wantHit && !reflect.DeepEqual(hits, want) || !wantHit && !reflect.DeepEqual(misses, want) {
			t.Errorf("hits %q, misses %q; want the COPY to hit: %v", hits, misses, wantHit)
		}
	}
	check(false)
	check(true)
}
