package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/store"
)

// crafted describes a one-layer OCI archive whose layer blob is garbage
// that does not match its digest: an import that read it would fail with
// a digest mismatch, so any other error proves the archive was refused
// before its layer data was read.
type crafted struct {
	layerSize    int64           // what the manifest claims (default: the real size)
	layerType    types.MediaType // default OCILayer
	diffIDs      int             // default 1
	entryType    types.MediaType // of the index entry; default OCI manifest
	manifestSize int64           // what index.json claims (default: real)
	configSize   int64           // what the manifest claims (default: real)
	indexHdrSize int64           // a lying tar header size for index.json, with no data after it
	validLayer   bool            // a real gzip layer matching its digest
}

func (c crafted) write(t *testing.T, path string) {
	t.Helper()
	layer := []byte("not a gzip tar, and not what the digest says")
	layerDigest := sha([]byte("the layer the manifest claims"))
	diffID := layerDigest
	if c.validLayer {
		raw := layerTar(t, map[string]string{"hostile": "payload"})
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw)
		zw.Close()
		layer, layerDigest, diffID = gz.Bytes(), sha(gz.Bytes()), sha(raw)
	}
	diffs := make([]string, max(c.diffIDs, 1))
	for i := range diffs {
		diffs[i] = diffID.String()
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffs}})
	orDefault := func(v, d int64) int64 {
		if v != 0 {
			return v
		}
		return d
	}
	lt := c.layerType
	if lt == "" {
		lt = types.OCILayer
	}
	m, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: sha(cfg), Size: orDefault(c.configSize, int64(len(cfg)))},
		Layers: []v1.Descriptor{{MediaType: lt, Digest: layerDigest, Size: orDefault(c.layerSize, int64(len(layer)))}}})
	et := c.entryType
	if et == "" {
		et = types.OCIManifestSchema1
	}
	idx, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Manifests: []v1.Descriptor{{MediaType: et, Digest: sha(m), Size: orDefault(c.manifestSize, int64(len(m)))}}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add("blobs/sha256/"+layerDigest.Hex, layer)
	add("blobs/sha256/"+sha(cfg).Hex, cfg)
	add("blobs/sha256/"+sha(m).Hex, m)
	if c.indexHdrSize != 0 {
		// The header alone: the archive ends where its data would start.
		if err := tw.WriteHeader(&tar.Header{Name: "index.json", Typeflag: tar.TypeReg, Mode: 0o644, Size: c.indexHdrSize}); err != nil {
			t.Fatal(err)
		}
		tw.Flush()
	} else {
		add("index.json", idx)
		tw.Close()
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestImportStrict: archives that lie about sizes or media types, or
// whose config does not match the manifest, are refused before any layer
// data is read, and nothing is stored.
func TestImportStrict(t *testing.T) {
	const huge = 1 << 62
	tests := []struct {
		name string
		c    crafted
		want error
		msg  string
	}{
		{"layer larger than its data", crafted{layerSize: 1000}, ErrBadArchive, "descriptor says 1000 bytes"},
		{"layer smaller than its data", crafted{layerSize: 3}, ErrBadArchive, "descriptor says 3 bytes"},
		{"absurd layer size", crafted{layerSize: huge}, ErrBadImage, fmt.Sprint(int64(huge))},
		{"hostile layer media type", crafted{layerType: "application/x-hostile"}, ErrUnsupportedMediaType, `unsupported layer media type "application/x-hostile"`},
		// Valid layers: only the descriptors lie.
		{"hostile media type on a gzip layer", crafted{validLayer: true, layerType: "application/x-hostile"}, ErrUnsupportedMediaType, `unsupported layer media type "application/x-hostile"`},
		{"valid layer, size too large", crafted{validLayer: true, layerSize: 1 << 20}, ErrBadArchive, "descriptor says 1048576 bytes"},
		{"two diff_ids for one layer", crafted{diffIDs: 2}, ErrBadImage, "1 layers but 2 diff_ids"},
		{"index entry is a config", crafted{entryType: types.OCIConfigJSON}, ErrUnsupportedMediaType, "not an image manifest"},
		{"absurd manifest size", crafted{manifestSize: huge}, ErrBadArchive, fmt.Sprint(int64(huge))},
		{"absurd config size", crafted{configSize: huge}, ErrBadImage, "config"},
		{"absurd index.json", crafted{indexHdrSize: huge}, ErrBadArchive, "entry index.json claims"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "crafted.tar")
			tt.c.write(t, p)
			s := openStore(t)
			_, err := ImportArchive(context.Background(), s, "oci-archive:"+p)
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Fatalf("err = %v, want %v saying %q", err, tt.want, tt.msg)
			}
			if errors.Is(err, store.ErrDigestMismatch) && !tt.c.validLayer {
				t.Fatalf("the layer data was read: %v", err)
			}
			if blobs, _ := s.Blobs(); len(blobs) != 0 {
				t.Errorf("a refused archive stored %d blobs", len(blobs))
			}
		})
	}
}

