package builder_test

import (
	"errors"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/copier"
	"github.com/lading-build/lading/internal/testutil"
)

// TestCopyFlags checks COPY --exclude, --parents and symbolic --chmod in a
// real build.
func TestCopyFlags(t *testing.T) {
	e := newEnv(t)
	ctxDir := e.context(map[string]string{
		"src/a.go":          "a",
		"src/a_test.go":     "t",
		"src/sub/b.go":      "b",
		"src/sub/b.tmp":     "tmp",
		"pkgs/one/pkg.json": "1",
		"pkgs/two/pkg.json": "2",
		"pkgs/two/other":    "x",
		"bin/tool":          "#!/bin/sh",
	})
	os.Chmod(filepath.Join(ctxDir, "bin/tool"), 0o700)
	recipe := "FROM scratch\n" +
		"COPY --exclude=*_test.go --exclude=**/*.tmp src/ /src/\n" +
		"COPY --parents pkgs/*/pkg.json /app/\n" +
		"COPY --chmod=u=rwX,go=rX bin/ /bin/\n"
	res := e.mustBuild(ctxDir, recipe)
	root := umociUnpack(t, e.exportOCI(res.Image))
	for p, want := range map[string]bool{
		"src/a.go": true, "src/sub/b.go": true, "src/a_test.go": false, "src/sub/b.tmp": false,
		"app/pkgs/one/pkg.json": true, "app/pkgs/two/pkg.json": true, "app/pkgs/two/other": false,
	} {
		if _, ok := stat(t, root, p); ok != want {
			t.Errorf("/%s present = %v, want %v", p, ok, want)
		}
	}
	if got, _ := stat(t, root, "bin/tool"); got.mode.Perm() != 0o755 {
		t.Errorf("--chmod=u=rwX,go=rX on a 0700 file gave %v, want 0755", got.mode.Perm())
	}
}

// TestAddGit clones a repository served over http on 127.0.0.1 with git
// http-backend: a ref and subdir, .git dropped, keyed by commit.
func TestAddGit(t *testing.T) {
	e := newEnv(t)
	git := testutil.RequireTool(t, "git")
	backend := filepath.Join(strings.TrimSpace(run(t, git, "--exec-path")), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skip("git-http-backend not found")
	}
	repos := t.TempDir()
	repo := filepath.Join(repos, "app.git")
	work := t.TempDir()
	gitIn := func(args ...string) string {
		return run(t, git, append([]string{"-C", work, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
	}
	gitIn("init", "-q", "-b", "main")
	os.MkdirAll(filepath.Join(work, "docs"), 0o755)
	os.WriteFile(filepath.Join(work, "docs/readme.txt"), []byte("v1"), 0o644)
	os.WriteFile(filepath.Join(work, "top.txt"), []byte("top"), 0o644)
	gitIn("add", ".")
	gitIn("commit", "-q", "-m", "one")
	gitIn("tag", "v1")
	run(t, git, "clone", "-q", "--bare", work, repo)
	srv := httptest.NewServer(&cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + repos, "GIT_HTTP_EXPORT_ALL=1"}})
	defer srv.Close()

	ctxDir := e.context(nil)
	recipe := "FROM scratch\nADD " + srv.URL + "/app.git#v1:docs /docs/\nADD " + srv.URL + "/app.git /full/\n"
	if _, err := e.build(ctxDir, recipe, nil); !errors.Is(err, copier.ErrHostAddress) {
		t.Fatalf("ADD of a Git repository on 127.0.0.1 without --allow network.host: err = %v", err)
	}
	e.opts = func(o *builder.Options) { o.Allow = []string{builder.AllowNetworkHost} } // served on 127.0.0.1
	res := e.mustBuild(ctxDir, recipe)
	root := umociUnpack(t, e.exportOCI(res.Image))
	if got, _ := stat(t, root, "docs/readme.txt"); got.content != "v1" {
		t.Errorf("/docs/readme.txt = %q", got.content)
	}
	if _, ok := stat(t, root, "full/top.txt"); !ok {
		t.Error("/full/top.txt missing")
	}
	if _, ok := stat(t, root, "full/.git"); ok {
		t.Error(".git copied without --keep-git-dir")
	}
	// Unchanged repository: cached. A new commit: the full clone re-runs.
	e.mustBuild(ctxDir, recipe)
	if _, misses := e.last.cachedSteps(); len(misses) != 0 {
		t.Errorf("unchanged repository re-ran %v", misses)
	}
	os.WriteFile(filepath.Join(work, "top.txt"), []byte("top2"), 0o644)
	gitIn("commit", "-q", "-am", "two")
	gitIn("push", "-q", repo, "main")
	e.mustBuild(ctxDir, recipe)
	if _, misses := e.last.cachedSteps(); len(misses) != 1 {
		t.Errorf("after a new commit re-ran %v, want only the full ADD", misses)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
