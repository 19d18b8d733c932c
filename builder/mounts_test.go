package builder_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/lading-build/lading/builder"
)

// TestCacheMountPersists: a cache mount keeps its contents across builds
// (the second run of the step finds what the first left) and never
// reaches a layer.
func TestCacheMountPersists(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	recipe := "FROM busybox:test\nRUN --mount=type=cache,target=/var/cache/app,id=app-cache " +
		"if [ -f /var/cache/app/warm ]; then echo hit > /result; else touch /var/cache/app/warm; echo miss > /result; fi\n"
	res := e.mustBuild(ctxDir, recipe)
	root := umociUnpack(t, e.exportOCI(res.Image))
	if got, _ := stat(t, root, "result"); got.content != "miss\n" {
		t.Fatalf("first build: /result = %q", got.content)
	}
	if _, ok := stat(t, root, "var/cache"); ok {
		t.Error("the cache mount point reached the layer")
	}
	e.opts = func(o *builder.Options) { o.NoCache = true }
	res = e.mustBuild(ctxDir, recipe)
	root = umociUnpack(t, e.exportOCI(res.Image))
	if got, _ := stat(t, root, "result"); got.content != "hit\n" {
		t.Errorf("second build: /result = %q, want hit", got.content)
	}
}

// TestLockedCacheMountSerializes runs two parallel stages that fail if
// they hold a locked cache mount at the same time.
func TestLockedCacheMountSerializes(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	step := "RUN --mount=type=cache,id=shared,sharing=locked,target=/c mkdir /c/busy && sleep 0.4 && rmdir /c/busy && echo %s > /%s\n"
	recipe := "FROM busybox:test AS a\n" + strings.ReplaceAll(step, "%s", "a") +
		"FROM busybox:test AS b\n" + strings.ReplaceAll(step, "%s", "b") +
		"FROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n"
	if _, err := e.build(ctxDir, recipe, nil); err != nil {
		t.Fatalf("locked cache mount was used by two steps at once: %v", err)
	}
}

// TestBindMounts: bind mounts of the context and of a stage; rw writes
// are discarded; a symlink in the source cannot reach the host.
func TestBindMounts(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(map[string]string{
		"a.txt":         "from context",
		"etc/passwd":    "context passwd",
		"link":          "/etc\x00link",
		".env":          "SECRET=1",
		".dockerignore": ".env\n",
	})
	recipe := "FROM busybox:test AS src\nRUN echo from stage > /made\n\n" +
		"FROM busybox:test\n" +
		"RUN --mount=type=bind,target=/ctx cat /ctx/a.txt > /one\n" +
		"RUN --mount=type=bind,from=src,source=/made,target=/m cat /m > /two\n" +
		"RUN --mount=type=bind,target=/ctx,rw echo scribble > /ctx/new && cat /ctx/new > /three\n" +
		"RUN --mount=type=bind,source=link,target=/l cat /l/passwd > /four\n" +
		"RUN --mount=type=bind,target=/ctx ls -a /ctx > /five\n"
	res := e.mustBuild(ctxDir, recipe)
	root := umociUnpack(t, e.exportOCI(res.Image))
	for p, want := range map[string]string{"one": "from context", "two": "from stage\n", "three": "scribble\n", "four": "context passwd"} {
		if got, _ := stat(t, root, p); got.content != want {
			t.Errorf("/%s = %q, want %q", p, got.content, want)
		}
	}
	if got, _ := stat(t, root, "five"); strings.Contains(got.content, ".env") || !strings.Contains(got.content, "a.txt") {
		t.Errorf("bind mount of the context shows %q; want .dockerignore applied", got.content)
	}
	if _, err := os.Stat(filepath.Join(ctxDir, "new")); err == nil {
		t.Error("a rw bind mount wrote into the build context")
	}
	for _, p := range []string{"ctx", "m", "l"} {
		if _, ok := stat(t, root, p); ok {
			t.Errorf("mount point /%s reached the image", p)
		}
	}
}

// TestSecretsNeverLeak builds with a secret as a file and as an env
// variable and searches the whole OCI output and the cache records for it.
func TestSecretsNeverLeak(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	const canary = "CANARY-7f3a9e1c-do-not-leak"
	e.opts = func(o *builder.Options) { o.Secrets = map[string][]byte{"token": []byte(canary)} }
	recipe := "FROM busybox:test\n" +
		"RUN --mount=type=secret,id=token sha256sum < /run/secrets/token | cut -d' ' -f1 > /file-sum\n" +
		"RUN --mount=type=secret,id=token,env=TOKEN printf %s \"$TOKEN\" | sha256sum | cut -d' ' -f1 > /env-sum\n" +
		"RUN --mount=type=secret,id=token,target=/etc/app/token,mode=0440,uid=1000 test -r /etc/app/token && stat -c %u:%a /etc/app/token > /perm\n" +
		"RUN --mount=type=secret,id=absent true\n"
	res := e.mustBuild(ctxDir, recipe)
	archive := e.exportOCI(res.Image)
	root := umociUnpack(t, archive)
	sum := sha256hex(canary) + "\n"
	for p, want := range map[string]string{"file-sum": sum, "env-sum": sum, "perm": "1000:440\n"} {
		if got, _ := stat(t, root, p); got.content != want {
			t.Errorf("/%s = %q, want %q", p, got.content, want)
		}
	}
	for _, p := range []string{"run", "etc/app"} {
		if _, ok := stat(t, root, p); ok {
			t.Errorf("/%s (a secret's mount point) reached the image", p)
		}
	}
	if containsInArchive(t, archive, canary) {
		t.Error("the secret appears in the OCI archive")
	}
	if grepTree(t, filepath.Join(e.dir, "root"), canary) {
		t.Error("the secret appears under --root (cache records, blobs or snapshots)")
	}
	if strings.Contains(e.progress.String(), canary) {
		t.Error("the secret appears in the build output")
	}
	// A required secret that was not given fails the build.
	e.opts = nil
	if _, err := e.build(ctxDir, "FROM busybox:test\nRUN --mount=type=secret,id=token,required true\n", nil); err == nil || !strings.Contains(err.Error(), "Recipe:2: ") {
		t.Errorf("missing required secret: %v", err)
	}
}