// TestImportDockerStrict: a docker archive whose config has more diff_ids
// than layers, or whose config claims 2^62 bytes, is refused before ggcr
// reads it.
func TestImportDockerStrict(t *testing.T) {
	cfg := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + sha([]byte("a")).String() + `","` + sha([]byte("b")).String() + `"]}}`
	manifest := `[{"Config":"config.json","RepoTags":["app:1"],"Layers":["layer.tar"]}]`
	dir := t.TempDir()
	p := filepath.Join(dir, "diffids.tar")
	writeTar(t, p, []tar.Header{{Name: "manifest.json", Typeflag: tar.TypeReg}, {Name: "config.json", Typeflag: tar.TypeReg}, {Name: "layer.tar", Typeflag: tar.TypeReg}},
		[]string{manifest, cfg, "garbage"})
	s := openStore(t)
	if _, err := ImportArchive(context.Background(), s, "docker-archive:"+p); !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), "1 layers but 2 diff_ids") {
		t.Errorf("diff_ids mismatch: err = %v", err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Size: int64(len(manifest))})
	tw.Write([]byte(manifest))
	tw.WriteHeader(&tar.Header{Name: "layer.tar", Typeflag: tar.TypeReg, Size: 7})
	tw.Write([]byte("garbage"))
	tw.WriteHeader(&tar.Header{Name: "config.json", Typeflag: tar.TypeReg, Size: 1 << 62})
	tw.Flush()
	p = filepath.Join(dir, "hugeconfig.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ImportArchive(context.Background(), s, "docker-archive:"+p); !errors.Is(err, ErrBadArchive) {
		t.Errorf("huge config: err = %v", err)
	}
	if blobs, _ := s.Blobs(); len(blobs) != 0 {
		t.Errorf("refused archives stored %d blobs", len(blobs))
	}
}

