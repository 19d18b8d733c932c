package builder

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

func hostPlatform() v1.Platform { return image.HostPlatform() }

// isScratch reports whether a stage starts from nothing.
func isScratch(st *parser.Stage) bool {
	return st.FromStage < 0 && strings.EqualFold(st.From, "scratch")
}

// scratchConfig is the config of stage st FROM scratch, for its platform.
func (b *build) scratchConfig(st *parser.Stage) *v1.ConfigFile {
	p := b.platformOf(st)
	return &v1.ConfigFile{
		OS:           p.OS,
		Architecture: p.Architecture,
		Variant:      p.Variant,
		// BuildKit's empty image has WorkingDir "/".
		Config: v1.Config{Env: []string{"PATH=" + defaultPath}, WorkingDir: "/"},
	}
}

// base resolves a stage's FROM: scratch, an earlier stage, an image
// archive or an image in the local store. It returns the starting state
// and the ONBUILD triggers of the base image or stage.
func (b *build) base(ctx context.Context, st *parser.Stage) (*stageResult, []string, error) {
	if st.FromStage >= 0 {
		parent, err := b.stage(ctx, st.FromStage)
		if err != nil {
			return nil, nil, err
		}
		// The ONBUILD triggers the parent stage declared run here, as in
		// BuildKit (testOnBuildInheritedStageRun), and are consumed.
		res := parent.clone()
		triggers := res.cfg.Config.OnBuild
		res.cfg.Config.OnBuild = nil
		return res, triggers, nil
	}
	if v, isImage, ok := b.namedContext(st.From); ok {
		if !isImage {
			return nil, nil, fmt.Errorf("build context %s is a directory; FROM needs an image (--build-context %s=docker-image://REF)", st.From, st.From)
		}
		img, err := b.resolveImage(ctx, v, b.platformOf(st))
		if err != nil {
			return nil, nil, err
		}
		return b.fromImage(ctx, st, img)
	}
	if isScratch(st) {
		return &stageResult{cfg: b.scratchConfig(st), base: "scratch"}, nil, nil
	}
	img, err := b.resolveImage(ctx, st.From, b.platformOf(st))
	if err != nil {
		return nil, nil, err
	}
	return b.fromImage(ctx, st, img)
}

// resolveImage finds an image by reference for platform p:
// "oci-archive:PATH", "docker-archive:PATH", or a name or digest in the
// local store, pulled from its registry as the pull policy says. From an
// index, the image for p is chosen; a stored single-platform image of
// another platform is pulled again for p unless --pull=never (and then
// used with a warning, see checkPlatform).
func (b *build) resolveImage(ctx context.Context, ref string, p v1.Platform) (v1.Image, error) {
	if strings.HasPrefix(ref, "oci-archive:") || strings.HasPrefix(ref, "docker-archive:") {
		return image.ImportArchiveFor(ctx, b.opts.Store, ref, p)
	}
	if _, dgst, ok := strings.Cut(ref, "@"); ok && b.opts.Pull != PullAlways {
		if img, err := image.ResolvePlatform(b.opts.Store, dgst, p); err == nil {
			return img, nil
		}
	}
	switch b.opts.Pull {
	case PullAlways:
		return b.pull(ctx, ref, p)
	case PullNever:
		img, err := image.ResolvePlatform(b.opts.Store, ref, p)
		if err != nil {
			return nil, fmt.Errorf("image %q is not in the local store (and --pull=never): %w", ref, err)
		}
		return img, nil
	}
	img, err := image.ResolvePlatform(b.opts.Store, ref, p)
	if err == nil && !imageIs(img, p) {
		// The stored image is for another platform: the registry may
		// have this one; if not, the stored one is used (with a warning).
		if pulled, perr := b.pull(ctx, ref, p); perr == nil {
			return pulled, nil
		}
	}
	if !errors.Is(err, store.ErrNotFound) {
		return img, err
	}
	img, err = b.pull(ctx, ref, p)
	if err != nil && !hasRegistryHost(ref) {
		// A short name may be a local image the user never built here;
		// docker reads it as a docker.io name, so say both.
		return nil, fmt.Errorf("not found in the local store (see `lading images`), and %w", err)
	}
	return img, err
}

// hasRegistryHost reports whether a reference names its registry
// ("registry.example/app", "localhost:5000/app"), as docker decides: the
// first path component has a dot or a port, or is localhost.
func hasRegistryHost(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	return ok && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// imageIs reports whether img's config says platform p.
func imageIs(img v1.Image, p v1.Platform) bool {
	cf, err := img.ConfigFile()
	if err != nil || cf.OS == "" {
		return true
	}
	return samePlatform(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}, p)
}

