package gc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

// Usage categories, in the order DiskUsage reports them.
const (
	Blobs           = "blobs"
	BaseSnapshots   = "base snapshots"   // unpacked layers of FROM images
	StepSnapshots   = "step snapshots"   // committed results of build steps
	ActiveSnapshots = "active snapshots" // of running (or killed) builds
	CacheRecords    = "cache records"
	CacheMounts     = "cache mounts"
	Other           = "other" // names, locks, temp files, snapshot metadata
)

var categories = []string{Blobs, BaseSnapshots, StepSnapshots, ActiveSnapshots, CacheRecords, CacheMounts, Other}

// Category is one line of a disk usage report.
type Category struct {
	Name  string
	Count int   // blobs, snapshots, records or mounts; 0 for Other
	Size  int64 // apparent bytes, as du -sb counts them
}

// Usage is what `lading du` shows.
type Usage struct {
	Categories []Category
	// Total is the size of the whole root: the sum of the categories,
	// every file and directory once (hardlinks once), like du -sb.
	Total int64
	// Reclaimable is what Prune with default options would free: every
	// snapshot, the cache records, and the blobs no named image uses.
	Reclaimable int64
	// Records lists every cache record, most recently used first.
	Records []cache.UsageEntry
}

// DiskUsage measures the root of st in one walk, attributing each file to
// the category of the nearest directory that claims it.
func DiskUsage(ctx context.Context, st *store.Store) (Usage, error) {
	parts, err := openParts(st)
	if err != nil {
		return Usage{}, fmt.Errorf("measuring disk usage: %w", err)
	}
	defer closeAll(parts)
	claims := map[string]string{st.Path("blobs"): Blobs, st.Path("cache-mounts"): CacheMounts}
	counts := map[string]int{}
	var u Usage
	for _, p := range parts {
		claims[st.Path(p.Cache)] = CacheRecords
		if err := p.claimSnapshots(ctx, claims, counts); err != nil {
			return Usage{}, err
		}
		switch {
		case p.c == nil:
		case p.sn == nil:
			recs, err := p.c.Records()
			if err != nil {
				return Usage{}, err
			}
			counts[CacheRecords] += len(recs)
		default:
			// Usage lists the records itself: count them from it.
			cu, err := p.c.Usage(snapshotSize(ctx, p.sn))
			if err != nil {
				return Usage{}, err
			}
			counts[CacheRecords] += cu.Records
			u.Records = append(u.Records, cu.Entries...)
		}
	}
	sort.SliceStable(u.Records, func(i, j int) bool { return u.Records[i].LastUsed.After(u.Records[j].LastUsed) })
	blobs, err := st.Blobs()
	if err != nil {
		return Usage{}, err
	}
	counts[Blobs] = len(blobs)
	mounts, err := st.CacheMounts()
	if err != nil {
		return Usage{}, err
	}
	counts[CacheMounts] = len(mounts)

	w := newWalker(ctx, claims)
	if err := w.walk(st.Root(), Other, 0); err != nil {
		return Usage{}, fmt.Errorf("measuring disk usage: %w", err)
	}
	for _, c := range categories {
		u.Categories = append(u.Categories, Category{Name: c, Count: counts[c], Size: w.sizes[c]})
		u.Total += w.sizes[c]
	}
	u.Reclaimable = w.sizes[BaseSnapshots] + w.sizes[StepSnapshots] + w.sizes[ActiveSnapshots]
	if counts[CacheRecords] > 0 {
		// Without records, what is left there is the cache's skeleton.
		u.Reclaimable += w.sizes[CacheRecords]
	}
	used, err := image.Referenced(st)
	if err != nil {
		return Usage{}, err
	}
	for _, d := range blobs {
		if !used[d] {
			n, _ := st.BlobSize(d)
			u.Reclaimable += n
		}
	}
	return u, nil
}

// claimSnapshots claims each snapshot's directory for its category.
func (p *opened) claimSnapshots(ctx context.Context, claims map[string]string, counts map[string]int) error {
	if p.sn == nil {
		return nil
	}
	dirs, err := snapshot.Dirs(p.sn)
	if err != nil {
		return err
	}
	return p.sn.Walk(ctx, func(i snapshot.Info) error {
		cat := StepSnapshots
		switch {
		case i.Kind != snapshot.KindCommitted:
			cat = ActiveSnapshots
		case strings.HasPrefix(i.Name, "layer-"):
			cat = BaseSnapshots
		}
		if d, ok := dirs[i.Name]; ok {
			claims[d] = cat
			counts[cat]++
		}
		return nil
	})
}

// walker sums apparent sizes by category: each file and directory once,
// a hardlinked inode once (as du does). It does not descend into other
// filesystems: a running build's rootfs mounted under tmp/ would count
// its snapshot twice.
type walker struct {
	ctx    context.Context
	claims map[string]string
	sizes  map[string]int64
	seen   map[[2]uint64]bool
}

func newWalker(ctx context.Context, claims map[string]string) *walker {
	return &walker{ctx: ctx, claims: claims, sizes: map[string]int64{}, seen: map[[2]uint64]bool{}}
}

// walk counts path and what is below it; dev is the device of its parent
// directory (0 for the starting point).
func (w *walker) walk(path, cat string, dev uint64) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if c, ok := w.claims[path]; ok {
		cat = c
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if dev != 0 && st.Dev != dev {
		return nil // a mount point
	}
	isDir := st.Mode&syscall.S_IFMT == syscall.S_IFDIR
	if !isDir && st.Nlink > 1 {
		id := [2]uint64{st.Dev, st.Ino}
		if w.seen[id] {
			return nil
		}
		w.seen[id] = true
	}
	w.sizes[cat] += st.Size
	if !isDir {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := w.walk(filepath.Join(path, n), cat, st.Dev); err != nil {
			return err
		}
	}
	return nil
}

// dirSize is the apparent size of everything under dir.
func dirSize(ctx context.Context, dir string) (int64, error) {
	w := newWalker(ctx, nil)
	err := w.walk(dir, Other, 0)
	return w.sizes[Other], err
}