// TestImportDockerDuplicates: go-containerregistry reads the first tar
// entry of a name and follows links, so a docker archive with a name
// twice (a huge config first, a small one last), or whose manifest.json
// or config is a link, is refused before it reads anything.
func TestImportDockerDuplicates(t *testing.T) {
	small := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + sha([]byte("garbage")).String() + `"]}}`
	big := `{"pad":"` + strings.Repeat("x", maxConfigSize) + `"}`
	manifest := func(cfg string) string {
		return `[{"Config":"` + cfg + `","RepoTags":["app:1"],"Layers":["layer.tar"]}]`
	}
	reg := func(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeReg} }
	link := func(name, to string) tar.Header {
		return tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to}
	}
	tests := []struct {
		name    string
		entries []tar.Header
		data    []string
		want    string
	}{
		{"config twice", []tar.Header{reg("manifest.json"), reg("config.json"), reg("layer.tar"), reg("./config.json")},
			[]string{manifest("config.json"), big, "garbage", small}, "config config.json is in the archive 2 times"},
		{"manifest twice", []tar.Header{reg("manifest.json"), reg("big.json"), reg("config.json"), reg("layer.tar"), reg("manifest.json")},
			[]string{manifest("big.json"), big, small, "garbage", manifest("config.json")}, "manifest.json is in the archive 2 times"},
		{"config link", []tar.Header{reg("manifest.json"), link("config.json", "big.json"), reg("big.json"), reg("layer.tar")},
			[]string{manifest("config.json"), "", big, "garbage"}, "config config.json is not a regular file"},
		{"manifest link", []tar.Header{link("manifest.json", "m.json"), reg("m.json"), reg("config.json"), reg("layer.tar")},
			[]string{"", manifest("config.json"), small, "garbage"}, "manifest.json is not a regular file"},
		{"layer twice", []tar.Header{reg("manifest.json"), reg("config.json"), reg("layer.tar"), reg("layer.tar")},
			[]string{manifest("config.json"), small, "garbage", "other"}, "layer layer.tar is in the archive 2 times"},
		{"layer link to a link", []tar.Header{reg("manifest.json"), reg("config.json"), link("layer.tar", "l2"), link("l2", "l3"), reg("l3")},
			[]string{manifest("config.json"), small, "", "", "garbage"}, "layer layer.tar -> l2 is not a regular file"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "dup.tar")
			writeTar(t, p, tt.entries, tt.data)
			s := openStore(t)
			_, err := ImportArchive(context.Background(), s, "docker-archive:"+p)
			if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %v: %s", err, ErrBadArchive, tt.want)
			}
			if blobs, _ := s.Blobs(); len(blobs) != 0 {
				t.Errorf("a refused archive stored %d blobs", len(blobs))
			}
		})
	}
}

// TestPullStrict: a registry image with an undecodable layer media type,
// or a config whose diff_ids do not match its layers, is refused before
// any layer is fetched.
func TestPullStrict(t *testing.T) {
	host := startRegistry(t, nil)
	l, err := random.Layer(1024, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	hostile, err := mutate.Append(empty.Image, mutate.Addendum{Layer: l, MediaType: "application/x-hostile"})
	if err != nil {
		t.Fatal(err)
	}
	writeRemote(t, host+"/hostile:1", hostile)
	good := randomImage(t, 1024, 2)
	cfg, err := good.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg.RootFS.DiffIDs = cfg.RootFS.DiffIDs[:1]
	short, err := mutate.ConfigFile(good, cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeRemote(t, host+"/short:1", short)
	for ref, want := range map[string]error{"hostile:1": ErrUnsupportedMediaType, "short:1": ErrBadImage} {
		s := openStore(t)
		if _, err := Pull(context.Background(), s, host+"/"+ref, testOpts()); !errors.Is(err, want) {
			t.Errorf("pull %s: err = %v, want %v", ref, err, want)
		}
		if n := blobCount(t, s); n != 0 {
			t.Errorf("pull %s stored %d blobs", ref, n)
		}
	}
}

// rawManifest is a manifest pushed as bytes, lies included.
type rawManifest struct{ raw []byte }

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// TestPullAbsurdLayerSize: a registry manifest whose layer claims 2^62
// bytes is refused before its config or any layer is fetched.
func TestPullAbsurdLayerSize(t *testing.T) {
	host := startRegistry(t, nil)
	m, err := randomImage(t, 512, 1).Manifest()
	if err != nil {
		t.Fatal(err)
	}
	m.Layers[0].Size = 1 << 62
	raw, _ := json.Marshal(m)
	r, err := name.ParseReference(host + "/absurd:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r, rawManifest{raw}); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	if _, err := Pull(context.Background(), s, host+"/absurd:1", testOpts()); !errors.Is(err, ErrBadImage) {
		t.Errorf("pull: err = %v, want ErrBadImage", err)
	}
	if n := blobCount(t, s); n != 0 {
		t.Errorf("pull stored %d blobs", n)
	}
}
