package builder_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lading-build/lading/builder"
)

const cacheRecipe = `FROM busybox:test
ARG MODE=a
ENV LEVEL=1
COPY src/ /src/
RUN cat /src/*.txt > /all && echo "$MODE $LEVEL" > /vars
RUN ls -ln /src > /listing
COPY late.txt /late.txt
`

func cacheContext(e *env) string {
	return e.context(map[string]string{"src/a.txt": "a", "src/b.txt": "b", "late.txt": "late"})
}

// stepsAfter lists the recipe's steps from the first one starting with
// prefix on: what a change there must re-run.
func stepsAfter(prefix string) []string {
	var out []string
	on := false
	for _, l := range strings.Split(strings.TrimSpace(cacheRecipe), "\n")[1:] {
		if strings.HasPrefix(l, prefix) {
			on = true
		}
		if on && (strings.HasPrefix(l, "COPY") || strings.HasPrefix(l, "RUN")) {
			out = append(out, l)
		}
	}
	return out
}

func fsSteps(list []string) []string {
	var out []string
	for _, s := range list {
		if strings.HasPrefix(s, "COPY") || strings.HasPrefix(s, "RUN") {
			out = append(out, s)
		}
	}
	return out
}

// TestCacheHitsAndMisses changes one input at a time and checks which
// steps run again: exactly the first step that reads the input and every
// filesystem step after it.
func TestCacheHitsAndMisses(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := cacheContext(e)
	first := e.mustBuild(ctxDir, cacheRecipe)
	if hits, _ := e.last.cachedSteps(); len(hits) != 0 {
		t.Fatalf("first build had cache hits: %v", hits)
	}

	// Unchanged inputs, even with every context file touched: all hits,
	// same image.
	later := time.Now().Add(time.Hour)
	filepath.Walk(ctxDir, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, later, later) })
	again := e.mustBuild(ctxDir, cacheRecipe)
	if _, misses := e.last.cachedSteps(); len(fsSteps(misses)) != 0 {
		t.Fatalf("unchanged rebuild missed: %v", misses)
	}
	if again.Digest != first.Digest {
		t.Errorf("cached rebuild gave %s, want %s", again.Digest, first.Digest)
	}

	tests := []struct {
		name   string
		change func(ctxDir string) (recipe string, args map[string]string)
		rerun  []string
	}{
		{"file content", func(d string) (string, map[string]string) {
			os.WriteFile(filepath.Join(d, "src/a.txt"), []byte("A"), 0o644)
			return cacheRecipe, nil
		}, stepsAfter("COPY src/")},
		{"file mode", func(d string) (string, map[string]string) {
			os.Chmod(filepath.Join(d, "src/b.txt"), 0o600)
			return cacheRecipe, nil
		}, stepsAfter("COPY src/")},
		{"file owner", func(d string) (string, map[string]string) {
			os.Chown(filepath.Join(d, "src/b.txt"), 1234, 1234)
			return cacheRecipe, nil
		}, stepsAfter("COPY src/")},
		{"file added", func(d string) (string, map[string]string) {
			os.WriteFile(filepath.Join(d, "src/c.txt"), []byte("c"), 0o644)
			return cacheRecipe, nil
		}, stepsAfter("COPY src/")},
		{"build arg", func(string) (string, map[string]string) {
			return cacheRecipe, map[string]string{"MODE": "b"}
		}, stepsAfter("RUN cat")},
		{"env", func(string) (string, map[string]string) {
			return strings.Replace(cacheRecipe, "LEVEL=1", "LEVEL=2", 1), nil
		}, stepsAfter("RUN cat")},
		{"instruction text", func(string) (string, map[string]string) {
			return strings.Replace(cacheRecipe, "ls -ln /src", "ls -lna /src", 1), nil
		}, []string{"RUN ls -lna /src > /listing", "COPY late.txt /late.txt"}},
		{"late file only", func(d string) (string, map[string]string) {
			os.WriteFile(filepath.Join(d, "late.txt"), []byte("LATE"), 0o644)
			return cacheRecipe, nil
		}, stepsAfter("COPY late.txt")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctxDir := cacheContext(e)
			e.mustBuild(ctxDir, cacheRecipe) // warm for this context
			recipe, args := tt.change(ctxDir)
			if _, err := e.build(ctxDir, recipe, args); err != nil {
				t.Fatal(err)
			}
			_, misses := e.last.cachedSteps()
			if got := fsSteps(misses); !reflect.DeepEqual(got, tt.rerun) {
				t.Errorf("re-ran %q, want %q", got, tt.rerun)
			}
		})
	}
}

