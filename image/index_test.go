package image

import (
	"context"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/store"
)

// TestIndexInStore: a saved index keeps every blob of its images alive
// for the garbage collector, and a name of it resolves per platform
// (arm64 also when asked as arm64/v8).
func TestIndexInStore(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	plats := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var imgs []v1.Image
	for _, p := range plats {
		img, err := random.Image(64, 2)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	d, err := SaveIndex(context.Background(), s, idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("multi:1", d.String()); err != nil {
		t.Fatal(err)
	}
	used, err := Referenced(s)
	if err != nil {
		t.Fatal(err)
	}
	if !used[d.String()] {
		t.Errorf("the index blob is not referenced")
	}
	for i, img := range imgs {
		m, _ := img.Manifest()
		md, _ := img.Digest()
		for _, b := range append([]v1.Descriptor{m.Config, {Digest: md}}, m.Layers...) {
			if !used[b.Digest.String()] {
				t.Errorf("%s: blob %s of the index's image is not referenced", plats[i], b.Digest)
			}
		}
	}
	for i, want := range []v1.Platform{plats[0], {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		got, err := ResolvePlatform(s, "multi:1", want)
		if err != nil {
			t.Fatalf("ResolvePlatform(%s): %v", want, err)
		}
		gd, _ := got.Digest()
		wd, _ := imgs[i].Digest()
		if gd != wd {
			t.Errorf("ResolvePlatform(%s) = %s, want %s", want, gd, wd)
		}
	}
	if _, err := ResolvePlatform(s, "multi:1", v1.Platform{OS: "linux", Architecture: "s390x"}); err == nil {
		t.Error("an index without s390x gave an image for it")
	}
}