// pull fetches an image for platform p into the store; one pull per
// reference and platform at a time in this build (parallel stages often
// share a base).
func (b *build) pull(ctx context.Context, ref string, p v1.Platform) (v1.Image, error) {
	lockKey := ref + " " + platformString(p)
	unlock := b.pullLock(lockKey)
	defer unlock()
	if b.opts.Pull != PullAlways || b.pulled(lockKey) {
		if img, err := image.ResolvePlatform(b.opts.Store, ref, p); err == nil && imageIs(img, p) {
			return img, nil
		}
	}
	opts := b.opts.Remote
	if opts.Platform == nil {
		opts.Platform = &p
	}
	if opts.Progress == nil {
		opts.Progress = func(line string) { b.rep.Log("%s", line) }
	}
	img, err := image.Pull(ctx, b.opts.Store, ref, opts)
	if err != nil {
		return nil, err
	}
	b.markPulled(lockKey)
	return img, nil
}

// fromImage unpacks an image's layers into snapshots and returns the
// stage state on top of them.
func (b *build) fromImage(ctx context.Context, st *parser.Stage, img v1.Image) (*stageResult, []string, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("reading image config: %w", err)
	}
	b.checkPlatform(st, cf)
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, fmt.Errorf("reading image layers: %w", err)
	}
	snap, err := b.unpack(ctx, layers)
	if err != nil {
		return nil, nil, err
	}
	cfg := cf.DeepCopy()
	if len(cfg.Config.Env) == 0 {
		cfg.Config.Env = []string{"PATH=" + defaultPath}
	}
	triggers := cfg.Config.OnBuild
	cfg.Config.OnBuild = nil
	dgst, err := img.Digest()
	if err != nil {
		return nil, nil, fmt.Errorf("reading image digest: %w", err)
	}
	extra, err := image.ExtraOf(img)
	if err != nil {
		return nil, nil, err
	}
	res := &stageResult{cfg: cfg, extra: extra, layers: layers, history: cf.History, snap: snap, base: dgst.String(), stamp: cf.Created.Time}
	if nonEmpty(res.history) != len(layers) {
		// Keep history and layers consistent for images whose history
		// does not describe their layers (or is missing).
		res.history = nil
		for range layers {
			res.history = append(res.history, v1.History{Created: cf.Created})
		}
	}
	return res, triggers, nil
}

// unpack makes sure every layer of a chain has a committed snapshot,
// named by its chain ID so images sharing layers share snapshots, and
// returns the top one.
func (b *build) unpack(ctx context.Context, layers []v1.Layer) (string, error) {
	sn := b.opts.Snapshots
	parent := ""
	var chain string
	for _, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return "", fmt.Errorf("reading layer diff id: %w", err)
		}
		if chain == "" {
			chain = diffID.String()
		} else {
			chain = fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(chain+" "+diffID.String())))
		}
		name := "layer-" + strings.TrimPrefix(chain, "sha256:")
		if _, err := sn.Stat(ctx, name); err == nil {
			parent = name
			continue
		}
		if err := b.unpackLayer(ctx, l, name, parent); err != nil {
			return "", err
		}
		parent = name
	}
	return parent, nil
}

func (b *build) unpackLayer(ctx context.Context, l v1.Layer, name, parent string) (err error) {
	sn := b.opts.Snapshots
	key := b.newName("unpack")
	if _, err := sn.Prepare(ctx, key, parent); err != nil {
		return fmt.Errorf("preparing snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			_ = sn.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	if err := b.applyVerified(ctx, key, l); err != nil {
		return err
	}
	if err := sn.Commit(ctx, name, key); err != nil {
		if errors.Is(err, snapshot.ErrExists) {
			// Another build unpacked the same layer meanwhile.
			_ = sn.Remove(ctx, key)
			return nil
		}
		return fmt.Errorf("committing layer snapshot: %w", err)
	}
	return nil
}

// applyVerified applies a layer onto the active snapshot key, hashing what
// it applies: content that does not match the layer's diff ID fails
// (before anything is committed), so an image cannot claim another's
// layer and poison the snapshot that layer's chain ID names.
func (b *build) applyVerified(ctx context.Context, key string, l v1.Layer) error {
	want, err := l.DiffID()
	if err != nil {
		return fmt.Errorf("reading layer diff id: %w", err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("opening layer: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	tee := io.TeeReader(rc, h)
	if err := b.opts.Snapshots.Apply(ctx, key, tee); err != nil {
		return fmt.Errorf("unpacking layer: %w", err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return fmt.Errorf("reading layer: %w", err)
	}
	if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != want.String() {
		return fmt.Errorf("layer content %s does not match its diff id %s", got, want)
	}
	return nil
}
