package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/lading-build/lading/store"
)

func openStore(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// layerTar returns a layer tar with the given files, sorted, clean headers.
func layerTar(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n]))}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, files[n])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) v1.Hash {
	h := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h[:])}
}

// testImage builds an OCI image of two layers written with WriteLayer:
// /hello ("hello world") over /etc/os-release and an overwritten /hello.
func testImage(t testing.TB, s *store.Store) v1.Image {
	t.Helper()
	return buildImage(t, s, []map[string]string{
		{"etc/os-release": "ID=lading\n", "hello": "old"},
		{"hello": "hello world\n"},
	})
}

// buildImage builds an OCI image with one WriteLayer layer per file set.
func buildImage(t testing.TB, s *store.Store, layers []map[string]string) v1.Image {
	t.Helper()
	ctx := context.Background()
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	cfg, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Cmd = []string{"/hello"}
	base, err = mutate.ConfigFile(base, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var adds []mutate.Addendum
	for _, files := range layers {
		l, err := WriteLayer(ctx, s, bytes.NewReader(layerTar(t, files)))
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "test"}})
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestWriteLayerDigests(t *testing.T) {
	s := openStore(t)
	raw := layerTar(t, map[string]string{"a": "alpha", "dir/b": string(bytes.Repeat([]byte("b"), 100000))})
	l, err := WriteLayer(context.Background(), s, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := l.Digest()
	diffID, _ := l.DiffID()
	size, _ := l.Size()
	if diffID != sha(raw) {
		t.Errorf("DiffID = %s, want %s", diffID, sha(raw))
	}
	blobPath, err := s.BlobPath(digest.String())
	if err != nil {
		t.Fatal(err)
	}
	// ggcr computes digest, diffID and size on its own from the blob.
	ggcr, err := tarball.LayerFromFile(blobPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what      string
		got, want func(v1.Layer) (v1.Hash, error)
	}{
		{"digest", v1.Layer.Digest, v1.Layer.Digest},
		{"diffID", v1.Layer.DiffID, v1.Layer.DiffID},
	} {
		got, _ := c.got(l)
		want, err := c.want(ggcr)
		if err != nil || got != want {
			t.Errorf("%s = %s, ggcr computes %s (%v)", c.what, got, want, err)
		}
	}
	if ggSize, _ := ggcr.Size(); size != ggSize {
		t.Errorf("Size = %d, ggcr computes %d", size, ggSize)
	}
	if err := validate.Layer(l); err != nil {
		t.Errorf("validate.Layer: %v", err)
	}
	// Same input, same blob: the gzip stream is deterministic.
	l2, err := WriteLayer(context.Background(), s, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := l2.Digest(); d2 != digest {
		t.Errorf("second WriteLayer digest = %s, want %s", d2, digest)
	}
	if mt, _ := l.MediaType(); mt != types.OCILayer {
		t.Errorf("MediaType = %s", mt)
	}
}

func TestWriteLayerCanceled(t *testing.T) {
	s := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := WriteLayer(ctx, s, bytes.NewReader(layerTar(t, map[string]string{"a": "b"}))); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if left, _ := os.ReadDir(s.Path("tmp")); len(left) != 0 {
		t.Errorf("temp files left: %d", len(left))
	}
}

func TestSaveLoadValidate(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	rnd, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	for name, img := range map[string]v1.Image{"random": rnd, "built": testImage(t, s)} {
		t.Run(name, func(t *testing.T) {
			dgst, err := Save(ctx, s, img)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := img.Digest(); dgst != want {
				t.Fatalf("Save = %s, want %s", dgst, want)
			}
			loaded, err := Load(s, dgst.String())
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(loaded); err != nil {
				t.Fatalf("validate.Image: %v", err)
			}
			if got, _ := loaded.Digest(); got != dgst {
				t.Errorf("loaded digest = %s, want %s", got, dgst)
			}
			// A stored image is a base for more layers.
			l, err := WriteLayer(ctx, s, bytes.NewReader(layerTar(t, map[string]string{"extra": "x"})))
			if err != nil {
				t.Fatal(err)
			}
			next, err := mutate.AppendLayers(loaded, l)
			if err != nil {
				t.Fatal(err)
			}
			d2, err := Save(ctx, s, next)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Load(s, d2.String())
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(again); err != nil {
				t.Fatalf("validate.Image of appended image: %v", err)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	s := openStore(t)
	img := testImage(t, s)
	dgst, err := Save(context.Background(), s, img)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("app", dgst.String()); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"app", "app:latest", dgst.String()} {
		got, err := Resolve(s, ref)
		if err != nil {
			t.Fatalf("Resolve(%s): %v", ref, err)
		}
		if d, _ := got.Digest(); d != dgst {
			t.Errorf("Resolve(%s) = %s, want %s", ref, d, dgst)
		}
	}
	if _, err := Resolve(s, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Resolve(missing) err = %v", err)
	}
	if _, err := Resolve(s, "sha256:../../etc/passwd"); !errors.Is(err, store.ErrInvalidDigest) {
		t.Errorf("Resolve(bad digest) err = %v", err)
	}
}

func TestNames(t *testing.T) {
	tests := []struct{ in, ref, full string }{
		{"app:1.0", "1.0", "docker.io/library/app:1.0"},
		{"team/app:v2", "v2", "docker.io/team/app:v2"},
		{"localhost:5000/app:x", "x", "localhost:5000/app:x"},
		{"quay.io/a/b:latest", "latest", "quay.io/a/b:latest"},
	}
	for _, tt := range tests {
		if got := refName(tt.in); got != tt.ref {
			t.Errorf("refName(%s) = %s, want %s", tt.in, got, tt.ref)
		}
		if got := fullName(tt.in); got != tt.full {
			t.Errorf("fullName(%s) = %s, want %s", tt.in, got, tt.full)
		}
	}
}

func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s not installed: %v", tool, err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return out
}

// skopeoInspect is the part of `skopeo inspect` output the tests check.
type skopeoInspect struct {
	Digest       string
	Layers       []string
	Architecture string
	Os           string
}

func inspect(t *testing.T, ref string) skopeoInspect {
	t.Helper()
	var got skopeoInspect
	if err := json.Unmarshal(run(t, need(t, "skopeo"), "inspect", ref), &got); err != nil {
		t.Fatal(err)
	}
	return got
}

func layerDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var ds []string
	for _, l := range m.Layers {
		ds = append(ds, l.Digest.String())
	}
	return ds
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOCIArchiveSkopeoUmoci(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	img := testImage(t, s)
	dgst, _ := img.Digest()
	path := filepath.Join(t.TempDir(), "app.tar")
	if err := NewOCIArchive(path, []string{"app:1.0", "app:latest"}).Export(ctx, img); err != nil {
		t.Fatal(err)
	}
	got := inspect(t, "oci-archive:"+path+":1.0")
	if got.Digest != dgst.String() {
		t.Errorf("skopeo digest = %s, want %s", got.Digest, dgst)
	}
	if want := layerDigests(t, img); !equal(got.Layers, want) {
		t.Errorf("skopeo layers = %v, want %v", got.Layers, want)
	}
	if got.Os != "linux" || got.Architecture != "amd64" {
		t.Errorf("skopeo os/arch = %s/%s", got.Os, got.Architecture)
	}

	umoci := need(t, "umoci")
	layout := filepath.Join(t.TempDir(), "layout")
	untar(t, path, layout)
	bundle := filepath.Join(t.TempDir(), "bundle")
	args := []string{"unpack", "--image", layout + ":latest", bundle}
	if os.Geteuid() != 0 {
		args = []string{"unpack", "--rootless", "--image", layout + ":latest", bundle}
	}
	run(t, umoci, args...)
	for file, want := range map[string]string{"hello": "hello world\n", "etc/os-release": "ID=lading\n"} {
		b, err := os.ReadFile(filepath.Join(bundle, "rootfs", file))
		if err != nil || string(b) != want {
			t.Errorf("unpacked %s = %q, %v; want %q", file, b, err, want)
		}
	}
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "tar", "-xf", archive, "-C", dir)
}

func TestDockerArchiveSkopeo(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	img := testImage(t, s)
	path := filepath.Join(t.TempDir(), "app.tar")
	if err := NewDockerArchive(path, []string{"app:1.0"}).Export(ctx, img); err != nil {
		t.Fatal(err)
	}
	got := inspect(t, "docker-archive:"+path)
	if len(got.Layers) != 2 || got.Os != "linux" || got.Architecture != "amd64" {
		t.Errorf("skopeo inspect = %+v", got)
	}
	// skopeo copies it into an OCI layout with the same config.
	out := filepath.Join(t.TempDir(), "oci")
	run(t, need(t, "skopeo"), "copy", "docker-archive:"+path+":app:1.0", "oci:"+out+":x")
	cfg, err := layoutConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	// skopeo re-marshals the config when converting, so compare content.
	want, _ := img.ConfigFile()
	if !equal(hashes(cfg.RootFS.DiffIDs), hashes(want.RootFS.DiffIDs)) || !equal(cfg.Config.Cmd, want.Config.Cmd) {
		t.Errorf("skopeo copied config %+v, want %+v", cfg, want)
	}
}

func hashes(hs []v1.Hash) []string {
	var s []string
	for _, h := range hs {
		s = append(s, h.String())
	}
	return s
}

// layoutConfig returns the config of the first image in an OCI layout
// directory.
func layoutConfig(dir string) (*v1.ConfigFile, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	mb, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", idx.Manifests[0].Digest.Hex))
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(mb))
	if err != nil {
		return nil, err
	}
	cb, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", m.Config.Digest.Hex))
	if err != nil {
		return nil, err
	}
	return v1.ParseConfigFile(bytes.NewReader(cb))
}

func TestReproducibleArchives(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	img := testImage(t, s)
	dgst, err := Save(ctx, s, img)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(s, dgst.String())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, mk := range []func(string, []string) Exporter{NewOCIArchive, NewDockerArchive} {
		a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
		// Once from the in-memory image, once from the stored one.
		if err := mk(a, []string{"app:1.0"}).Export(ctx, img); err != nil {
			t.Fatal(err)
		}
		if err := mk(b, []string{"app:1.0"}).Export(ctx, loaded); err != nil {
			t.Fatal(err)
		}
		ab, _ := os.ReadFile(a)
		bb, _ := os.ReadFile(b)
		if !bytes.Equal(ab, bb) || len(ab) == 0 {
			t.Errorf("exports differ: %d and %d bytes", len(ab), len(bb))
		}
		hdrs := tarHeaders(t, ab)
		for _, h := range hdrs {
			if h.ModTime.Unix() != 0 || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
				t.Errorf("unclean header %+v", h)
			}
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func tarHeaders(t *testing.T, b []byte) []*tar.Header {
	t.Helper()
	var hs []*tar.Header
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
}

func TestImportOCIArchiveRoundTrip(t *testing.T) {
	src := openStore(t)
	ctx := context.Background()
	img := testImage(t, src)
	dgst, _ := img.Digest()
	// skopeo only selects OCI media types in a layout; random.Image's are docker's.
	other := buildImage(t, src, []map[string]string{{"other": "2"}})
	dir := t.TempDir()
	path := filepath.Join(dir, "app.tar")
	if err := NewOCIArchive(path, []string{"app:1.0"}).Export(ctx, img); err != nil {
		t.Fatal(err)
	}
	// skopeo re-packs it, and adds a second image, to check selection.
	skopeo := need(t, "skopeo")
	layout := filepath.Join(dir, "layout")
	run(t, skopeo, "copy", "oci-archive:"+path+":1.0", "oci:"+layout+":first")
	otherPath := filepath.Join(dir, "other.tar")
	if err := NewOCIArchive(otherPath, []string{"other:2"}).Export(ctx, other); err != nil {
		t.Fatal(err)
	}
	run(t, skopeo, "copy", "oci-archive:"+otherPath+":2", "oci:"+layout+":second")
	both := filepath.Join(dir, "both.tar")
	run(t, "tar", "-cf", both, "-C", layout, ".")
	otherDigest, _ := other.Digest()

	for _, tt := range []struct {
		ref  string
		want v1.Hash
	}{
		{"oci-archive:" + path, dgst},
		{"oci-archive:" + path + ":app:1.0", dgst},
		{"oci-archive:" + both, dgst},
		{"oci-archive:" + both + ":second", otherDigest},
	} {
		s := openStore(t)
		got, err := ImportArchive(ctx, s, tt.ref)
		if err != nil {
			t.Fatalf("ImportArchive(%s): %v", tt.ref, err)
		}
		if d, _ := got.Digest(); d != tt.want {
			t.Errorf("ImportArchive(%s) digest = %s, want %s", tt.ref, d, tt.want)
		}
		if err := validate.Image(got); err != nil {
			t.Errorf("validate.Image(%s): %v", tt.ref, err)
		}
		if _, err := Load(s, tt.want.String()); err != nil {
			t.Errorf("Load after import: %v", err)
		}
	}
	s := openStore(t)
	if _, err := ImportArchive(ctx, s, "oci-archive:"+path+":nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("import of a missing name err = %v", err)
	}
}

func TestImportDockerArchive(t *testing.T) {
	src := openStore(t)
	ctx := context.Background()
	img := testImage(t, src)
	cfgName, _ := img.ConfigName()
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.tar")
	if err := NewDockerArchive(ours, []string{"app:1.0"}).Export(ctx, img); err != nil {
		t.Fatal(err)
	}
	// skopeo writes what `docker save` writes: uncompressed layers.
	theirs := filepath.Join(dir, "theirs.tar")
	run(t, need(t, "skopeo"), "copy", "docker-archive:"+ours, "docker-archive:"+theirs+":app:1.0")
	for _, ref := range []string{"docker-archive:" + ours, "docker-archive:" + theirs + ":app:1.0", "docker-archive:" + theirs} {
		s := openStore(t)
		got, err := ImportArchive(ctx, s, ref)
		if err != nil {
			t.Fatalf("ImportArchive(%s): %v", ref, err)
		}
		if err := validate.Image(got); err != nil {
			t.Errorf("validate.Image: %v", err)
		}
		if c, _ := got.ConfigName(); c != cfgName {
			t.Errorf("imported config %s, want %s (docker image id kept)", c, cfgName)
		}
		// Layers are recompressed by WriteLayer: same diffIDs and digests.
		if gl, wl := layerDigests(t, got), layerDigests(t, img); !equal(gl, wl) {
			t.Errorf("layers = %v, want %v", gl, wl)
		}
	}
}

// writeTar writes a tar of the given entries.
func writeTar(t *testing.T, path string, entries []tar.Header, data []string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range entries {
		h := entries[i]
		h.Size = int64(len(data[i]))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, data[i])
	}
	tw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportBadArchives(t *testing.T) {
	dir := t.TempDir()
	wrong := sha([]byte("something else"))
	tests := []struct {
		name    string
		entries []tar.Header
		data    []string
		want    error
	}{
		{"escape", []tar.Header{{Name: "../evil", Typeflag: tar.TypeReg}}, []string{"x"}, ErrBadArchive},
		{"absolute", []tar.Header{{Name: "/etc/evil", Typeflag: tar.TypeReg}}, []string{"x"}, ErrBadArchive},
		{"bad digest name", []tar.Header{{Name: "blobs/sha256/../../x", Typeflag: tar.TypeReg}}, []string{"x"}, ErrBadArchive},
		{"short digest", []tar.Header{{Name: "blobs/sha256/abc", Typeflag: tar.TypeReg}}, []string{"x"}, store.ErrInvalidDigest},
		{"content mismatch", []tar.Header{{Name: "index.json", Typeflag: tar.TypeReg}, {Name: "blobs/sha256/" + wrong.Hex, Typeflag: tar.TypeReg}},
			[]string{`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + wrong.String() + `","size":1}]}`, "x"}, store.ErrDigestMismatch},
		{"symlink blob", []tar.Header{{Name: "blobs/sha256/" + wrong.Hex, Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}, []string{""}, ErrBadArchive},
		{"no index", []tar.Header{{Name: "oci-layout", Typeflag: tar.TypeReg}}, []string{"{}"}, ErrBadArchive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "bad.tar")
			writeTar(t, p, tt.entries, tt.data)
			s := openStore(t)
			_, err := ImportArchive(context.Background(), s, "oci-archive:"+p)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestWriteLayerLargeParallel: a layer past the parallel threshold is
// compressed in parallel blocks, still reproducibly, and ggcr reads back
// the same diff id and digest.
func TestWriteLayerLargeParallel(t *testing.T) {
	s := openStore(t)
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(i*7 + i/4096)
	}
	data := layerTar(t, map[string]string{"big": string(big), "small": "x"})
	var digests []string
	for range 2 {
		l, err := WriteLayer(context.Background(), s, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		d, _ := l.Digest()
		diffID, _ := l.DiffID()
		if want := sha256.Sum256(data); diffID.Hex != hex.EncodeToString(want[:]) {
			t.Fatalf("diff id %s does not hash the tar", diffID)
		}
		if err := validate.Layer(l); err != nil {
			t.Fatalf("validate.Layer: %v", err)
		}
		digests = append(digests, d.String())
	}
	if digests[0] != digests[1] {
		t.Errorf("same input gave %s and %s", digests[0], digests[1])
	}
}
