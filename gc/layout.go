package gc

import (
	"errors"
	"io/fs"
	"os"
	"slices"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

// Part is one snapshotter's share of a root: its snapshot directory and
// the build cache whose records name its snapshots.
type Part struct {
	Name      string // "overlay" or "native"
	Snapshots string // directory under the root
	Cache     string // directory under the root
	open      func(dir string) (snapshot.Snapshotter, error)
}

// parts are the snapshotters a root can hold, each with its cache.
var parts = []Part{
	{Name: "overlay", Snapshots: "snapshots/overlay", Cache: "cache", open: snapshot.NewOverlay},
	{Name: "native", Snapshots: "snapshots/native", Cache: "cache-native", open: snapshot.NewNative},
}

// Parts returns the snapshotters a root can hold, each with its cache.
func Parts() []Part { return slices.Clone(parts) }

// opened is a Part of one root, opened: sn is nil when the root has no
// snapshots of this kind, c nil when it has no such cache.
type opened struct {
	Part
	sn snapshot.Snapshotter
	c  *cache.Cache
}

func (o *opened) close() {
	if o.sn != nil {
		o.sn.Close()
	}
}

// openParts opens the parts that exist under st, creating nothing new.
func openParts(st *store.Store) ([]*opened, error) {
	var out []*opened
	for _, p := range parts {
		o := &opened{Part: p}
		if exists(st.Path(p.Snapshots)) {
			sn, err := p.open(st.Path(p.Snapshots))
			if err != nil {
				closeAll(out)
				return nil, err
			}
			o.sn = sn
		}
		if exists(st.Path(p.Cache)) {
			c, err := cache.Open(st.Path(p.Cache))
			if err != nil {
				o.close()
				closeAll(out)
				return nil, err
			}
			o.c = c
		}
		out = append(out, o)
	}
	return out, nil
}

func closeAll(parts []*opened) {
	for _, o := range parts {
		o.close()
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, fs.ErrNotExist)
}
