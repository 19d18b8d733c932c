package builder

import (
	"fmt"

	"github.com/lading-build/lading/cache"
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
// name snapshots, so each snapshotter keeps its own cache directory.
func OpenSnapshotter(st *store.Store, kind string) (snapshot.Snapshotter, *cache.Cache, error) {
	var sn snapshot.Snapshotter
	var err error
	switch kind {
	case SnapshotterOverlay, "":
		dir := st.Path("snapshots", "overlay")
		if snapshot.OverlaySupported(dir) == nil {
			sn, err = snapshot.NewOverlay(dir)
		} else {
			sn, err = snapshot.NewNative(st.Path("snapshots", "native"))
		}
	case SnapshotterNative:
		sn, err = snapshot.NewNative(st.Path("snapshots", "native"))
	default:
		return nil, nil, fmt.Errorf("snapshotter must be overlay or native, not %q", kind)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("opening snapshotter: %w", err)
	}
	c, err := cache.Open(st.Path(CacheDir(sn)))
	if err != nil {
		sn.Close()
		return nil, nil, fmt.Errorf("opening build cache: %w", err)
	}
	return sn, c, nil
}

// CacheDir is the directory, relative to the store root, of the build
// cache that goes with a snapshotter.
func CacheDir(sn snapshot.Snapshotter) string {
	if snapshot.IsNative(sn) {
		return "cache-native"
	}
	return "cache"
}
