package builder_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lading-build/lading/builder"
)

// TestSquash: the layers a stage adds become one, with the same files
// (deletions included) as without --squash.
func TestSquash(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(map[string]string{"a.txt": "a"})
	recipe := "FROM busybox:test\nCOPY a.txt /a.txt\nRUN echo b > /b && rm /bin/vi\nRUN echo c > /c && rm /b\nENV DONE=1\n"
	plain := e.mustBuild(ctxDir, recipe)
	e.opts = func(o *builder.Options) { o.Squash = true }
	squashed := e.mustBuild(ctxDir, recipe)

	plainCfg := skopeoConfig(t, e.exportOCI(plain.Image))
	archive := e.exportOCI(squashed.Image)
	cfg := skopeoConfig(t, archive)
	if got, want := len(cfg.RootFS.DiffIDs), len(plainCfg.RootFS.DiffIDs)-2; got != want {
		t.Errorf("squashed image has %d layers, want %d (base + one)", got, want)
	}
	if len(cfg.History) != len(plainCfg.History) {
		t.Errorf("history has %d entries, want %d", len(cfg.History), len(plainCfg.History))
	}
	root := umociUnpack(t, archive)
	for p, want := range map[string]bool{"a.txt": true, "c": true, "b": false, "bin/vi": false, "bin/sh": true} {
		if _, ok := stat(t, root, p); ok != want {
			t.Errorf("/%s present = %v, want %v", p, ok, want)
		}
	}
}

// TestBuildContexts: --build-context gives COPY --from a directory and
// FROM an image under a name.
func TestBuildContexts(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	extra := t.TempDir()
	if err := os.WriteFile(filepath.Join(extra, "shared.txt"), []byte("shared"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.opts = func(o *builder.Options) {
		o.Contexts = map[string]string{"assets": extra, "base": "docker-image://busybox:test"}
	}
	res := e.mustBuild(ctxDir, "FROM base\nCOPY --from=assets shared.txt /shared.txt\n")
	root := umociUnpack(t, e.exportOCI(res.Image))
	if got, ok := stat(t, root, "shared.txt"); !ok || got.content != "shared" {
		t.Errorf("/shared.txt = %q, %v", got.content, ok)
	}
	if _, ok := stat(t, root, "bin/busybox"); !ok {
		t.Error("FROM base did not use busybox:test")
	}
}
