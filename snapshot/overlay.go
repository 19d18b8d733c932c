package snapshot

import (
	"context"
	"fmt"
	"io"
	"strings"
)

type overlaySnapshotter struct {
	base
}

// NewOverlay returns the overlayfs Snapshotter keeping its state in dir.
// Prepare and Commit write only metadata; a snapshot's mounts stack the
// directories of its committed ancestors under its own upper directory.
// Use OverlaySupported first where dir may not support overlayfs.
func NewOverlay(dir string) (Snapshotter, error) {
	st, err := openStore(dir)
	if err != nil {
		return nil, err
	}
	if err := checkStoreDir(st.dir); err != nil {
		st.close()
		return nil, err
	}
	return &overlaySnapshotter{base{st}}, nil
}

func (o *overlaySnapshotter) Prepare(ctx context.Context, key, parent string) ([]Mount, error) {
	r, err := o.create(ctx, key, parent, kindActive)
	if err != nil {
		return nil, err
	}
	return o.mounts(r), nil
}

func (o *overlaySnapshotter) View(ctx context.Context, key, parent string) ([]Mount, error) {
	r, err := o.create(ctx, key, parent, kindView)
	if err != nil {
		return nil, err
	}
	return o.mounts(r), nil
}

func (o *overlaySnapshotter) Mounts(ctx context.Context, key string) ([]Mount, error) {
	r, err := o.lookup(key, kindActive, kindView)
	if err != nil {
		return nil, err
	}
	return o.mounts(r), nil
}

// mounts: a snapshot without ancestors is a bind mount of its own
// directory; a view of a single layer is a read-only bind mount of it
// (overlayfs wants two lower layers when there is no upper one).
func (o *overlaySnapshotter) mounts(r record) []Mount {
	lowers := o.lowerDirs(r)
	if r.Kind == kindView {
		switch len(lowers) {
		case 0:
			return []Mount{bindMount(o.st.fsDir(r.ID), true)}
		case 1:
			return []Mount{bindMount(lowers[0], true)}
		}
		opts := append([]string{"ro"}, overlayOptions("lowerdir="+strings.Join(lowers, ":"))...)
		return []Mount{{Type: "overlay", Source: "overlay", Options: opts}}
	}
	if len(lowers) == 0 {
		return []Mount{bindMount(o.st.fsDir(r.ID), false)}
	}
	opts := overlayOptions("lowerdir="+strings.Join(lowers, ":"),
		"upperdir="+o.st.fsDir(r.ID),
		"workdir="+o.st.workDir(r.ID))
	return []Mount{{Type: "overlay", Source: "overlay", Options: opts}}
}

// Diff walks only the snapshot's upper directory.
func (o *overlaySnapshotter) Diff(ctx context.Context, name string, w io.Writer, opts DiffOptions) error {
	r, err := o.lookup(name, kindCommitted)
	if err != nil {
		return err
	}
	if err := writeUpperDiff(ctx, o.st.fsDir(r.ID), len(r.Chain) > 0, w, opts); err != nil {
		return fmt.Errorf("diffing %q: %w", name, err)
	}
	return nil
}

// Apply writes into the upper directory directly, turning whiteouts into
// overlay whiteouts and opaque markers into the opaque xattr.
func (o *overlaySnapshotter) Apply(ctx context.Context, key string, rd io.Reader) error {
	r, err := o.lookup(key, kindActive)
	if err != nil {
		return err
	}
	if err := applyLayer(ctx, o.st.fsDir(r.ID), o.lowerDirs(r), rd, ApplyOptions{}); err != nil {
		return fmt.Errorf("applying layer to %q: %w", key, err)
	}
	return nil
}
