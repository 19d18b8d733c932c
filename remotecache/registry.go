package remotecache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	goruntime "runtime"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/store"
)

// configField is the top-level field of a registry cache's config that
// holds the entries document.
const configField = "lading.cache.v1"

// ErrNotCache is returned (wrapped) when the manifest at a cache
// reference is not a lading cache; Export refuses to overwrite it.
var ErrNotCache = errors.New("not a lading cache")

// registrySource reads a registry cache.
type registrySource struct {
	entrySource
	ref  string
	repo name.Repository
	opts image.RemoteOptions
}

func openRegistrySource(ctx context.Context, ref string, opts image.RemoteOptions) (*registrySource, error) {
	r, err := parseRef(ref, opts)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", ref, err)
	}
	m, _, err := readRemote(ctx, r, opts)
	if err != nil {
		return nil, remoteError("reading cache", ref, r, err)
	}
	if m == nil {
		m = map[string]Entry{}
	}
	return &registrySource{entrySource: m, ref: ref, repo: r.Context(), opts: opts}, nil
}

func remoteError(op, ref string, r name.Reference, err error) error {
	return &image.RemoteError{Op: op, Ref: ref, Registry: r.Context().RegistryStr(), Err: err}
}

// readRemote reads the entries of the cache manifest at r and returns
// them with the manifest's digest; nil entries when there is no manifest.
func readRemote(ctx context.Context, r name.Reference, opts image.RemoteOptions) (map[string]Entry, v1.Hash, error) {
	desc, err := remote.Get(r, readOptions(ctx, opts)...)
	if notFound(err) {
		return nil, v1.Hash{}, nil
	}
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if desc.MediaType.IsIndex() {
		return nil, v1.Hash{}, fmt.Errorf("%w: an image index", ErrNotCache)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	// Bounded as for pulls: the registry sends no more than the manifest
	// claims, and the claim is checked before reading.
	man, err := img.Manifest()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if size := man.Config.Size; size < 0 || size > image.MaxConfigSize {
		return nil, v1.Hash{}, fmt.Errorf("%w: config %s claims %d bytes (limit %d)", image.ErrBadImage, man.Config.Digest, size, image.MaxConfigSize)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("reading config: %w", err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, v1.Hash{}, fmt.Errorf("%w: config: %w", ErrNotCache, err)
	}
	doc, ok := cfg[configField]
	if !ok {
		return nil, v1.Hash{}, fmt.Errorf("%w: config has no %s", ErrNotCache, configField)
	}
	m, err := decodeIndex(doc)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	return m, desc.Digest, nil
}

// FetchLayer downloads the blob from the cache's repository straight into
// the store, verified against d.Digest, retrying a body cut short.
func (s *registrySource) FetchLayer(ctx context.Context, st *store.Store, d cache.LayerDesc) error {
	if st.HasBlob(d.Digest) {
		return nil
	}
	h, err := v1.NewHash(d.Digest)
	if err != nil {
		return fmt.Errorf("fetching layer %s from cache %s: %w", d.Digest, s.ref, store.ErrInvalidDigest)
	}
	for attempt := 0; ; attempt++ {
		n, err := s.fetch(ctx, st, h)
		if err == nil {
			progress(s.opts, fmt.Sprintf("cache: fetched %s (%d bytes)", d.Digest, n))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("fetching layer %s from cache %s: %w", d.Digest, s.ref, ctx.Err())
		}
		if attempt >= retries(s.opts) || !transient(err) {
			err = &image.RemoteError{Op: "reading cache", Ref: s.ref, Registry: s.repo.RegistryStr(), Err: err}
			return fmt.Errorf("fetching layer %s: %w", d.Digest, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fetching layer %s from cache %s: %w", d.Digest, s.ref, ctx.Err())
		case <-time.After(time.Second << attempt):
		}
	}
}

func (s *registrySource) fetch(ctx context.Context, st *store.Store, h v1.Hash) (int64, error) {
	l, err := remote.Layer(s.repo.Digest(h.String()), readOptions(ctx, s.opts)...)
	if err != nil {
		return 0, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	w, err := st.NewBlobWriter()
	if err != nil {
		return 0, err
	}
	defer w.Close()
	if _, err := io.Copy(w, ctxReader{ctx, rc}); err != nil {
		return 0, err
	}
	_, n, err := w.Commit(h.String())
	return n, err
}

// transient reports whether err is worth a retry: the connection broke.
func transient(err error) bool {
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || (errors.As(err, &ne) && ne.Timeout())
}

// registrySink writes a registry cache.
type registrySink struct {
	ref  string
	r    name.Reference
	opts image.RemoteOptions
}

// Export reads the cache manifest at the reference (none is fine),
// merges entries into its entries and pushes the merged cache with
// image.Push: layer blobs the repository has are not uploaded, and
// nothing is pushed when the merge changes nothing or entries is empty.
// A manifest there that is not a lading cache is left alone
// (ErrNotCache). Two machines exporting to one reference at the same
// moment race: the last push wins.
func (s *registrySink) Export(ctx context.Context, st *store.Store, entries []Entry) error {
	if err := validateAll(entries); err != nil {
		return fmt.Errorf("exporting cache to %s: %w", s.ref, err)
	}
	for _, e := range entries {
		if e.Layer != nil && !st.HasBlob(e.Layer.Digest) {
			return fmt.Errorf("exporting cache to %s: layer %s of step %s: %w", s.ref, e.Layer.Digest, e.Key, store.ErrNotFound)
		}
	}
	if len(entries) == 0 {
		return nil
	}
	m, old, err := readRemote(ctx, s.r, s.opts)
	if err != nil {
		return fmt.Errorf("exporting cache: %w", remoteError("reading cache", s.ref, s.r, err))
	}
	if m == nil {
		m = map[string]Entry{}
	}
	merge(m, entries)
	img, err := cacheImage(st, m)
	if err != nil {
		return fmt.Errorf("exporting cache to %s: %w", s.ref, err)
	}
	dgst, err := img.Digest()
	if err != nil {
		return fmt.Errorf("exporting cache to %s: %w", s.ref, err)
	}
	if dgst == old {
		progress(s.opts, fmt.Sprintf("cache %s: up to date", s.ref))
		return nil
	}
	if _, err := image.Push(ctx, st, img, s.ref, s.opts); err != nil {
		return fmt.Errorf("exporting cache: %w", err)
	}
	return nil
}

// cacheImage returns the OCI image of a registry cache: one layer per
// distinct layer blob of the entries (store blobs as they are; blobs only
// the registry has as descriptors it must already hold), and a config
// that is a minimal image config plus the entries under configField.
func cacheImage(st *store.Store, m map[string]Entry) (v1.Image, error) {
	base, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), &v1.ConfigFile{
		Architecture: goruntime.GOARCH,
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	es := sorted(m)
	var adds []mutate.Addendum
	seen := map[string]bool{}
	for _, e := range es {
		if e.Layer == nil || seen[e.Layer.Digest] {
			continue
		}
		seen[e.Layer.Digest] = true
		l, err := cacheLayer(st, *e.Layer)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{
			Layer:     l,
			MediaType: types.MediaType(e.Layer.MediaType),
			History:   v1.History{Created: v1.Time{Time: e.Created}, CreatedBy: e.Step, Comment: "lading cache " + e.Key},
		})
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, err
	}
	return withEntries(img, es)
}

// cacheLayer returns the layer of d: the store blob, or when the store
// lacks it (an entry of the existing cache) a layer that only describes
// the blob the registry has.
func cacheLayer(st *store.Store, d cache.LayerDesc) (v1.Layer, error) {
	digest, err := v1.NewHash(d.Digest)
	if err != nil {
		return nil, err
	}
	diffID, err := v1.NewHash(d.DiffID)
	if err != nil {
		return nil, err
	}
	mt := types.MediaType(d.MediaType)
	if st.HasBlob(d.Digest) {
		return image.StoreLayer(st, digest, diffID, d.Size, mt), nil
	}
	return &remoteBlob{digest: digest, diffID: diffID, size: d.Size, mt: mt}, nil
}

// remoteBlob is a layer of the existing remote cache that the store does
// not have. Pushing checks that the registry has the blob before
// reading it, so its content is never needed.
type remoteBlob struct {
	digest, diffID v1.Hash
	size           int64
	mt             types.MediaType
}

var errRemoteOnly = errors.New("is in neither the store nor the registry")

func (l *remoteBlob) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *remoteBlob) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *remoteBlob) Size() (int64, error)                { return l.size, nil }
func (l *remoteBlob) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *remoteBlob) Compressed() (io.ReadCloser, error) {
	return nil, fmt.Errorf("layer %s %w", l.digest, errRemoteOnly)
}
func (l *remoteBlob) Uncompressed() (io.ReadCloser, error) {
	return nil, fmt.Errorf("layer %s %w", l.digest, errRemoteOnly)
}

