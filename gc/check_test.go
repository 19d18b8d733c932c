package gc_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/gc"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/store"
)

// TestCheck flips a byte of a layer blob a named image and a cache record
// use: Check removes the blob, drops the record, names the image, and
// leaves everything sound alone.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"bad:1", "good:1"} {
		img, err := random.Image(1024, int64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		d, err := image.Save(ctx, st, img)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Tag(name, d.String()); err != nil {
			t.Fatal(err)
		}
	}
	// A multi-platform name: an index of an intact image.
	multi, err := random.Index(1024, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	md, err := image.SaveIndex(ctx, st, multi)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Tag("multi:1", md.String()); err != nil {
		t.Fatal(err)
	}
	bad, err := image.Resolve(st, "bad:1")
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := bad.Layers()
	ld, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	c, err := cache.Open(st.Path(gc.Parts()[0].Cache))
	if err != nil {
		t.Fatal(err)
	}
	key := "sha256:" + ld.Hex // any valid key
	if err := c.Put(&cache.Record{Key: key, Snapshot: "s", Layer: &cache.LayerDesc{Digest: ld.String(), Size: size}}); err != nil {
		t.Fatal(err)
	}
	p, _ := st.BlobPath(ld.String())
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := st.Blobs()

	rep, err := gc.Check(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != len(before) || !slices.Equal(rep.Bad, []string{ld.String()}) {
		t.Errorf("checked %d blobs (want %d), bad %v (want [%s])", rep.Blobs, len(before), rep.Bad, ld)
	}
	if st.HasBlob(ld.String()) {
		t.Error("corrupt blob kept")
	}
	if _, ok := c.Get(key); ok || rep.Records != 1 {
		t.Errorf("record of the corrupt layer kept (dropped %d)", rep.Records)
	}
	if !slices.Equal(rep.Broken, []string{"bad:1"}) {
		t.Errorf("incomplete images %v, want [bad:1]", rep.Broken)
	}
	if _, err := image.Resolve(st, "good:1"); err != nil {
		t.Errorf("good image damaged: %v", err)
	}
	after, _ := st.Blobs()
	if len(after) != len(before)-1 {
		t.Errorf("%d blobs left of %d, want one removed", len(after), len(before))
	}
}
