package gc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

// Options say what Prune removes.
type Options struct {
	// KeepStorage keeps the most recently used cache records of each
	// snapshotter up to this size; negative: no size target.
	KeepStorage int64
	// Until limits pruning to records and cache mounts unused for longer
	// than this; zero: any age.
	Until time.Duration
	// Mounts also removes cache mounts (RUN --mount=type=cache).
	Mounts bool
	// MountIDs removes only the cache mounts with these ids, and no
	// cache record.
	MountIDs []string
	// All removes every cache record and every cache mount.
	All bool
	// Waiting, when not nil, is called once when Prune has to wait for
	// running builds, pulls or loads.
	Waiting func()
}

// Stats say what Prune removed.
type Stats struct {
	Records   int   // cache records
	Snapshots int   // snapshots of pruned records
	Swept     int   // snapshots no record used (base layers, leftovers)
	Content   int   // copy content entries whose snapshot is gone
	Mounts    int   // cache mounts
	Blobs     int   // blobs no name or record used
	Bytes     int64 // freed, as Usage counts it
}

// Prune removes build cache and everything nothing references any more,
// holding the store's collection lock exclusively (it waits for running
// builds, pulls, loads and imports to finish). See the package comment
// for the order.
func Prune(ctx context.Context, st *store.Store, o Options) (Stats, error) {
	release, err := st.Collect(ctx, o.Waiting)
	if err != nil {
		return Stats{}, fmt.Errorf("pruning: %w", err)
	}
	defer release()
	parts, err := openParts(st)
	if err != nil {
		return Stats{}, fmt.Errorf("pruning: %w", err)
	}
	defer closeAll(parts)

	var stats Stats
	var errs []error
	policy := cache.Policy{Keep: o.KeepStorage}
	if o.All {
		policy.Keep = -1
	}
	if o.Until > 0 {
		policy.Before = time.Now().Add(-o.Until)
	}
	var live []*cache.Record
	for _, p := range parts {
		recs, err := p.pruneRecords(ctx, policy, len(o.MountIDs) == 0, &stats)
		if err != nil {
			errs = append(errs, err)
		}
		live = append(live, recs...)
	}
	if o.Mounts || o.All || len(o.MountIDs) > 0 {
		if err := pruneMounts(ctx, st, o, policy.Before, &stats); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Without a complete list of live records, no blob is safe.
		return stats, errors.Join(errs...)
	}
	if err := collectBlobs(ctx, st, live, &stats); err != nil {
		return stats, err
	}
	// Blob temp files of killed writers: no writer runs now.
	freed, err := st.RemoveBlobTemps()
	stats.Bytes += freed
	return stats, err
}

// pruneRecords prunes the part's cache records (when records is set) and
// sweeps its unused snapshots; it returns the records that remain.
func (p *opened) pruneRecords(ctx context.Context, policy cache.Policy, records bool, stats *Stats) ([]*cache.Record, error) {
	if p.c != nil && records {
		// Without a snapshot directory, records name nothing: they go
		// with nothing else to remove.
		size := func(string) int64 { return 0 }
		remove := func(context.Context, string) error { return nil }
		if p.sn != nil {
			size = snapshotSize(ctx, p.sn)
			remove = func(ctx context.Context, name string) error {
				n := size(name)
				err := p.sn.Remove(ctx, name)
				if err == nil || errors.Is(err, snapshot.ErrNotFound) {
					stats.Bytes += n
					return nil
				}
				return err
			}
		}
		// Layer sizes are counted when collectBlobs deletes them.
		s, err := p.c.Prune(ctx, policy, size, remove)
		stats.Records += s.Records
		stats.Snapshots += s.Snapshots
		if err != nil {
			return nil, fmt.Errorf("pruning %s cache: %w", p.Name, err)
		}
	}
	var live []*cache.Record
	if p.c != nil {
		var err error
		if live, err = p.c.Records(); err != nil {
			return nil, fmt.Errorf("pruning %s cache: %w", p.Name, err)
		}
	}
	var left map[string]bool
	if p.sn != nil {
		var n int
		var freed int64
		var err error
		left, n, freed, err = sweepSnapshots(ctx, p.sn, live)
		stats.Swept += n
		stats.Bytes += freed
		if err != nil {
			return nil, fmt.Errorf("pruning %s snapshots: %w", p.Name, err)
		}
	}
	if p.c != nil {
		// A copy's content entry is worth keeping while its snapshot is.
		n, err := p.c.PruneContent(func(name string) bool { return left[name] })
		stats.Content += n
		if err != nil {
			return nil, fmt.Errorf("pruning %s cache: %w", p.Name, err)
		}
	}
	return live, nil
}

