package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/store"
)

// Save writes img into the store: every layer blob not yet present, the
// config blob, then the manifest blob (last, so a stored manifest means a
// complete image). It returns the manifest digest.
func Save(ctx context.Context, s *store.Store, img v1.Image) (v1.Hash, error) {
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("saving image: %w", err)
	}
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return v1.Hash{}, fmt.Errorf("saving image: %w", err)
		}
		if err := saveLayer(s, l); err != nil {
			return v1.Hash{}, err
		}
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("saving image: %w", err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("saving image: %w", err)
	}
	if err := putBytes(s, cfg, cfgName); err != nil {
		return v1.Hash{}, fmt.Errorf("saving config: %w", err)
	}
	dgst, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("saving image: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("saving image: %w", err)
	}
	if err := putBytes(s, raw, dgst); err != nil {
		return v1.Hash{}, fmt.Errorf("saving manifest: %w", err)
	}
	return dgst, nil
}

func saveLayer(s *store.Store, l v1.Layer) error {
	d, err := l.Digest()
	if err != nil {
		return fmt.Errorf("saving layer: %w", err)
	}
	if s.HasBlob(d.String()) {
		return nil
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("saving layer %s: %w", d, err)
	}
	defer rc.Close()
	if _, _, err := s.WriteBlob(rc, d.String()); err != nil {
		return fmt.Errorf("saving layer %s: %w", d, err)
	}
	return nil
}

func putBytes(s *store.Store, b []byte, want v1.Hash) error {
	if s.HasBlob(want.String()) {
		return nil
	}
	_, _, err := s.WriteBlob(bytes.NewReader(b), want.String())
	return err
}

// readBlob reads a whole small blob (a manifest or config), verified.
func readBlob(s *store.Store, digest string) ([]byte, error) {
	f, err := s.OpenVerified(digest, -1)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const maxMeta = 64 << 20
	b, err := io.ReadAll(io.LimitReader(f, maxMeta+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMeta {
		return nil, fmt.Errorf("blob %s is larger than %d bytes", digest, maxMeta)
	}
	return b, nil
}

// Load returns the image whose manifest is the store blob digest. Its
// layers are store-backed; every blob it names must be in the store.
func Load(s *store.Store, digest string) (v1.Image, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, fmt.Errorf("loading image %s: %w", digest, store.ErrInvalidDigest)
	}
	raw, err := readBlob(s, digest)
	if err != nil {
		return nil, fmt.Errorf("loading image: %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("loading image %s: %w", digest, err)
	}
	if m.MediaType.IsIndex() {
		return nil, fmt.Errorf("loading image %s: %w", digest, errIndex)
	}
	rawCfg, err := readBlob(s, m.Config.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("loading image config: %w", err)
	}
	cfg, err := parseConfig(rawCfg, m)
	if err != nil {
		return nil, fmt.Errorf("loading image %s: %w", digest, err)
	}
	img := &storeImage{raw: raw, digest: h, manifest: m, rawCfg: rawCfg, cfg: cfg}
	for i, d := range m.Layers {
		if !s.HasBlob(d.Digest.String()) {
			return nil, fmt.Errorf("loading image %s: layer %s: %w", digest, d.Digest, store.ErrNotFound)
		}
		img.layers = append(img.layers, StoreLayer(s, d.Digest, cfg.RootFS.DiffIDs[i], d.Size, d.MediaType))
	}
	return img, nil
}

var errIndex = errors.New("is an image index, not an image")

// Resolve returns the stored image ref names: a manifest digest
// "sha256:...", or a name in the store, looked up as written or by its
// canonical registry form (see LookupName): a pulled "debian:12" is found
// as "debian:12", "docker.io/library/debian:12" or
// "index.docker.io/library/debian:12".
//
// A name of an image index gives the index's image for this machine's
// platform (ResolvePlatform chooses another).
func Resolve(s *store.Store, ref string) (v1.Image, error) {
	return ResolvePlatform(s, ref, HostPlatform())
}

// storeImage is a v1.Image read from the store.
type storeImage struct {
	raw      []byte
	digest   v1.Hash
	manifest *v1.Manifest
	rawCfg   []byte
	cfg      *v1.ConfigFile
	layers   []v1.Layer
}

var _ v1.Image = (*storeImage)(nil)

func (i *storeImage) Layers() ([]v1.Layer, error) {
	return append([]v1.Layer(nil), i.layers...), nil
}

func (i *storeImage) MediaType() (types.MediaType, error) {
	if i.manifest.MediaType != "" {
		return i.manifest.MediaType, nil
	}
	return types.OCIManifestSchema1, nil
}

func (i *storeImage) Size() (int64, error)                { return int64(len(i.raw)), nil }
func (i *storeImage) ConfigName() (v1.Hash, error)        { return i.manifest.Config.Digest, nil }
func (i *storeImage) ConfigFile() (*v1.ConfigFile, error) { return i.cfg.DeepCopy(), nil }
func (i *storeImage) RawConfigFile() ([]byte, error)      { return i.rawCfg, nil }
func (i *storeImage) Digest() (v1.Hash, error)            { return i.digest, nil }
func (i *storeImage) Manifest() (*v1.Manifest, error)     { return i.manifest.DeepCopy(), nil }
func (i *storeImage) RawManifest() ([]byte, error)        { return i.raw, nil }

func (i *storeImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	for _, l := range i.layers {
		if d, _ := l.Digest(); d == h {
			return l, nil
		}
	}
	if h == i.manifest.Config.Digest {
		return partial.ConfigLayer(i)
	}
	return nil, fmt.Errorf("layer %s: %w", h, store.ErrNotFound)
}

func (i *storeImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for _, l := range i.layers {
		if d, _ := l.DiffID(); d == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("layer with diff id %s: %w", h, store.ErrNotFound)
}

// Referenced returns the blobs the named images of the store use: their
// manifests, configs and layers.
func Referenced(s *store.Store) (map[string]bool, error) {
	names, err := s.Names()
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	digests := []string{}
	for _, n := range names {
		digests = append(digests, n.Digest)
		if idx, ok, err := LoadIndex(s, n.Digest); err == nil && ok {
			// An index keeps itself and every image it lists.
			used[n.Digest] = true
			im, _ := idx.IndexManifest()
			for _, d := range im.Manifests {
				digests = append(digests, d.Digest.String())
			}
		}
	}
	for _, d := range digests {
		if used[d] {
			continue
		}
		used[d] = true
		img, err := Load(s, d)
		if err != nil {
			// A name whose image is gone keeps nothing alive.
			continue
		}
		if cfg, err := img.ConfigName(); err == nil {
			used[cfg.String()] = true
		}
		m, err := img.Manifest()
		if err != nil {
			continue
		}
		for _, l := range m.Layers {
			used[l.Digest.String()] = true
		}
	}
	return used, nil
}
