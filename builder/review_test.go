package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/klauspost/compress/gzip"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/image"
)

// TestBaseLayerDiffIDChecked: an image whose config claims a diff ID its
// layer does not have is refused, so it cannot take over the snapshot of
// the layer it names.
func TestBaseLayerDiffIDChecked(t *testing.T) {
	e := newEnv(t)
	ctxDir := e.context(map[string]string{"a": "a"})
	good := e.mustBuild(ctxDir, "FROM scratch\nCOPY a /a\n")
	cf, err := good.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	bad, err := mutate.ConfigFile(good.Image, cf)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(e.dir, "liar.tar")
	if err := image.NewOCIArchive(p, []string{"liar:1"}).Export(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	_, err = e.build(ctxDir, "FROM oci-archive:"+p+"\nENV X=1\n", nil)
	if err == nil || !strings.Contains(err.Error(), "does not match its diff id") || !strings.HasPrefix(err.Error(), "Recipe:1: ") {
		t.Fatalf("error %v, want a diff id mismatch on Recipe:1", err)
	}
}

// TestCopyFromStageWithoutSteps: COPY --from a stage that is only a FROM
// must miss when that stage's base image changes.
func TestCopyFromStageWithoutSteps(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(map[string]string{"v": "2"})
	recipe := "FROM busybox:test AS src\n\nFROM scratch\nCOPY --from=src /etc/passwd /passwd\n"
	e.mustBuild(ctxDir, recipe)
	moved := e.mustBuild(ctxDir, "FROM busybox:test\nCOPY v /etc/passwd\n")
	if err := e.store.Tag("busybox:test", moved.Digest.String()); err != nil {
		t.Fatal(err)
	}
	res := e.mustBuild(ctxDir, recipe)
	if _, misses := e.last.cachedSteps(); len(misses) != 1 {
		t.Errorf("after the base moved, re-ran %v; want the COPY --from", misses)
	}
	root := umociUnpack(t, e.exportOCI(res.Image))
	if got, _ := stat(t, root, "passwd"); got.content != "2" {
		t.Errorf("/passwd = %q: served from a stale cache", got.content)
	}
}

// TestCacheImportRefusesSymlinks: a crafted cache-mount archive whose
// mount directory is a symlink to / is refused, so no build can bind the
// host's root into a container.
func TestCacheImportRefusesSymlinks(t *testing.T) {
	e := newEnv(t)
	sum := sha256.Sum256([]byte("evil"))
	prefix := hex.EncodeToString(sum[:16]) + "/"
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: prefix, Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: prefix + "id", Typeflag: tar.TypeReg, Mode: 0o600, Size: 4})
	tw.Write([]byte("evil"))
	tw.WriteHeader(&tar.Header{Name: prefix + "0", Typeflag: tar.TypeSymlink, Linkname: "/"})
	tw.Close()
	zw.Close()
	if _, err := builder.ImportCacheMounts(context.Background(), e.store, &buf); err == nil {
		t.Fatal("an archive with a symlinked cache mount was imported")
	}
	if fi, err := os.Lstat(filepath.Join(e.store.Path("cache-mounts"), prefix, "0")); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		t.Fatal("the symlink landed in the store")
	}
}
