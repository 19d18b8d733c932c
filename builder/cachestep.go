package builder

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/copier"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

// keyVersion changes whenever what goes into step keys changes, or the
// layers steps write, so old records stop matching instead of being
// trusted wrongly (or giving other digests than a cold build). v3: a
// COPY layer starts with the destination's entries.
const keyVersion = "lading-step-v3"

// cacheFor returns the cache the stage may use, nil when caching is off
// for it (--no-cache, or --no-cache-filter naming it).
func (b *build) cacheFor(s *stage) *cache.Cache {
	if b.opts.Cache == nil || b.opts.NoCache {
		return nil
	}
	for _, name := range b.opts.NoCacheFilter {
		if strings.EqualFold(name, s.st.Name) || name == fmt.Sprint(s.st.Index) {
			return nil
		}
	}
	return b.opts.Cache
}

// newKey starts the key of a filesystem step on top of the stage's
// current key. The first step on a base image or scratch has no parent
// key: the base's digest is one of its inputs, so a moved base is
// explained like any other changed input.
func (s *stage) newKey(kind string) *cache.KeyBuilder {
	kb := cache.NewKey(s.key).Add("version", keyVersion)
	if e := s.b.opts.Epoch; e != nil {
		// Layers written with SOURCE_DATE_EPOCH differ from others.
		kb.Add("epoch", fmt.Sprint(*e))
	}
	if s.key == "" {
		p := s.b.platformOf(s.st)
		kb.Add(cache.FieldBase, s.res.base).Add("platform", p.OS+"/"+p.Architecture+"/"+p.Variant)
	}
	return kb.Add(cache.FieldKind, kind)
}

// stageIdent identifies a stage's rootfs for the keys of steps that read
// it (COPY --from, RUN --mount from=): its cache key, or its base for a
// stage that has no filesystem step.
func stageIdent(r *stageResult) string {
	if r.key != "" {
		return "stage:" + r.key
	}
	return "base:" + r.base
}

// argList returns the stage's ARGs that have values, as K=V.
func (s *stage) argList() []string {
	var out []string
	for _, a := range s.args {
		if a.val != nil {
			out = append(out, a.key+"="+*a.val)
		}
	}
	return out
}

