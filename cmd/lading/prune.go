package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

func newPruneCmd() *cobra.Command {
	var keep string
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove build cache, least recently used first, and unreferenced blobs",
		Long: `Remove build cache records and their snapshots, least recently used first
(all of them, or until the cache fits in --keep-storage), then every blob that
neither a named image nor a remaining cache record uses.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			limit := int64(-1)
			if keep != "" {
				n, err := parseSize(keep)
				if err != nil {
					return fmt.Errorf("--keep-storage: %w", err)
				}
				limit = n
			}
			st, c, snaps, err := openCache(cmd)
			if err != nil {
				return err
			}
			defer snaps.Close()
			var freedBlobs int64
			var deleted, swept int
			stats, err := c.PruneAndCollect(cmd.Context(), limit, snapshotSize(cmd.Context(), snaps), snaps.Remove,
				func(live []*cache.Record) error {
					var err error
					if swept, err = sweepSnapshots(cmd.Context(), snaps, live); err != nil {
						return err
					}
					n, bytes, err := collectBlobs(st, live)
					deleted, freedBlobs = n, bytes
					return err
				})
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d cache records, %d snapshots (and %d no record used), %d blobs; freed %s\n",
				stats.Records, stats.Snapshots, swept, deleted, humanSize(stats.Bytes+freedBlobs))
			return err
		},
	}
	cmd.Flags().StringVar(&keep, "keep-storage", "", "keep the most recently used cache up to this size (e.g. 5g)")
	return cmd
}

// sweepSnapshots removes every snapshot that no remaining cache record
// uses, directly or as an ancestor: leftovers of killed builds, base image
// layers no cached step builds on. It runs while prune keeps builds out,
// children before parents.
func sweepSnapshots(ctx context.Context, sn snapshot.Snapshotter, live []*cache.Record) (int, error) {
	var all []snapshot.Info
	if err := sn.Walk(ctx, func(i snapshot.Info) error { all = append(all, i); return nil }); err != nil {
		return 0, err
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
	removed := 0
	for progress := true; progress; {
		progress = false
		for _, i := range all {
			if keep[i.Name] || children[i.Name] > 0 {
				continue
			}
			if err := sn.Remove(ctx, i.Name); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
				return removed, fmt.Errorf("removing snapshot %s: %w", i.Name, err)
			}
			keep[i.Name] = true // done with it
			if i.Parent != "" {
				children[i.Parent]--
			}
			removed++
			progress = true
		}
	}
	return removed, nil
}

// collectBlobs deletes the blobs that no named image and no live cache
// record uses.
func collectBlobs(st *store.Store, live []*cache.Record) (int, int64, error) {
	used, err := image.Referenced(st)
	if err != nil {
		return 0, 0, err
	}
	for _, r := range live {
		if r.Layer != nil {
			used[r.Layer.Digest] = true
		}
	}
	all, err := st.Blobs()
	if err != nil {
		return 0, 0, err
	}
	var n int
	var freed int64
	for _, d := range all {
		if used[d] {
			continue
		}
		size, _ := st.BlobSize(d)
		if err := st.DeleteBlob(d); err != nil {
			return n, freed, err
		}
		n++
		freed += size
	}
	return n, freed, nil
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

// openCache opens the store, its cache and its snapshotter.
func openCache(cmd *cobra.Command) (*store.Store, *cache.Cache, snapshot.Snapshotter, error) {
	st, err := openStore(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	sn, err := openSnapshotter(st, "overlay")
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := cache.Open(st.Path(cacheDirName(sn)))
	if err != nil {
		sn.Close()
		return nil, nil, nil, fmt.Errorf("opening build cache: %w", err)
	}
	return st, c, sn, nil
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