// withEntries returns img with its config extended by the entries
// document under configField (the manifest's config descriptor follows).
func withEntries(img v1.Image, es []Entry) (v1.Image, error) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	doc, err := json.Marshal(index{Version: indexVersion, Entries: es})
	if err != nil {
		return nil, err
	}
	cfg[configField] = doc
	delete(cfg, "created") // the zero time; a cache has no creation time of its own
	if raw, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	m.Config.Digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	m.Config.Size = int64(len(raw))
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&cacheCore{rawConfig: raw, rawManifest: rawManifest, configDigest: m.Config.Digest, layers: layers})
}

// cacheCore is the minimal image partial.CompressedToImage completes.
type cacheCore struct {
	rawConfig, rawManifest []byte
	configDigest           v1.Hash
	layers                 []v1.Layer
}

func (c *cacheCore) RawConfigFile() ([]byte, error)      { return c.rawConfig, nil }
func (c *cacheCore) RawManifest() ([]byte, error)        { return c.rawManifest, nil }
func (c *cacheCore) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func (c *cacheCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == c.configDigest {
		return static.NewLayer(c.rawConfig, types.OCIConfigJSON), nil
	}
	for _, l := range c.layers {
		if d, err := l.Digest(); err == nil && d == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("layer %s: %w", h, store.ErrNotFound)
}
