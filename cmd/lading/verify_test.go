package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/internal/testutil"
	"github.com/lading-build/lading/store"
)

// TestBitFlipThenExport flips a byte of a stored layer blob and rebuilds
// with an OCI output: the build either fails naming the blob or writes a
// correct image, never an archive with a blob that does not match its
// digest; the build after it is correct and gives the first digest.
func TestBitFlipThenExport(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Recipe": "FROM scratch\nCOPY data /data\n",
		"data":   strings.Repeat("layer bytes that must survive\n", 1000),
	})
	env := []string{"SOURCE_DATE_EPOCH=0"}
	build := func(out string) result {
		return runLading(t, "", env, "build", "--root", root, "--progress", "plain", "-t", "flip:1",
			"--output", "type=oci,dest="+out, dir)
	}
	first := filepath.Join(t.TempDir(), "first.tar")
	r := build(first)
	if r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	want := lastLine(r.stdout)
	checkArchiveBlobs(t, first)

	layer, p := firstLayerBlob(t, root, "flip:1")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}

	second := filepath.Join(t.TempDir(), "second.tar")
	r = build(second)
	if r.code != 0 {
		if !strings.Contains(r.stderr, layer) || !strings.Contains(r.stderr, "corrupt") {
			t.Errorf("failed export does not name the corrupt blob %s:\n%s", layer, r.stderr)
		}
		if _, err := os.Stat(second); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("failed export left %s: %v", second, err)
		}
	} else {
		checkArchiveBlobs(t, second)
	}

	third := filepath.Join(t.TempDir(), "third.tar")
	if r = build(third); r.code != 0 {
		t.Fatalf("build after the bit flip: %s", r.stderr)
	}
	checkArchiveBlobs(t, third)
	if got := lastLine(r.stdout); got != want {
		t.Errorf("rebuilt image %s, want %s", got, want)
	}
}

// checkArchiveBlobs checks that every blob of an OCI archive hashes to
// its name.
func checkArchiveBlobs(t *testing.T, archive string) {
	t.Helper()
	n := 0
	archiveBlobs(t, archive, func(hexName string, r io.Reader) {
		sum := sha256.New()
		if _, err := io.Copy(sum, r); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(sum.Sum(nil)); got != hexName {
			t.Errorf("%s: blob %s hashes to %s", archive, hexName, got)
		}
		n++
	})
	if n < 3 {
		t.Errorf("%s holds %d blobs, want manifest, config and layer", archive, n)
	}
}

// archiveBlobs calls fn with the hex digest and the content of each blob
// of an OCI archive.
func archiveBlobs(t *testing.T, archive string, fn func(hexName string, r io.Reader)) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if hexName, ok := strings.CutPrefix(h.Name, "blobs/sha256/"); ok && hexName != "" {
			fn(hexName, tr)
		}
	}
}

// TestTornLayerIsCacheMiss truncates the layer blob of a cached step: the
// next build runs the step again and gives the same image.
func TestTornLayerIsCacheMiss(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Recipe": "FROM scratch\nCOPY data /data\n", "data": strings.Repeat("torn\n", 5000)})
	env := []string{"SOURCE_DATE_EPOCH=0"}
	r := runLading(t, "", env, "build", "--root", root, "--progress", "plain", "-t", "torn:1", dir)
	if r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	want := lastLine(r.stdout)
	_, p := firstLayerBlob(t, root, "torn:1")
	if err := os.Truncate(p, 100); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.tar")
	r = runLading(t, "", env, "build", "--root", root, "--progress", "plain", "--output", "type=oci,dest="+out, dir)
	if r.code != 0 {
		t.Fatalf("build over a torn layer: %s", r.stderr)
	}
	if strings.Contains(r.stderr, "CACHED") {
		t.Errorf("the step whose layer is torn came from the cache:\n%s", r.stderr)
	}
	if got := lastLine(r.stdout); got != want {
		t.Errorf("rebuilt %s, want %s", got, want)
	}
	checkArchiveBlobs(t, out)
}

// firstLayerBlob returns the digest and file of the first layer of the
// stored image name.
func firstLayerBlob(t *testing.T, root, name string) (string, string) {
	t.Helper()
	st, err := store.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.Resolve(st, name)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	p, _ := st.BlobPath(d.String())
	return d.String(), p
}
