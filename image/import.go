package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	goruntime "runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/store"
)

// ErrBadArchive is returned (wrapped) for an archive lading refuses:
// entries escaping the archive, links where blobs belong, missing files.
var ErrBadArchive = errors.New("bad image archive")

// ImportArchive copies the image in an archive into the store and returns
// the stored image. ref is "oci-archive:PATH" (an OCI image layout tar;
// PATH:NAME selects the index entry whose ref.name or containerd name is
// NAME, otherwise the first) or "docker-archive:PATH" (a `docker save`
// tar; PATH:NAME selects by repo tag). Every blob is checked against its
// digest as it is stored; docker archive layers are compressed with
// WriteLayer and checked against the config's diff ids.
func ImportArchive(ctx context.Context, s *store.Store, ref string) (v1.Image, error) {
	transport, rest, ok := strings.Cut(ref, ":")
	if !ok {
		return nil, fmt.Errorf("importing %s: want oci-archive:PATH or docker-archive:PATH", ref)
	}
	file, sel := splitArchiveRef(rest)
	var (
		img v1.Image
		err error
	)
	switch transport {
	case "oci-archive":
		img, err = importOCI(ctx, s, file, sel)
	case "docker-archive":
		img, err = importDocker(ctx, s, file, sel)
	default:
		return nil, fmt.Errorf("importing %s: unknown transport %q", ref, transport)
	}
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", ref, err)
	}
	return img, nil
}

// splitArchiveRef splits "PATH[:NAME]": the whole string when it names an
// existing file, otherwise at the first colon after which the part before
// it is an existing file (names contain colons, "app:1.0"; so can paths).
func splitArchiveRef(ref string) (file, sel string) {
	if _, err := os.Stat(ref); err == nil {
		return ref, ""
	}
	for i := 0; i < len(ref); i++ {
		if ref[i] != ':' {
			continue
		}
		if _, err := os.Stat(ref[:i]); err == nil {
			return ref[:i], ref[i+1:]
		}
	}
	return ref, ""
}

// importOCI reads an OCI layout tar in one pass, storing every blob
// (verified against its name), then loads the selected image.
func importOCI(ctx context.Context, s *store.Store, file, sel string) (v1.Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var index []byte
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading archive: %w", err)
		}
		name, err := cleanEntry(h.Name)
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		switch {
		case name == "index.json":
			if h.Typeflag != tar.TypeReg {
				return nil, fmt.Errorf("%w: index.json is not a regular file", ErrBadArchive)
			}
			if index, err = readLimited(tr, 16<<20); err != nil {
				return nil, fmt.Errorf("reading index.json: %w", err)
			}
		case strings.HasPrefix(name, "blobs/sha256/"):
			if h.Typeflag != tar.TypeReg {
				return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadArchive, name)
			}
			d := "sha256:" + strings.TrimPrefix(name, "blobs/sha256/")
			if _, err := store.ParseDigest(d); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrBadArchive, name, err)
			}
			if s.HasBlob(d) {
				continue
			}
			if _, _, err := s.WriteBlob(ctxReader{ctx, tr}, d); err != nil {
				return nil, fmt.Errorf("storing %s: %w", name, err)
			}
		}
	}
	if index == nil {
		return nil, fmt.Errorf("%w: no index.json", ErrBadArchive)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(index))
	if err != nil {
		return nil, fmt.Errorf("parsing index.json: %w", err)
	}
	desc, err := selectManifest(idx, sel)
	if err != nil {
		return nil, err
	}
	return loadDescriptor(s, desc, 0)
}

