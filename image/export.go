package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/store"
)

// Exporter writes an image to one medium. The builder returns an image
// and hands it to the exporters the user asked for.
type Exporter interface {
	Export(ctx context.Context, img v1.Image) error
}

// Annotation keys in the index.json of OCI archives.
const (
	AnnotationRefName        = "org.opencontainers.image.ref.name"
	AnnotationContainerdName = "io.containerd.image.name"
)

// NewOCIArchive returns an exporter writing an OCI image layout as a tar
// at path, with one index.json entry per name (none: one unnamed entry).
// The ref.name annotation is the tag ("1.0" for "app:1.0"), which skopeo
// and umoci select by; io.containerd.image.name is the full name.
func NewOCIArchive(path string, names []string) Exporter {
	return &archive{path: path, names: names}
}

// NewDockerArchive returns an exporter writing a tar that `docker load`
// reads: manifest.json naming the config and layer blobs, RepoTags from
// names. Layers are kept as they are stored (gzip), which docker load
// accepts. The tar is also an OCI image layout, like `docker save` of
// Docker 25 and later writes.
func NewDockerArchive(path string, names []string) Exporter {
	return &archive{path: path, names: names, docker: true}
}

// archive writes OCI and docker archives.
type archive struct {
	path   string
	names  []string
	docker bool
}

// blob is one blob to put in an archive.
type blob struct {
	digest v1.Hash
	size   int64
	data   []byte                        // small blobs: manifest, config
	open   func() (io.ReadCloser, error) // layers
}

// dockerManifestEntry is one element of a docker archive's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Export writes the archive: temp file next to path, then rename.
func (a *archive) Export(ctx context.Context, img v1.Image) error {
	blobs, err := imageBlobs(img)
	if err != nil {
		return fmt.Errorf("exporting image: %w", err)
	}
	desc, err := manifestDescriptor(img)
	if err != nil {
		return fmt.Errorf("exporting image: %w", err)
	}
	index, err := a.index(desc)
	if err != nil {
		return fmt.Errorf("exporting image: %w", err)
	}
	var dockerManifest []byte
	if a.docker {
		if dockerManifest, err = a.dockerManifest(img); err != nil {
			return fmt.Errorf("exporting image: %w", err)
		}
	}
	if err := a.write(ctx, index, dockerManifest, blobs); err != nil {
		return fmt.Errorf("exporting image %s: %w", desc.Digest, err)
	}
	return nil
}

// IndexExporter writes a multi-platform image (an OCI image index).
type IndexExporter interface {
	ExportIndex(ctx context.Context, idx v1.ImageIndex) error
}

// ErrDockerIndex is the error of a docker archive of several platforms.
var ErrDockerIndex = errors.New("a docker archive holds one platform: use type=oci or --push for a multi-platform image")

// ExportIndex writes an OCI archive whose index.json entries (one per
// name) point at the image index idx, with every image of it; skopeo
// copy --all reads it. A docker archive cannot hold an index.
func (a *archive) ExportIndex(ctx context.Context, idx v1.ImageIndex) error {
	if a.docker {
		return ErrDockerIndex
	}
	imgs, _, err := IndexImages(idx)
	if err != nil {
		return fmt.Errorf("exporting index: %w", err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return fmt.Errorf("exporting index: %w", err)
	}
	dgst, err := idx.Digest()
	if err != nil {
		return fmt.Errorf("exporting index: %w", err)
	}
	mt, err := idx.MediaType()
	if err != nil {
		return fmt.Errorf("exporting index: %w", err)
	}
	seen := map[v1.Hash]bool{dgst: true}
	blobs := []blob{{digest: dgst, data: raw}}
	for _, img := range imgs {
		bs, err := imageBlobs(img)
		if err != nil {
			return fmt.Errorf("exporting index: %w", err)
		}
		for _, b := range bs {
			if !seen[b.digest] {
				seen[b.digest] = true
				blobs = append(blobs, b)
			}
		}
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].digest.Hex < blobs[j].digest.Hex })
	index, err := a.index(v1.Descriptor{MediaType: mt, Digest: dgst, Size: int64(len(raw))})
	if err != nil {
		return fmt.Errorf("exporting index: %w", err)
	}
	if err := a.write(ctx, index, nil, blobs); err != nil {
		return fmt.Errorf("exporting index %s: %w", dgst, err)
	}
	return nil
}