// cached runs a filesystem step through the cache: a hit reuses the
// committed snapshot and layer of an earlier run; a miss runs exec (which
// commits its snapshot under the given name) and records the result. kb
// nil marks a step whose inputs cannot be known in advance: it always
// runs, and the steps after it are keyed by the layer it made.
func (s *stage) cached(ctx context.Context, kb *cache.KeyBuilder, exec func(name string) (v1.Layer, error)) (v1.Layer, error) {
	c := s.b.cacheFor(s)
	if c == nil {
		s.b.warmRun(ctx)
		layer, err := exec("")
		if err != nil {
			return nil, err
		}
		s.stamp = s.b.now()
		if s.b.opts.Cache == nil || s.b.opts.NoCache {
			// No step of this build reads the key: the snapshot names
			// the rootfs without waiting for its layer.
			s.key = s.newKey("layer").Add("snapshot", s.res.snap).Sum()
			return layer, nil
		}
		if layer, err = settle(layer); err != nil {
			return nil, err
		}
		s.key = s.newKey("layer").Add("layer", layerID(layer)).Sum()
		return layer, nil
	}
	if kb == nil {
		s.b.warmRun(ctx)
		layer, err := exec(s.b.newName("c"))
		if err != nil {
			return nil, err
		}
		if layer, err = settle(layer); err != nil {
			return nil, err
		}
		s.record(ctx, c, s.newKey("layer").Add("layer", layerID(layer)), layer, nil)
		return layer, nil
	}
	key := kb.Sum()
	if layer, ok := s.hit(ctx, c, key); ok {
		return layer, nil
	}
	unlock, err := c.Lock(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("locking cache: %w", err)
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	// Another build may have run this step while we waited.
	if layer, ok := s.hit(ctx, c, key); ok {
		return layer, nil
	}
	if layer, ok, err := s.remoteHit(ctx, c, kb, key); err != nil || ok {
		return layer, err
	}
	if s.b.opts.ExplainCache && !s.explained {
		s.explained = true
		for _, line := range c.Explain(s.key, kb.Inputs()) {
			s.b.rep.Log("cache miss [%s] %s: %s", s.name(), s.current, line)
		}
	}
	s.b.warmRun(ctx)
	layer, err := exec(s.b.newName("c"))
	if err != nil {
		return nil, err
	}
	locked = false
	s.record(ctx, c, kb, layer, unlock)
	return layer, nil
}

// record moves the stage onto the result of a step that just ran and
// stores it in the cache once its layer is written and its snapshot
// durable, in the background; unlock (if any) releases the step's cache
// lock after that.
func (s *stage) record(ctx context.Context, c *cache.Cache, kb *cache.KeyBuilder, layer v1.Layer, unlock func() error) {
	rec := &cache.Record{
		Key:      kb.Sum(),
		Parent:   s.key,
		Snapshot: s.res.snap,
		Inputs:   kb.Inputs(),
		Stage:    s.name(),
		Step:     s.current,
		Created:  s.b.now(),
	}
	content := s.content
	p, _ := layer.(*pendingLayer)
	if p != nil {
		rec.Split = p.spec.split
	}
	s.key, s.stamp = rec.Key, rec.Created
	s.res.chain = append(s.res.chain, rec.Key)
	s.b.background(func() error {
		if unlock != nil {
			defer unlock()
		}
		if lc, ok := s.b.opts.Snapshots.(snapshot.LazyCommitter); ok {
			// The step's snapshot was committed unsynced (fsStepAt).
			if err := lc.Sync(ctx); err != nil {
				return fmt.Errorf("recording cache: %w", err)
			}
		}
		if p != nil && !p.eager {
			// Nothing needs the blob: a build that does diffs the snapshot.
			rec.Unwritten = true
		} else {
			l, err := settle(layer)
			if err != nil {
				return err
			}
			if l != nil {
				if rec.Layer, err = describe(l); err != nil {
					return err
				}
			}
		}
		if err := c.Put(rec); err != nil {
			return fmt.Errorf("recording cache: %w", err)
		}
		if content != "" {
			var part *cache.ContentPart
			if p != nil && !rec.Unwritten {
				part = p.part
			}
			return c.PutContent(content, rec.Snapshot, part)
		}
		return nil
	})
}

// hit looks key up and, when its snapshot and layer are still there,
// moves the stage onto them.
func (s *stage) hit(ctx context.Context, c *cache.Cache, key string) (v1.Layer, bool) {
	rec, ok := c.Get(key)
	if !ok {
		return nil, false
	}
	if _, err := s.b.opts.Snapshots.Stat(ctx, rec.Snapshot); err != nil {
		_ = c.Delete(key)
		return nil, false
	}
	var layer v1.Layer
	if rec.Unwritten {
		layer = s.b.layerLater(ctx, rec.Snapshot, s.b.layerNeeded(s), layerSpec{split: rec.Split}, func(l v1.Layer) error {
			// Written now: later hits reuse the blob.
			done := *rec
			done.Unwritten, done.Layer = false, nil
			if l != nil {
				d, err := describe(l)
				if err != nil {
					return err
				}
				done.Layer = d
			}
			if err := c.Put(&done); err != nil {
				return fmt.Errorf("recording cache: %w", err)
			}
			return nil
		})
	} else if rec.Layer != nil {
		l, err := storeLayer(s.b.opts.Store, rec.Layer)
		if err != nil {
			_ = c.Delete(key)
			return nil, false
		}
		layer = l
	}
	s.res.snap = rec.Snapshot
	s.key, s.stamp = key, rec.Created
	s.res.chain = append(s.res.chain, key)
	s.hitNow = true
	return layer, true
}

// storeLayer is the store-backed layer a cache record describes; an error
// when the blob is gone, torn (not the size the record says) or the
// record is malformed. A blob whose bytes went bad is found when it
// leaves the store (store.OpenVerified), which removes it.
func storeLayer(st *store.Store, d *cache.LayerDesc) (v1.Layer, error) {
	if n, err := st.BlobSize(d.Digest); err != nil || n != d.Size {
		return nil, fmt.Errorf("layer %s is not whole in the store", d.Digest)
	}
	digest, err := v1.NewHash(d.Digest)
	if err != nil {
		return nil, err
	}
	diffID, err := v1.NewHash(d.DiffID)
	if err != nil {
		return nil, err
	}
	return image.StoreLayer(st, digest, diffID, d.Size, types.MediaType(d.MediaType)), nil
}

func describe(l v1.Layer) (*cache.LayerDesc, error) {
	digest, err := l.Digest()
	if err != nil {
		return nil, err
	}
	diffID, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	size, err := l.Size()
	if err != nil {
		return nil, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return nil, err
	}
	return &cache.LayerDesc{Digest: digest.String(), DiffID: diffID.String(), Size: size, MediaType: string(mt)}, nil
}

func layerID(l v1.Layer) string {
	if l == nil {
		return "empty"
	}
	d, err := l.DiffID()
	if err != nil {
		return "unknown"
	}
	return d.String()
}

// copyText is the canonical form of an expanded COPY/ADD.
func copyText(kind string, req copier.Request) string {
	unpack := "default"
	if req.Unpack != nil {
		unpack = fmt.Sprint(*req.Unpack)
	}
	return fmt.Sprintf("%s sources=%q dest=%q workdir=%q chown=%q chmod=%q checksum=%q exclude=%q parents=%v unpack=%s keep-git-dir=%v",
		kind, req.Sources, req.Dest, req.Workdir, req.Chown, req.Chmod, req.Checksum, req.Exclude, req.Parents, unpack, req.KeepGitDir)
}

// copyKey keys a COPY/ADD from the build context by the digests of the
// files it selects; nil (uncacheable) for an ADD of a URL without a
// checksum.
func (s *stage) copyKey(ctx context.Context, kind string, req *copier.Request) (*cache.KeyBuilder, []cache.FileDigest, error) {
	if s.b.cacheFor(s) == nil {
		return nil, nil, nil
	}
	text := copyText(kind, *req)
	if localOnly(*req) {
		digests, err := s.b.selected(ctx, *req)
		if err != nil {
			return nil, nil, err
		}
		return s.newKey(kind).Add(cache.FieldInstruction, text).AddFiles(cache.FieldFiles, digests), digests, nil
	}
	sources, err := copier.Select(*req)
	if err != nil {
		return nil, nil, err
	}
	var remote []string
	for _, src := range sources {
		if src.Git {
			// Keyed by the commit the ref names now.
			sha, err := copier.GitCommit(ctx, src.URL, "", req.HostNetwork)
			if err != nil {
				return nil, nil, nil
			}
			remote = append(remote, src.URL+"@"+sha)
			if req.Checksum == "" && len(sources) == 1 {
				// Clone exactly the commit the key names, even if the
				// branch moves meanwhile.
				req.Checksum = sha
			}
			continue
		}
		if src.URL != "" && req.Checksum == "" {
			return nil, nil, nil
		}
	}
	digests, err := s.b.digestSources(ctx, sources)
	if err != nil {
		return nil, nil, err
	}
	kb := s.newKey(kind).Add(cache.FieldInstruction, text).AddFiles(cache.FieldFiles, digests)
	for _, r := range remote {
		kb.Add("git", r)
	}
	// With remote sources (only ADD's) the digests are not the whole
	// input, but contentKey never keys an ADD.
	return kb, digests, nil
}

// contentKey keys what a COPY from the context writes, without the
// parent: "" unless the copy takes the fast path (copyTarget), whose
// output does not depend on what lies below it.
func (s *stage) contentKey(kind string, req copier.Request, digests []cache.FileDigest) string {
	target := copyTarget(req)
	if target == "" || digests == nil || s.b.cacheFor(s) == nil {
		return ""
	}
	if _, ok := s.b.opts.Snapshots.(snapshot.DirectWriter); !ok {
		return ""
	}
	return cache.NewKey("").Add("version", keyVersion).Add("content", "copy-output").
		Add(cache.FieldInstruction, copyText(kind, req)).Add("target", target).
		AddFiles(cache.FieldFiles, digests).Sum()
}