// TestTmpfsMount: a tmpfs mount is writable during the step and nothing
// of it is committed.
func TestTmpfsMount(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	res := e.mustBuild(e.context(nil), "FROM busybox:test\nRUN --mount=type=tmpfs,target=/scratch,size=1m echo x > /scratch/f && mount | grep -c ' /scratch ' > /mounted\n")
	root := umociUnpack(t, e.exportOCI(res.Image))
	if got, _ := stat(t, root, "mounted"); got.content != "1\n" {
		t.Errorf("/mounted = %q", got.content)
	}
	if _, ok := stat(t, root, "scratch"); ok {
		t.Error("/scratch reached the image")
	}
}

// TestHeredocShebang runs a heredoc script through its own interpreter.
func TestHeredocShebang(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	res := e.mustBuild(e.context(nil), "FROM busybox:test\nRUN <<EOF\n#!/bin/sh -e\necho \"$0\" > /script-name\necho run > /ran\nEOF\n")
	root := umociUnpack(t, e.exportOCI(res.Image))
	if got, _ := stat(t, root, "ran"); got.content != "run\n" {
		t.Errorf("/ran = %q", got.content)
	}
	if _, ok := stat(t, root, "run/lading-heredoc"); ok {
		t.Error("the script's mount point reached the image")
	}
}

// containsInArchive searches every file of a tar, and every gzip layer in
// it, for s.
func containsInArchive(t *testing.T, archive, s string) bool {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		_, err := tr.Next()
		if err == io.EOF {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if bytes.Contains(data, []byte(s)) {
			return true
		}
		if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
			plain, _ := io.ReadAll(zr)
			if bytes.Contains(plain, []byte(s)) {
				return true
			}
		}
	}
}

// grepTree searches every regular file under dir (and gzip ones
// decompressed) for s.
func grepTree(t *testing.T, dir, s string) bool {
	t.Helper()
	found := false
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || found {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if bytes.Contains(data, []byte(s)) {
			found = true
		}
		if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
			plain, _ := io.ReadAll(zr)
			found = found || bytes.Contains(plain, []byte(s))
		}
		return nil
	})
	return found
}

// TestCachedRunPreparesNoMounts: a RUN step served from the cache sets
// up none of its mounts, so a locked cache mount held elsewhere does not
// make the cached rebuild wait.
func TestCachedRunPreparesNoMounts(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	recipe := "FROM busybox:test\nRUN --mount=type=cache,id=held,sharing=locked,target=/c echo x > /x\n"
	e.mustBuild(ctxDir, recipe)
	sum := sha256.Sum256([]byte("held"))
	lock := flock.New(filepath.Join(e.store.Path("cache-mounts", hex.EncodeToString(sum[:16])), "lock"))
	if err := lock.Lock(); err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	done := make(chan error, 1)
	go func() { _, err := e.buildQuiet(ctxDir, recipe); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second): // the lock is held until the test ends
		t.Fatal("a cached step waited for its cache mount's lock")
	}
}

// TestContextBindMountKey: a RUN with a bind mount of the context is
// cached while the files it shows are unchanged, ignores changes to
// .dockerignore'd files, and re-runs when a shown file changes.
func TestContextBindMountKey(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(map[string]string{"src/a.txt": "a", "notes.log": "n", ".dockerignore": "*.log\n"})
	recipe := "FROM busybox:test\nRUN --mount=type=bind,target=/ctx cat /ctx/src/a.txt > /seen\n"
	e.mustBuild(ctxDir, recipe)
	steps := func() (hits, misses []string) {
		e.mustBuild(ctxDir, recipe)
		return e.last.cachedSteps()
	}
	if _, misses := steps(); len(misses) != 0 {
		t.Errorf("unchanged context re-ran %v", misses)
	}
	os.WriteFile(filepath.Join(ctxDir, "notes.log"), []byte("changed"), 0o644)
	if _, misses := steps(); len(misses) != 0 {
		t.Errorf("a change to an ignored file re-ran %v", misses)
	}
	os.WriteFile(filepath.Join(ctxDir, "src/a.txt"), []byte("A"), 0o644)
	if _, misses := steps(); len(misses) != 1 {
		t.Errorf("a change to a mounted file re-ran %v, want the RUN", misses)
	}
}