// sweepSnapshots removes every snapshot that no live cache record uses,
// directly or as an ancestor: leftovers of killed builds, base image
// layers no cached step builds on. Children go before their parents.
// Then directories no valid record leads to go (see
// snapshot.OrphanRemover). It returns the names of the snapshots left.
func sweepSnapshots(ctx context.Context, sn snapshot.Snapshotter, live []*cache.Record) (left map[string]bool, removed int, freed int64, err error) {
	var all []snapshot.Info
	if err := sn.Walk(ctx, func(i snapshot.Info) error { all = append(all, i); return nil }); err != nil {
		return nil, 0, 0, err
	}
	parent := map[string]string{}
	children := map[string]int{}
	for _, i := range all {
		parent[i.Name] = i.Parent
		if i.Parent != "" {
			children[i.Parent]++
		}
	}
	keep := map[string]bool{}
	for _, r := range live {
		for n := r.Snapshot; n != "" && !keep[n]; n = parent[n] {
			keep[n] = true
		}
	}
	size := snapshotSize(ctx, sn)
	left = map[string]bool{}
	for _, i := range all {
		left[i.Name] = true
	}
	for progress := true; progress; {
		progress = false
		for _, i := range all {
			if keep[i.Name] || children[i.Name] > 0 {
				continue
			}
			n := size(i.Name)
			if err := sn.Remove(ctx, i.Name); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
				return left, removed, freed, fmt.Errorf("removing snapshot %s: %w", i.Name, err)
			}
			keep[i.Name] = true // done with it
			delete(left, i.Name)
			if i.Parent != "" {
				children[i.Parent]--
			}
			removed++
			freed += n
			progress = true
		}
	}
	if o, ok := sn.(snapshot.OrphanRemover); ok {
		n, err := o.RemoveOrphans(ctx)
		removed += n
		if err != nil {
			return left, removed, freed, err
		}
	}
	return left, removed, freed, nil
}

func snapshotSize(ctx context.Context, sn snapshot.Snapshotter) func(string) int64 {
	return func(name string) int64 {
		n, err := sn.Usage(ctx, name)
		if err != nil {
			return 0
		}
		return n
	}
}

// pruneMounts removes the cache mounts o selects that were not used since
// before (zero: any).
func pruneMounts(ctx context.Context, st *store.Store, o Options, before time.Time, stats *Stats) error {
	mounts, err := st.CacheMounts()
	if err != nil {
		return fmt.Errorf("pruning cache mounts: %w", err)
	}
	for _, m := range mounts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(o.MountIDs) > 0 && !slices.Contains(o.MountIDs, m.ID) {
			continue
		}
		if !before.IsZero() && !m.LastUsed.Before(before) {
			continue
		}
		size, _ := dirSize(ctx, m.Dir)
		if err := os.RemoveAll(m.Dir); err != nil {
			return fmt.Errorf("removing cache mount %q: %w", m.ID, err)
		}
		stats.Mounts++
		stats.Bytes += size
	}
	return nil
}

// collectBlobs deletes the blobs that no named image and no live cache
// record uses.
func collectBlobs(ctx context.Context, st *store.Store, live []*cache.Record, stats *Stats) error {
	used, err := image.Referenced(st)
	if err != nil {
		return fmt.Errorf("collecting blobs: %w", err)
	}
	for _, r := range live {
		if r.Layer != nil {
			used[r.Layer.Digest] = true
		}
	}
	all, err := st.Blobs()
	if err != nil {
		return fmt.Errorf("collecting blobs: %w", err)
	}
	for _, d := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if used[d] {
			continue
		}
		size, _ := st.BlobSize(d)
		if err := st.DeleteBlob(d); err != nil {
			return fmt.Errorf("collecting blobs: %w", err)
		}
		stats.Blobs++
		stats.Bytes += size
	}
	return nil
}
