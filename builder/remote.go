package builder

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/remotecache"
	"github.com/lading-build/lading/store"
)

// remoteHit serves a local cache miss from a --cache-from source: the
// step's layer is fetched into the store and applied on the stage's
// snapshot, recorded locally, and the step counts as cached. Callers hold
// the key's lock.
func (s *stage) remoteHit(ctx context.Context, c *cache.Cache, kb *cache.KeyBuilder, key string) (v1.Layer, bool, error) {
	for _, src := range s.b.opts.CacheFrom {
		e, ok := src.Lookup(key)
		if !ok || e.Parent != s.key {
			continue
		}
		if e.Layer != nil {
			if err := src.FetchLayer(ctx, s.b.opts.Store, *e.Layer); err != nil {
				s.b.rep.Log("warning: remote cache layer for %s: %v", s.current, err)
				continue
			}
		}
		name := s.b.newName("c")
		if err := s.b.applyEntry(ctx, s.res.snap, name, e.Layer); err != nil {
			return nil, false, err
		}
		rec := &cache.Record{
			Key: key, Parent: s.key, Snapshot: name, Layer: e.Layer,
			Inputs: kb.Inputs(), Stage: s.name(), Step: s.current, Created: e.Created,
		}
		if err := c.Put(rec); err != nil {
			return nil, false, fmt.Errorf("recording cache: %w", err)
		}
		layer, ok := s.hit(ctx, c, key)
		if !ok {
			return nil, false, fmt.Errorf("remote cache entry for %s vanished", s.current)
		}
		return layer, true, nil
	}
	return nil, false, nil
}

// applyEntry makes the committed snapshot name: parent plus the layer (or
// nothing, for a step that changed nothing).
func (b *build) applyEntry(ctx context.Context, parent, name string, d *cache.LayerDesc) (err error) {
	sn := b.opts.Snapshots
	key := b.newName("apply")
	if _, err := sn.Prepare(ctx, key, parent); err != nil {
		return fmt.Errorf("preparing snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			_ = sn.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	if d != nil {
		l, err := storeLayer(b.opts.Store, d)
		if err != nil {
			return err
		}
		if err := b.applyVerified(ctx, key, l); err != nil {
			return fmt.Errorf("applying cached layer: %w", err)
		}
	}
	if err := sn.Commit(ctx, name, key); err != nil {
		return fmt.Errorf("committing snapshot: %w", err)
	}
	return nil
}

// cacheExport is a --cache-to destination: mode "min" exports the steps
// of the target stage (with the stages it is built FROM), "max" those of
// every stage built.
type cacheExport struct {
	sink remotecache.Sink
	mode string
}

// exportCache sends the cache entries of a build to every --cache-to.
func exportCache(ctx context.Context, st *store.Store, c *cache.Cache, res *Result, dests []cacheExport) error {
	for _, dest := range dests {
		keys := res.chains.target
		if dest.mode == remotecache.ModeMax {
			keys = res.chains.all
		}
		var entries []remotecache.Entry
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] {
				continue
			}
			seen[k] = true
			if rec, ok := c.Get(k); ok && !rec.Unwritten {
				entries = append(entries, remotecache.FromRecord(rec))
			}
		}
		if err := dest.sink.Export(ctx, st, entries); err != nil {
			return fmt.Errorf("exporting build cache: %w", err)
		}
	}
	return nil
}
