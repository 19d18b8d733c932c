package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/internal/testutil"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/progress"
	"github.com/lading-build/lading/runtime"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

func TestMain(m *testing.M) {
	runtime.Init()
	os.Exit(m.Run())
}

// env is a store, a snapshotter and a scratch directory for one test.
type env struct {
	t     *testing.T
	dir   string
	store *store.Store
	snaps snapshot.Snapshotter
	cache *cache.Cache
	epoch *int64
	// opts, when set, adjusts the builder options of every build.
	opts func(*builder.Options)
	// progress collects the build output, shown when a test fails.
	progress bytes.Buffer
	// last records the events of the latest build.
	last *recorder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequireRoot(t)
	dir := t.TempDir()
	testutil.CheckNoMounts(t, dir)
	st, err := store.Open(filepath.Join(dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.NewOverlay(st.Path("snapshots", "overlay"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	c, err := cache.Open(st.Path("cache"))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, dir: dir, store: st, snaps: sn, cache: c}
}

// context writes files into a new context directory; a value ending in
// "\x00link" makes a symlink to the text before it.
func (e *env) context(files map[string]string) string {
	e.t.Helper()
	ctxDir, err := os.MkdirTemp(e.dir, "ctx-")
	if err != nil {
		e.t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(ctxDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if target, ok := strings.CutSuffix(content, "\x00link"); ok {
			if err := os.Symlink(target, p); err != nil {
				e.t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	return ctxDir
}

// build parses and builds recipe in contextDir.
func (e *env) build(contextDir, recipe string, args map[string]string) (*builder.Result, error) {
	e.t.Helper()
	return e.buildOpts(contextDir, "", recipe, args)
}

// buildWithRecipePath builds as if the recipe were the file recipePath
// (which decides the <recipe>.dockerignore used).
func (e *env) buildWithRecipePath(contextDir, recipePath, recipe string) (*builder.Result, error) {
	e.t.Helper()
	return e.buildOpts(contextDir, recipePath, recipe, nil)
}

func (e *env) buildOpts(contextDir, recipePath, recipe string, args map[string]string) (*builder.Result, error) {
	e.t.Helper()
	plan, err := parser.Parse(strings.NewReader(recipe), parser.Options{File: "Recipe", BuildArgs: args})
	if err != nil {
		return nil, err
	}
	plain, err := progress.New("plain", &e.progress)
	if err != nil {
		e.t.Fatal(err)
	}
	rep := newRecorder(plain)
	e.last = rep
	defer rep.Close()
	opts := builder.Options{
		ContextDir: contextDir,
		RecipePath: recipePath,
		Store:      e.store,
		Snapshots:  e.snaps,
		Cache:      e.cache,
		Settings:   builder.Settings{Epoch: e.epoch},
		Progress:   rep,
	}
	if e.opts != nil {
		e.opts(&opts)
	}
	res, err := builder.Run(context.Background(), plan, opts)
	if err != nil {
		e.t.Logf("build output:\n%s", e.progress.String())
	}
	return res, err
}

func (e *env) mustBuild(contextDir, recipe string) *builder.Result {
	e.t.Helper()
	res, err := e.build(contextDir, recipe, nil)
	if err != nil {
		e.t.Fatalf("build: %v", err)
	}
	return res
}

// busybox builds a busybox base image from scratch and names it
// "busybox:test" in the store.
func (e *env) busybox() {
	e.t.Helper()
	ctxDir := e.context(nil)
	testutil.BusyboxRootfs(e.t, filepath.Join(ctxDir, "rootfs"))
	res := e.mustBuild(ctxDir, "FROM scratch\nCOPY rootfs/ /\n")
	if err := e.store.Tag("busybox:test", res.Digest.String()); err != nil {
		e.t.Fatal(err)
	}
}

// exportOCI writes the image as an OCI archive named "test:1".
func (e *env) exportOCI(img v1.Image) string {
	e.t.Helper()
	p := filepath.Join(e.dir, "out-"+randName()+".tar")
	if err := image.NewOCIArchive(p, []string{"test:1"}).Export(context.Background(), img); err != nil {
		e.t.Fatalf("export: %v", err)
	}
	return p
}

var nameSeq int

func randName() string {
	nameSeq++
	return strconv.Itoa(nameSeq)
}

// skopeoConfig returns the image config of an OCI archive as read by skopeo.
func skopeoConfig(t *testing.T, archive string) v1.ConfigFile {
	t.Helper()
	testutil.RequireTool(t, "skopeo")
	out, err := exec.Command("skopeo", "inspect", "--config", "--raw", "oci-archive:"+archive).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --config: %v", errOutput(err))
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("parsing skopeo output: %v\n%s", err, out)
	}
	return cfg
}

// umociUnpack unpacks an OCI archive with umoci and returns the rootfs.
func umociUnpack(t *testing.T, archive string) string {
	t.Helper()
	testutil.RequireTool(t, "umoci")
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	if err := untar(archive, layout); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle")
	cmd := exec.Command("umoci", "unpack", "--image", layout+":1", bundle)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	return filepath.Join(bundle, "rootfs")
}

func errOutput(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return err.Error() + ": " + string(ee.Stderr)
	}
	return err.Error()
}

func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		out, err := os.Create(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		out.Close()
		if err != nil {
			return err
		}
	}
}

// entry describes one file of an unpacked rootfs.
type entry struct {
	mode     os.FileMode
	uid, gid int
	content  string // file content or symlink target
}

func stat(t *testing.T, root, rel string) (entry, bool) {
	t.Helper()
	p := filepath.Join(root, rel)
	fi, err := os.Lstat(p)
	if os.IsNotExist(err) {
		return entry{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	e := entry{mode: fi.Mode()}
	if st, ok := sysStat(fi); ok {
		e.uid, e.gid = st[0], st[1]
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		e.content, _ = os.Readlink(p)
	case fi.Mode().IsRegular():
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		e.content = string(b)
	}
	return e, true
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// buildQuiet builds without touching the env's progress buffer or
// recorder (for builds running concurrently).
func (e *env) buildQuiet(contextDir, recipe string) (*builder.Result, error) {
	plan, err := parser.Parse(strings.NewReader(recipe), parser.Options{File: "Recipe"})
	if err != nil {
		return nil, err
	}
	return builder.Run(context.Background(), plan, builder.Options{
		ContextDir: contextDir, Store: e.store, Snapshots: e.snaps, Cache: e.cache,
	})
}
