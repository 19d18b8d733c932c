package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/store"
)

// SaveIndex writes an image index into the store: every image it lists
// (see Save), then the index blob. It returns the index digest.
func SaveIndex(ctx context.Context, s *store.Store, idx v1.ImageIndex) (v1.Hash, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() {
			return v1.Hash{}, fmt.Errorf("index %s: nested indexes are not stored", d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return v1.Hash{}, err
		}
		if _, err := Save(ctx, s, img); err != nil {
			return v1.Hash{}, err
		}
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	dgst, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := putBytes(s, raw, dgst); err != nil {
		return v1.Hash{}, fmt.Errorf("saving index: %w", err)
	}
	return dgst, nil
}

// LoadIndex returns the image index whose manifest is the store blob
// digest; its images are loaded with Load. ok is false (and err nil) when
// the blob is an image manifest, not an index.
func LoadIndex(s *store.Store, digest string) (idx v1.ImageIndex, ok bool, err error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, false, fmt.Errorf("loading index %s: %w", digest, store.ErrInvalidDigest)
	}
	raw, err := readBlob(s, digest)
	if err != nil {
		return nil, false, fmt.Errorf("loading index: %w", err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, false, fmt.Errorf("loading index %s: %w", digest, err)
	}
	if !im.MediaType.IsIndex() {
		return nil, false, nil
	}
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() {
			return nil, false, fmt.Errorf("loading index %s: nested index %s: %w", digest, d.Digest, ErrUnsupportedMediaType)
		}
	}
	return &storeIndex{s: s, raw: raw, digest: h, manifest: im}, true, nil
}

// ResolveIndex returns the index ref names (a name or digest), ok false
// when ref names a single image.
func ResolveIndex(s *store.Store, ref string) (idx v1.ImageIndex, ok bool, err error) {
	d := ref
	if !strings.HasPrefix(ref, "sha256:") {
		if _, d, err = LookupName(s, ref); err != nil {
			return nil, false, err
		}
	}
	return LoadIndex(s, d)
}

// ResolvePlatform is Resolve for a platform: a name or digest of an index
// gives the index's image for p (matched as Pull does); of an image, that
// image, whatever its platform.
func ResolvePlatform(s *store.Store, ref string, p v1.Platform) (v1.Image, error) {
	d := ref
	if !strings.HasPrefix(ref, "sha256:") {
		_, dg, err := LookupName(s, ref)
		if err != nil {
			return nil, err
		}
		d = dg
	}
	idx, ok, err := LoadIndex(s, d)
	if err != nil {
		return nil, err
	}
	if !ok {
		return Load(s, d)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	desc, err := matchPlatform(im.Manifests, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return idx.Image(desc.Digest)
}

// storeIndex is a v1.ImageIndex read from the store.
type storeIndex struct {
	s        *store.Store
	raw      []byte
	digest   v1.Hash
	manifest *v1.IndexManifest
}

var _ v1.ImageIndex = (*storeIndex)(nil)

func (i *storeIndex) MediaType() (types.MediaType, error) {
	if i.manifest.MediaType != "" {
		return i.manifest.MediaType, nil
	}
	return types.OCIImageIndex, nil
}
func (i *storeIndex) Digest() (v1.Hash, error) { return i.digest, nil }
func (i *storeIndex) Size() (int64, error)     { return int64(len(i.raw)), nil }
func (i *storeIndex) IndexManifest() (*v1.IndexManifest, error) {
	return i.manifest.DeepCopy(), nil
}
func (i *storeIndex) RawManifest() ([]byte, error) { return i.raw, nil }
func (i *storeIndex) Image(h v1.Hash) (v1.Image, error) {
	for _, d := range i.manifest.Manifests {
		if d.Digest == h {
			return Load(i.s, h.String())
		}
	}
	return nil, fmt.Errorf("image %s is not in index %s: %w", h, i.digest, store.ErrNotFound)
}
func (i *storeIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("index %s: nested indexes are not supported", i.digest)
}

// IndexImages returns the images of idx with their platforms, in order.
func IndexImages(idx v1.ImageIndex) ([]v1.Image, []v1.Platform, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, err
	}
	var imgs []v1.Image
	var plats []v1.Platform
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() {
			return nil, nil, errors.New("nested image indexes are not supported")
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, nil, err
		}
		var p v1.Platform
		if d.Platform != nil {
			p = *d.Platform
		}
		imgs = append(imgs, img)
		plats = append(plats, p)
	}
	return imgs, plats, nil
}

// PushIndex uploads every image of idx, then idx, to dest, and returns
// the index digest the registry has.
func PushIndex(ctx context.Context, idx v1.ImageIndex, dest string, opts RemoteOptions) (v1.Hash, error) {
	r, err := opts.parse(dest)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", dest, err)
	}
	dgst, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", dest, err)
	}
	if err := remote.WriteIndex(r, idx, opts.remoteOptions(ctx)...); err != nil {
		return v1.Hash{}, &RemoteError{Op: "pushing", Ref: dest, Registry: r.Context().RegistryStr(), Err: err}
	}
	opts.progress("%s: %s", r.Name(), dgst)
	return dgst, nil
}
