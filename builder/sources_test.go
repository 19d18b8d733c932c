package builder_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/copier"
	"github.com/lading-build/lading/image"
)

func tarGz(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o640, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestAddSources checks ADD: local archives extracted, URLs fetched with
// their checksum verified, a wrong checksum failing the build.
func TestAddSources(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("downloaded\n"))
	}))
	defer srv.Close()
	ctxDir := e.context(map[string]string{
		"bundle.tgz": tarGz(t, map[string]string{"pkg/a.txt": "from archive"}),
		"plain.txt":  "plain",
	})
	sum := "sha256:" + sha256hex("downloaded\n")
	recipe := "FROM scratch\nADD bundle.tgz /opt/\nADD plain.txt /plain.txt\nADD --checksum=" + sum + " " + srv.URL + "/file.txt /dl/\n"
	// The server is on the host's 127.0.0.1: a recipe alone cannot read it.
	if _, err := e.build(ctxDir, recipe, nil); !errors.Is(err, copier.ErrHostAddress) || !strings.HasPrefix(err.Error(), "Recipe:4: ") {
		t.Fatalf("ADD from 127.0.0.1 without --allow network.host: err = %v", err)
	}
	e.opts = func(o *builder.Options) { o.Allow = []string{builder.AllowNetworkHost} }
	res := e.mustBuild(ctxDir, recipe)
	root := umociUnpack(t, e.exportOCI(res.Image))
	for p, w := range map[string]string{"opt/pkg/a.txt": "from archive", "plain.txt": "plain", "dl/file.txt": "downloaded\n"} {
		if got, ok := stat(t, root, p); !ok || got.content != w {
			t.Errorf("/%s = %q, want %q", p, got.content, w)
		}
	}
	if got, _ := stat(t, root, "dl/file.txt"); got.mode.Perm() != 0o600 {
		t.Errorf("downloaded file mode %v, want 0600", got.mode)
	}
	bad := "FROM scratch\nADD --checksum=sha256:" + strings.Repeat("0", 64) + " " + srv.URL + "/file.txt /dl/\n"
	if _, err := e.build(ctxDir, bad, nil); err == nil || !strings.HasPrefix(err.Error(), "Recipe:2: ") {
		t.Errorf("wrong checksum: error %v, want Recipe:2: ...", err)
	}
}

// TestFromArchives builds FROM oci-archive: and docker-archive: tarballs
// written by an earlier build.
func TestFromArchives(t *testing.T) {
	e := newEnv(t)
	ctxDir := e.context(map[string]string{"base.txt": "base", "top.txt": "top"})
	base := e.mustBuild(ctxDir, "FROM scratch\nCOPY base.txt /\nENV FROM_BASE=1\n")
	ociPath := filepath.Join(e.dir, "base-oci.tar")
	dockerPath := filepath.Join(e.dir, "base-docker.tar")
	if err := image.NewOCIArchive(ociPath, []string{"base:1"}).Export(context.Background(), base.Image); err != nil {
		t.Fatal(err)
	}
	if err := image.NewDockerArchive(dockerPath, []string{"base:1"}).Export(context.Background(), base.Image); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"oci-archive:" + ociPath, "docker-archive:" + dockerPath} {
		res := e.mustBuild(ctxDir, "FROM "+ref+"\nCOPY top.txt /\n")
		archive := e.exportOCI(res.Image)
		root := umociUnpack(t, archive)
		for _, p := range []string{"base.txt", "top.txt"} {
			if _, ok := stat(t, root, p); !ok {
				t.Errorf("FROM %s: /%s missing", ref, p)
			}
		}
		cfg := skopeoConfig(t, archive)
		if !containsStr(cfg.Config.Env, "FROM_BASE=1") {
			t.Errorf("FROM %s: base env lost: %v", ref, cfg.Config.Env)
		}
		if len(cfg.RootFS.DiffIDs) != 2 {
			t.Errorf("FROM %s: %d layers, want 2", ref, len(cfg.RootFS.DiffIDs))
		}
	}
}

// TestOnbuild checks that ONBUILD triggers of a base image run when a
// later recipe builds FROM it, and are not inherited further.
func TestOnbuild(t *testing.T) {
	e := newEnv(t)
	ctxDir := e.context(map[string]string{"trigger.txt": "triggered"})
	base := e.mustBuild(ctxDir, "FROM scratch\nONBUILD COPY trigger.txt /from-trigger.txt\nONBUILD ENV TRIGGERED=yes\n")
	if err := e.store.Tag("onbuild-base:1", base.Digest.String()); err != nil {
		t.Fatal(err)
	}
	res := e.mustBuild(ctxDir, "FROM onbuild-base:1\nENV AFTER=1\n")
	archive := e.exportOCI(res.Image)
	root := umociUnpack(t, archive)
	if got, ok := stat(t, root, "from-trigger.txt"); !ok || got.content != "triggered" {
		t.Errorf("trigger COPY did not run: %q %v", got.content, ok)
	}
	cfg := skopeoConfig(t, archive)
	if !containsStr(cfg.Config.Env, "TRIGGERED=yes") || len(cfg.Config.OnBuild) != 0 {
		t.Errorf("env %v onbuild %v: want TRIGGERED=yes and no triggers left", cfg.Config.Env, cfg.Config.OnBuild)
	}
}

// TestRecipeDockerignore checks that <recipe>.dockerignore wins over
// .dockerignore.
func TestRecipeDockerignore(t *testing.T) {
	e := newEnv(t)
	ctxDir := e.context(map[string]string{
		".dockerignore":             "a.txt\n",
		"build.Recipe":              "unused",
		"build.Recipe.dockerignore": "b.txt\n",
		"a.txt":                     "a",
		"b.txt":                     "b",
	})
	recipePath := filepath.Join(ctxDir, "build.Recipe")
	res, err := e.buildWithRecipePath(ctxDir, recipePath, "FROM scratch\nCOPY . /ctx/\n")
	if err != nil {
		t.Fatal(err)
	}
	root := umociUnpack(t, e.exportOCI(res.Image))
	if _, ok := stat(t, root, "ctx/a.txt"); !ok {
		t.Error("a.txt excluded although only .dockerignore names it")
	}
	if _, ok := stat(t, root, "ctx/b.txt"); ok {
		t.Error("b.txt copied although build.Recipe.dockerignore excludes it")
	}
	_ = os.Remove(recipePath)
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
