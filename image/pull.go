package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/lading-build/lading/store"
)

// Pull fetches the image ref names (name[:tag|@digest]; Docker Hub short
// names as docker reads them) from its registry into the store and tags
// it under CanonicalName(ref), e.g. "index.docker.io/library/debian:12"
// for "debian:12"; Resolve finds it by either name. An index is resolved
// to opts.Platform, and the name then points at that platform's image
// (also when ref is the index digest).
//
// Layers are downloaded opts.Jobs at a time straight into the store,
// each verified against its digest; blobs the store already has are not
// fetched. The config and the manifest are stored last and the name is
// tagged only then, so an error or a cancelled ctx leaves no name
// pointing at a partial image and no half-written blob (complete, verified
// blobs stay and are reused by the next pull).
//
// Errors are *RemoteError: "pulling debian:12 from index.docker.io:
// manifest unknown".
func Pull(ctx context.Context, s *store.Store, ref string, opts RemoteOptions) (v1.Image, error) {
	r, err := opts.parse(ref)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	// The blobs are unreferenced until the name is tagged: keep the
	// garbage collector away until then.
	release, err := s.Hold(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	img, err := pull(ctx, s, r, opts)
	if err != nil {
		return nil, &RemoteError{Op: "pulling", Ref: ref, Registry: r.Context().RegistryStr(), Err: err}
	}
	return img, nil
}

func pull(ctx context.Context, s *store.Store, r name.Reference, o RemoteOptions) (v1.Image, error) {
	desc, err := fetchDescriptor(ctx, r, o)
	if err != nil {
		return nil, err
	}
	want := o.platform()
	img, err := selectImage(desc, want)
	if err != nil {
		return nil, err
	}
	dgst, err := img.Digest()
	if err != nil {
		return nil, err
	}
	stored, err := Load(s, dgst.String())
	if err != nil {
		if stored, err = storeRemote(ctx, s, img, o); err != nil {
			return nil, err
		}
	} else {
		o.progress("%s: already present", short(dgst))
	}
	if err := s.Tag(r.Name(), dgst.String()); err != nil {
		return nil, err
	}
	o.progress("%s: %s", r.Name(), dgst)
	return stored, nil
}

// fetchDescriptor gets the manifest of r from the first of its mirrors
// that has it, else from its registry.
func fetchDescriptor(ctx context.Context, r name.Reference, o RemoteOptions) (*remote.Descriptor, error) {
	ropts := append(o.remoteOptions(ctx), remote.WithPlatform(o.platform()))
	for _, m := range o.mirrors(r.Context().RegistryStr()) {
		mr, err := mirrorRef(r, m, o)
		if err != nil {
			o.progress("mirror %s: %v", m, err)
			continue
		}
		desc, err := remote.Get(mr, ropts...)
		if err == nil {
			o.progress("using mirror %s", m)
			return desc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		o.progress("mirror %s: %s", m, describe(err))
	}
	return remote.Get(r, ropts...)
}

// mirrorRef is r with its registry replaced by the mirror host.
func mirrorRef(r name.Reference, mirror string, o RemoteOptions) (name.Reference, error) {
	sep := ":"
	if _, ok := r.(name.Digest); ok {
		sep = "@"
	}
	return o.parse(mirror + "/" + r.Context().RepositoryStr() + sep + r.Identifier())
}

// selectImage returns the image desc is, or for an index the image for
// the platform want (nested indexes followed up to a small depth).
func selectImage(desc *remote.Descriptor, want v1.Platform) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		return desc.Image()
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	for depth := 0; depth < 4; depth++ {
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		d, err := matchPlatform(im.Manifests, want)
		if err != nil {
			return nil, err
		}
		if !d.MediaType.IsIndex() {
			return idx.Image(d.Digest)
		}
		if idx, err = idx.ImageIndex(d.Digest); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("image indexes nested too deep")
}

// matchPlatform picks the manifest for want: same OS and architecture,
// the variant equal after normalization (arm64 means arm64/v8, arm means
// arm/v7), OS version and features satisfied. When want has no variant,
// an entry with the default variant wins over others.
func matchPlatform(ms []v1.Descriptor, want v1.Platform) (v1.Descriptor, error) {
	wantVariant := normVariant(want.Architecture, want.Variant)
	var fallback *v1.Descriptor
	var have []string
	for i, d := range ms {
		p := d.Platform
		if p == nil {
			if len(ms) == 1 {
				return d, nil
			}
			continue
		}
		have = append(have, p.String())
		spec := v1.Platform{OS: want.OS, Architecture: want.Architecture, OSVersion: want.OSVersion,
			OSFeatures: want.OSFeatures, Features: want.Features}
		if !p.Satisfies(spec) {
			continue
		}
		if normVariant(p.Architecture, p.Variant) == wantVariant {
			return d, nil
		}
		if want.Variant == "" && fallback == nil {
			fallback = &ms[i]
		}
	}
	if fallback != nil {
		return *fallback, nil
	}
	return v1.Descriptor{}, fmt.Errorf("no image for %s in the index (it has %s)", want.String(), strings.Join(have, ", "))
}

func normVariant(arch, variant string) string {
	if variant != "" {
		return variant
	}
	switch arch {
	case "arm64":
		return "v8"
	case "arm":
		return "v7"
	}
	return ""
}

// storeRemote downloads the layers of img concurrently into the store,
// then stores its config and manifest, and returns the stored image.
func storeRemote(ctx context.Context, s *store.Store, img v1.Image, o RemoteOptions) (v1.Image, error) {
	// ggcr fetched the manifest bounded and verified; check what it
	// claims before fetching anything it names.
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	if err := checkManifest(m); err != nil {
		return nil, err
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("fetching config: %w", err)
	}
	if _, err := parseConfig(rawCfg, m); err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.jobs())
	seen := map[v1.Hash]bool{}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		if s.HasBlob(d.String()) {
			o.progress("%s: already present", short(d))
			continue
		}
		g.Go(func() error { return fetchLayer(gctx, s, l, d, o) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	if err := putBytes(s, rawCfg, cfgName); err != nil {
		return nil, fmt.Errorf("storing config: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	dgst, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if err := putBytes(s, raw, dgst); err != nil {
		return nil, fmt.Errorf("storing manifest: %w", err)
	}
	return Load(s, dgst.String())
}

// fetchLayer downloads one layer blob into the store, retrying a body
// cut short by the network.
func fetchLayer(ctx context.Context, s *store.Store, l v1.Layer, d v1.Hash, o RemoteOptions) error {
	for attempt := 0; ; attempt++ {
		n, err := fetchBlob(ctx, s, l, d)
		if err == nil {
			o.progress("%s: fetched %s", short(d), humanBytes(n))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt >= o.retries() || !transient(err) {
			return fmt.Errorf("fetching layer %s: %w", d, err)
		}
		o.progress("%s: %s; retrying", short(d), describe(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff(attempt)):
		}
	}
}

// copyBufSize is the copy buffer of blob downloads: large writes keep the
// per-syscall cost low on fast links.
const copyBufSize = 1 << 20

func fetchBlob(ctx context.Context, s *store.Store, l v1.Layer, d v1.Hash) (int64, error) {
	rc, err := l.Compressed()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	w, err := s.NewBlobWriter()
	if err != nil {
		return 0, err
	}
	defer w.Close()
	if _, err := io.CopyBuffer(w, ctxReader{ctx, rc}, make([]byte, copyBufSize)); err != nil {
		return 0, err
	}
	_, n, err := w.Commit(d.String())
	return n, err
}

// transient reports whether err is worth a retry: the connection broke.
func transient(err error) bool {
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || (errors.As(err, &ne) && ne.Timeout())
}

// short abbreviates a digest for progress lines.
func short(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Algorithm + ":" + h.Hex[:12]
	}
	return h.String()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
