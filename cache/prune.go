package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// PruneStats says what Prune removed.
type PruneStats struct {
	Records   int   // records deleted
	Snapshots int   // snapshots removed
	Bytes     int64 // snapshot sizes plus sizes of layers no kept record uses
}

// Usage is what `lading du` shows.
type Usage struct {
	Records     int
	Snapshots   int          // distinct snapshots the records use
	Size        int64        // distinct snapshot sizes plus distinct layer sizes
	Reclaimable int64        // what Prune(ctx, Policy{Keep: -1}, ...) would free: all of Size, as no record is pinned
	Entries     []UsageEntry // most recently used first
}

// UsageEntry is one record in a du listing.
type UsageEntry struct {
	Key, Stage, Step string
	Size             int64 // its snapshot's size plus its layer's size
	LastUsed         time.Time
}

// Usage reports the cache's size, with sizeOf giving a snapshot's size on
// disk (e.g. DirSize of its directory). A snapshot or layer used by several
// records is counted once in the totals.
func (c *Cache) Usage(sizeOf func(snapshot string) int64) (Usage, error) {
	recs, err := c.Records()
	if err != nil {
		return Usage{}, err
	}
	a := newAccount(recs, sizeOf)
	u := Usage{Records: len(recs), Snapshots: len(a.snapRefs), Size: a.total, Reclaimable: a.total}
	sortLRU(recs)
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		u.Entries = append(u.Entries, UsageEntry{
			Key: r.Key, Stage: r.Stage, Step: r.Step,
			Size: a.snapSize(r.Snapshot) + layerSize(r), LastUsed: r.LastUsed,
		})
	}
	return u, nil
}

// account tracks which snapshots and layers the remaining records use.
type account struct {
	sizeOf    func(string) int64
	sizes     map[string]int64 // snapshot sizes, asked once
	snapRefs  map[string]int
	layerRefs map[string]int
	total     int64
}

func newAccount(recs []*Record, sizeOf func(string) int64) *account {
	a := &account{sizeOf: sizeOf, sizes: map[string]int64{}, snapRefs: map[string]int{}, layerRefs: map[string]int{}}
	for _, r := range recs {
		if r.Snapshot != "" {
			if a.snapRefs[r.Snapshot]++; a.snapRefs[r.Snapshot] == 1 {
				a.total += a.snapSize(r.Snapshot)
			}
		}
		if r.Layer != nil {
			if a.layerRefs[r.Layer.Digest]++; a.layerRefs[r.Layer.Digest] == 1 {
				a.total += r.Layer.Size
			}
		}
	}
	return a
}

func (a *account) snapSize(name string) int64 {
	if name == "" {
		return 0
	}
	if s, ok := a.sizes[name]; ok {
		return s
	}
	s := a.sizeOf(name)
	a.sizes[name] = s
	return s
}

// drop forgets r and reports whether its snapshot is now unused.
func (a *account) drop(r *Record) (snapUnused bool) {
	if r.Layer != nil {
		if a.layerRefs[r.Layer.Digest]--; a.layerRefs[r.Layer.Digest] == 0 {
			a.total -= r.Layer.Size
		}
	}
	if r.Snapshot == "" {
		return false
	}
	a.snapRefs[r.Snapshot]--
	return a.snapRefs[r.Snapshot] == 0
}

func layerSize(r *Record) int64 {
	if r.Layer == nil {
		return 0
	}
	return r.Layer.Size
}

// sortLRU sorts records least recently used first.
func sortLRU(recs []*Record) {
	slices.SortStableFunc(recs, func(a, b *Record) int {
		return cmp.Or(a.LastUsed.Compare(b.LastUsed), a.Created.Compare(b.Created), strings.Compare(a.Key, b.Key))
	})
}

// Policy says which records Prune removes.
type Policy struct {
	// Keep is the size (as Usage counts it) to prune the cache down to;
	// negative: no size target, every record Before allows goes.
	Keep int64
	// Before limits pruning to records last used before it; zero: any.
	Before time.Time
}

// Prune removes records, least recently used first, until the cache's
// size (as Usage counts it) is at most p.Keep, and only records last used
// before p.Before. Records whose parent is being removed go first (their
// snapshots are children of its snapshot). For each record it deletes the
// record file first and then, when no remaining record uses the snapshot,
// calls remove(snapshot) (Snapshotter.Remove; it should treat a missing
// snapshot as success), so a crash in between leaves an unreferenced
// snapshot, never a record without its snapshot. Layer blobs stay in the
// store for its garbage collector; their sizes count as freed once no
// record uses them.
//
// The caller holds the store's collection lock exclusively
// (store.Collect), which keeps every build away; package gc does. A
// failing remove is reported, and pruning goes on.
func (c *Cache) Prune(ctx context.Context, p Policy, sizeOf func(snapshot string) int64, remove func(ctx context.Context, snapshot string) error) (PruneStats, error) {
	recs, err := c.Records()
	if err != nil {
		return PruneStats{}, fmt.Errorf("pruning cache: %w", err)
	}
	a := newAccount(recs, sizeOf)
	sortLRU(recs)
	children := map[string][]*Record{}
	for _, r := range recs {
		if r.Parent != "" {
			children[r.Parent] = append(children[r.Parent], r)
		}
	}
	pr := &pruner{c: c, a: a, children: children, removed: map[string]bool{}, remove: remove}
	for _, r := range recs {
		if p.Keep >= 0 && a.total <= p.Keep {
			break
		}
		if !p.Before.IsZero() && !r.LastUsed.Before(p.Before) {
			break // sorted: all the rest are newer
		}
		if err := ctx.Err(); err != nil {
			return pr.stats, fmt.Errorf("pruning cache: %w", err)
		}
		if err := pr.removeTree(ctx, r); err != nil {
			return pr.stats, fmt.Errorf("pruning cache: %w", err)
		}
	}
	return pr.stats, errors.Join(pr.errs...)
}

type pruner struct {
	c        *Cache
	a        *account
	children map[string][]*Record
	removed  map[string]bool
	remove   func(context.Context, string) error
	stats    PruneStats
	errs     []error
}

// removeTree removes r's dependents (least recently used first), then r.
func (p *pruner) removeTree(ctx context.Context, r *Record) error {
	if p.removed[r.Key] {
		return nil
	}
	p.removed[r.Key] = true
	for _, child := range p.children[r.Key] {
		if err := p.removeTree(ctx, child); err != nil {
			return err
		}
	}
	return p.removeOne(ctx, r)
}

// removeOne deletes r's record file, then its snapshot when unused.
func (p *pruner) removeOne(ctx context.Context, r *Record) error {
	before := p.a.total
	if err := p.c.Delete(r.Key); err != nil {
		return err
	}
	p.stats.Records++
	if h, err := keyHex(r.Key); err == nil {
		if unlock, ok := tryLock(p.c.path("locks", h)); ok {
			_ = os.Remove(p.c.path("locks", h))
			unlock()
		}
	}
	if p.a.drop(r) {
		if err := p.remove(ctx, r.Snapshot); err != nil {
			p.errs = append(p.errs, fmt.Errorf("removing snapshot %s: %w", r.Snapshot, err))
		} else {
			p.stats.Snapshots++
			p.a.total -= p.a.snapSize(r.Snapshot)
		}
	}
	p.stats.Bytes += before - p.a.total
	return nil
}
