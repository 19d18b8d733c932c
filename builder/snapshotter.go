package builder

import (
	"fmt"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/gc"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

// Snapshotter names for Request.Snapshotter.
const (
	SnapshotterOverlay = "overlay"
	SnapshotterNative  = "native"
)

// OpenSnapshotter opens the named snapshotter under the store ("" means
// overlay), falling back from overlay to native copies where overlayfs
// cannot be mounted, and the build cache that goes with it: cache records
// name snapshots, so each snapshotter keeps its own cache. The
// directories are those of gc.Parts, which the collector walks.
func OpenSnapshotter(st *store.Store, kind string) (snapshot.Snapshotter, *cache.Cache, error) {
	if kind == "" {
		kind = SnapshotterOverlay
	}
	if kind != SnapshotterOverlay && kind != SnapshotterNative {
		return nil, nil, fmt.Errorf("snapshotter must be overlay or native, not %q", kind)
	}
	part := layoutPart(kind)
	if kind == SnapshotterOverlay && snapshot.OverlaySupported(st.Path(part.Snapshots)) != nil {
		part = layoutPart(SnapshotterNative)
	}
	open := snapshot.NewNative
	if part.Name == SnapshotterOverlay {
		open = snapshot.NewOverlay
	}
	sn, err := open(st.Path(part.Snapshots))
	if err != nil {
		return nil, nil, fmt.Errorf("opening snapshotter: %w", err)
	}
	c, err := cache.Open(st.Path(part.Cache))
	if err != nil {
		sn.Close()
		return nil, nil, fmt.Errorf("opening build cache: %w", err)
	}
	return sn, c, nil
}

// layoutPart is the directories of a snapshotter and its cache.
func layoutPart(name string) gc.Part {
	for _, p := range gc.Parts() {
		if p.Name == name {
			return p
		}
	}
	panic("builder: gc.Parts has no " + name + " snapshotter")
}