// cleanEntry rejects tar entry names that escape the archive root.
func cleanEntry(n string) (string, error) {
	c := path.Clean(strings.TrimPrefix(n, "./"))
	if n == "" || path.IsAbs(n) || c == ".." || strings.HasPrefix(c, "../") || strings.Contains(n, "\\") {
		return "", fmt.Errorf("%w: entry %q escapes the archive", ErrBadArchive, n)
	}
	return c, nil
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// selectManifest picks the index entry sel names, or the first.
func selectManifest(idx *v1.IndexManifest, sel string) (v1.Descriptor, error) {
	if len(idx.Manifests) == 0 {
		return v1.Descriptor{}, fmt.Errorf("%w: empty index.json", ErrBadArchive)
	}
	if sel == "" {
		return idx.Manifests[0], nil
	}
	want := map[string]bool{sel: true}
	if full, err := store.NormalizeName(sel); err == nil {
		want[full] = true
		want[fullName(full)] = true
	}
	for _, d := range idx.Manifests {
		if want[d.Annotations[AnnotationRefName]] || want[d.Annotations[AnnotationContainerdName]] {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no image named %q in the archive: %w", sel, store.ErrNotFound)
}

// loadDescriptor loads the image desc points at; for an index, the entry
// for this machine's platform.
func loadDescriptor(s *store.Store, desc v1.Descriptor, depth int) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		return Load(s, desc.Digest.String())
	}
	if depth > 4 {
		return nil, fmt.Errorf("%w: indexes nested too deep", ErrBadArchive)
	}
	raw, err := readBlob(s, desc.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("reading index %s: %w", desc.Digest, err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing index %s: %w", desc.Digest, err)
	}
	want := v1.Platform{OS: goruntime.GOOS, Architecture: goruntime.GOARCH}
	for _, d := range idx.Manifests {
		if d.MediaType.IsIndex() || (d.Platform != nil && d.Platform.Satisfies(want)) || (d.Platform == nil && len(idx.Manifests) == 1) {
			return loadDescriptor(s, d, depth+1)
		}
	}
	return nil, fmt.Errorf("index %s has no image for %s/%s: %w", desc.Digest, want.OS, want.Architecture, store.ErrNotFound)
}

// importDocker reads a `docker save` tar with ggcr, compresses each layer
// into the store and writes an OCI manifest over the original config, so
// the config digest (docker's image ID) is kept.
func importDocker(ctx context.Context, s *store.Store, file, sel string) (v1.Image, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, err
	}
	var tag *name.Tag
	if sel != "" {
		t, err := name.NewTag(sel, name.WeakValidation)
		if err != nil {
			return nil, fmt.Errorf("parsing %q: %w", sel, err)
		}
		tag = &t
	}
	src, err := tarball.ImageFromPath(file, tag)
	if err != nil {
		return nil, fmt.Errorf("reading archive: %w", err)
	}
	rawCfg, err := src.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	for _, diffID := range cfg.RootFS.DiffIDs {
		l, err := importDockerLayer(ctx, s, src, diffID)
		if err != nil {
			return nil, err
		}
		d, _ := l.Digest()
		size, _ := l.Size()
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Digest: d, Size: size})
	}
	cfgDigest, cfgSize, err := s.WriteBlob(bytes.NewReader(rawCfg), "")
	if err != nil {
		return nil, fmt.Errorf("storing config: %w", err)
	}
	if m.Config.Digest, err = v1.NewHash(cfgDigest); err != nil {
		return nil, err
	}
	m.Config.MediaType, m.Config.Size = types.OCIConfigJSON, cfgSize
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	dgst, _, err := s.WriteBlob(bytes.NewReader(raw), "")
	if err != nil {
		return nil, fmt.Errorf("storing manifest: %w", err)
	}
	return Load(s, dgst)
}

func importDockerLayer(ctx context.Context, s *store.Store, src v1.Image, diffID v1.Hash) (v1.Layer, error) {
	sl, err := src.LayerByDiffID(diffID)
	if err != nil {
		return nil, fmt.Errorf("finding layer %s: %w", diffID, err)
	}
	rc, err := sl.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("reading layer %s: %w", diffID, err)
	}
	defer rc.Close()
	l, err := WriteLayer(ctx, s, rc)
	if err != nil {
		return nil, err
	}
	if got, _ := l.DiffID(); got != diffID {
		return nil, fmt.Errorf("%w: layer has diff id %s, config says %s", store.ErrDigestMismatch, got, diffID)
	}
	return l, nil
}