// write writes the archive's tar: temp file next to path, then rename.
func (a *archive) write(ctx context.Context, index, dockerManifest []byte, blobs []blob) error {
	return writeAtomic(ctx, a.path, func(f *os.File) error {
		t := &tarFile{f: f}
		if err := t.bytes("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return err
		}
		if err := t.bytes("index.json", index); err != nil {
			return err
		}
		if dockerManifest != nil {
			if err := t.bytes("manifest.json", dockerManifest); err != nil {
				return err
			}
		}
		if err := t.dir("blobs/"); err != nil {
			return err
		}
		if err := t.dir("blobs/sha256/"); err != nil {
			return err
		}
		for _, b := range blobs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := writeBlob(t, b); err != nil {
				return err
			}
		}
		return t.close()
	})
}

func writeBlob(t *tarFile, b blob) error {
	name := "blobs/sha256/" + b.digest.Hex
	if b.data != nil {
		return t.bytes(name, b.data)
	}
	rc, err := b.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return t.copy(name, rc, b.size)
}

// imageBlobs lists the manifest, config and layer blobs of img, sorted by
// digest, each once. Store-backed layers are copied from their files.
func imageBlobs(img v1.Image) ([]blob, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	dgst, err := img.Digest()
	if err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	seen := map[v1.Hash]bool{dgst: true, cfgName: true}
	blobs := []blob{{digest: dgst, data: raw}, {digest: cfgName, data: cfg}}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		size, err := l.Size()
		if err != nil {
			return nil, err
		}
		if d.Algorithm != "sha256" {
			return nil, fmt.Errorf("layer %s: %w", d, store.ErrInvalidDigest)
		}
		blobs = append(blobs, blob{digest: d, size: size, open: l.Compressed})
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].digest.Hex < blobs[j].digest.Hex })
	return blobs, nil
}

// index returns index.json for the archive's names, each pointing at
// desc.
func (a *archive) index(desc v1.Descriptor) ([]byte, error) {
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	if len(a.names) == 0 {
		idx.Manifests = []v1.Descriptor{desc}
	}
	for _, n := range a.names {
		full, err := store.NormalizeName(n)
		if err != nil {
			return nil, err
		}
		d := desc
		d.Annotations = map[string]string{
			AnnotationRefName:        refName(full),
			AnnotationContainerdName: fullName(full),
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	return json.Marshal(idx)
}

func manifestDescriptor(img v1.Image) (v1.Descriptor, error) {
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	dgst, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: dgst, Size: size}, nil
}

// dockerManifest returns manifest.json of a docker archive.
func (a *archive) dockerManifest(img v1.Image) ([]byte, error) {
	cfgName, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	e := dockerManifestEntry{Config: "blobs/sha256/" + cfgName.Hex, RepoTags: []string{}}
	for _, n := range a.names {
		full, err := store.NormalizeName(n)
		if err != nil {
			return nil, err
		}
		if !strings.Contains(full, "@") {
			e.RepoTags = append(e.RepoTags, full)
		}
	}
	for _, l := range m.Layers {
		e.Layers = append(e.Layers, "blobs/sha256/"+l.Digest.Hex)
	}
	return json.Marshal([]dockerManifestEntry{e})
}

// splitName splits a normalized name into repository and tag or digest.
func splitName(name string) (repo, ref string) {
	if i := strings.Index(name, "@"); i >= 0 {
		return name[:i], name[i+1:]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[:i], name[i+1:]
	}
	return name, ""
}

// refName is the org.opencontainers.image.ref.name of a normalized name:
// its tag, or the name itself when it has a digest instead.
func refName(name string) string {
	if _, ref, _ := strings.Cut(name, "@"); ref != "" {
		return name
	}
	_, tag := splitName(name)
	return tag
}

// fullName qualifies a name the way docker and containerd do:
// "app:1.0" is "docker.io/library/app:1.0".
func fullName(name string) string {
	repo, ref := splitName(name)
	sep := ":"
	if strings.Contains(name, "@") {
		sep = "@"
	}
	first, rest, ok := strings.Cut(repo, "/")
	switch {
	case !ok:
		repo = "docker.io/library/" + repo
	case first == "localhost" || strings.ContainsAny(first, ".:"):
	default:
		repo = "docker.io/" + first + "/" + rest
	}
	return repo + sep + ref
}