// TestCacheBaseImageMoved: a new image under the same name invalidates
// every step of the stage, and --explain-cache says why.
func TestCacheBaseImageMoved(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := cacheContext(e)
	e.mustBuild(ctxDir, cacheRecipe)
	// Move busybox:test to an image with one more file.
	moved := e.mustBuild(e.context(map[string]string{"x": "x"}), "FROM busybox:test\nCOPY x /x\n")
	if err := e.store.Tag("busybox:test", moved.Digest.String()); err != nil {
		t.Fatal(err)
	}
	e.opts = func(o *builder.Options) { o.ExplainCache = true }
	e.mustBuild(ctxDir, cacheRecipe)
	if hits, _ := e.last.cachedSteps(); len(hits) != 0 {
		t.Errorf("steps still cached after the base moved: %v", hits)
	}
	if !strings.Contains(strings.Join(e.last.logs, "\n"), "base") {
		t.Errorf("explain does not mention the base image: %q", e.last.logs)
	}
}

// TestExplainCache checks the explanation of a miss caused by a file.
func TestExplainCache(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := cacheContext(e)
	e.mustBuild(ctxDir, cacheRecipe)
	os.WriteFile(filepath.Join(ctxDir, "src/b.txt"), []byte("changed"), 0o644)
	e.opts = func(o *builder.Options) { o.ExplainCache = true }
	e.mustBuild(ctxDir, cacheRecipe)
	logs := strings.Join(e.last.logs, "\n")
	if !strings.Contains(logs, "src/b.txt") || !strings.Contains(logs, "changed") {
		t.Errorf("explanation %q does not name src/b.txt as changed", logs)
	}
	if strings.Count(logs, "cache miss") == 0 {
		t.Errorf("no explanation printed")
	}
}

// TestNoCache: --no-cache runs everything; --no-cache-filter only the
// named stage.
func TestNoCache(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := cacheContext(e)
	recipe := "FROM busybox:test AS one\nRUN echo 1 > /one\n\nFROM busybox:test AS two\nRUN echo 2 > /two\nCOPY --from=one /one /one\n"
	e.mustBuild(ctxDir, recipe)
	e.opts = func(o *builder.Options) { o.NoCache = true }
	e.mustBuild(ctxDir, recipe)
	if hits, _ := e.last.cachedSteps(); len(hits) != 0 {
		t.Errorf("--no-cache still hit: %v", hits)
	}
	e.opts = func(o *builder.Options) { o.NoCacheFilter = []string{"one"} }
	e.mustBuild(ctxDir, recipe)
	hits, misses := e.last.cachedSteps()
	if !reflect.DeepEqual(hits, []string{"RUN echo 2 > /two"}) || !reflect.DeepEqual(misses, []string{"RUN echo 1 > /one", "COPY --from=one /one /one"}) {
		t.Errorf("--no-cache-filter one: hits %q misses %q", hits, misses)
	}
}

// TestConcurrentBuildsShareCache runs two builds of one recipe at once on
// one root: both succeed, with the same image.
func TestConcurrentBuildsShareCache(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := cacheContext(e)
	recipe := cacheRecipe + "RUN sleep 0.2 && date > /when\n"
	var wg sync.WaitGroup
	results := make([]*builder.Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.buildQuiet(ctxDir, recipe)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
	}
	if results[0].Digest != results[1].Digest {
		t.Errorf("concurrent builds gave %s and %s: a step ran twice", results[0].Digest, results[1].Digest)
	}
}

// TestCacheKeyHasEpoch: layers written with SOURCE_DATE_EPOCH differ
// (clamped mtimes), so a build with it does not reuse steps built without.
func TestCacheKeyHasEpoch(t *testing.T) {
	e := newEnv(t)
	ctxDir := cacheContext(e)
	recipe := "FROM scratch\nCOPY src/ /src/\n"
	e.mustBuild(ctxDir, recipe)
	epoch := int64(1000)
	e.epoch = &epoch
	e.mustBuild(ctxDir, recipe)
	if hits, _ := e.last.cachedSteps(); len(hits) != 0 {
		t.Errorf("a SOURCE_DATE_EPOCH build reused %v from a build without it", hits)
	}
	e.mustBuild(ctxDir, recipe)
	if _, misses := e.last.cachedSteps(); len(misses) != 0 {
		t.Errorf("the same epoch again re-ran %v", misses)
	}
}
