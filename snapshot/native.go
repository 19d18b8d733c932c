package snapshot

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

type nativeSnapshotter struct {
	base
}

// NewNative returns the plain-copy Snapshotter keeping its state in dir.
// Prepare copies the parent's tree (modes, owners, xattrs, hardlinks,
// symlinks, device nodes, mtimes); Diff compares a snapshot's tree with its
// parent's. It works on any filesystem, at the cost of a copy per snapshot.
func NewNative(dir string) (Snapshotter, error) {
	st, err := openStore(dir)
	if err != nil {
		return nil, err
	}
	return &nativeSnapshotter{base{st}}, nil
}

func (n *nativeSnapshotter) Prepare(ctx context.Context, key, parent string) (_ []Mount, err error) {
	r, err := n.create(ctx, key, parent, kindActive)
	if err != nil {
		return nil, err
	}
	if parent != "" {
		// The record pins the parent (Remove refuses it) while the
		// copy runs outside the lock.
		if err := copyTree(ctx, n.st.fsDir(r.Chain[0]), n.st.fsDir(r.ID)); err != nil {
			_ = n.Remove(context.WithoutCancel(ctx), key)
			return nil, fmt.Errorf("preparing %q: %w", key, err)
		}
		// Its ctime, from the filesystem's own clock, is later than
		// or equal to that of every file the copy made (see Diff).
		if err := os.WriteFile(n.copiedMarker(r.ID), nil, 0o600); err != nil {
			_ = n.Remove(context.WithoutCancel(ctx), key)
			return nil, fmt.Errorf("preparing %q: %w", key, err)
		}
	}
	return []Mount{bindMount(n.st.fsDir(r.ID), false)}, nil
}

// View bind-mounts the parent's directory read-only; nothing is copied.
func (n *nativeSnapshotter) View(ctx context.Context, key, parent string) ([]Mount, error) {
	r, err := n.create(ctx, key, parent, kindView)
	if err != nil {
		return nil, err
	}
	return n.mounts(r), nil
}

func (n *nativeSnapshotter) Mounts(ctx context.Context, key string) ([]Mount, error) {
	r, err := n.lookup(key, kindActive, kindView)
	if err != nil {
		return nil, err
	}
	return n.mounts(r), nil
}

func (n *nativeSnapshotter) mounts(r record) []Mount {
	if r.Kind == kindView {
		if len(r.Chain) > 0 {
			return []Mount{bindMount(n.st.fsDir(r.Chain[0]), true)}
		}
		return []Mount{bindMount(n.st.fsDir(r.ID), true)}
	}
	return []Mount{bindMount(n.st.fsDir(r.ID), false)}
}

// Diff compares the snapshot's tree with its parent's.
func (n *nativeSnapshotter) Diff(ctx context.Context, name string, w io.Writer, opts DiffOptions) error {
	r, err := n.lookup(name, kindCommitted)
	if err != nil {
		return err
	}
	lower := ""
	if len(r.Chain) > 0 {
		lower = n.st.fsDir(r.Chain[0])
	}
	if err := writeTreeDiff(ctx, n.st.fsDir(r.ID), lower, n.copiedAt(r.ID), w, opts); err != nil {
		return fmt.Errorf("diffing %q: %w", name, err)
	}
	return nil
}

// copiedMarker is the file Prepare creates once the parent's tree is
// copied.
func (n *nativeSnapshotter) copiedMarker(id string) string {
	return filepath.Join(n.st.snapshotDir(id), "copied")
}

// copiedAt returns the ctime of the copied marker; nil (compare every
// file's bytes) for snapshots made before there was one.
func (n *nativeSnapshotter) copiedAt(id string) *unix.Timespec {
	var st unix.Stat_t
	if err := unix.Stat(n.copiedMarker(id), &st); err != nil {
		return nil
	}
	return &st.Ctim
}

func (n *nativeSnapshotter) Apply(ctx context.Context, key string, rd io.Reader) error {
	r, err := n.lookup(key, kindActive)
	if err != nil {
		return err
	}
	if err := ApplyDir(ctx, n.st.fsDir(r.ID), rd, ApplyOptions{}); err != nil {
		return fmt.Errorf("applying layer to %q: %w", key, err)
	}
	return nil
}

// DiffDirs writes the OCI layer tar that turns the tree lower into the
// tree upper ("" for an empty tree): the same format as Diff, for two
// arbitrary directories such as two mounted views (used to squash a
// stage's layers into one).
func DiffDirs(ctx context.Context, lower, upper string, w io.Writer, opts DiffOptions) error {
	if err := writeTreeDiff(ctx, upper, lower, nil, w, opts); err != nil {
		return fmt.Errorf("diffing %s against %s: %w", upper, lower, err)
	}
	return nil
}

// IsNative reports whether sn is the plain-copy snapshotter.
func IsNative(sn Snapshotter) bool {
	_, ok := sn.(*nativeSnapshotter)
	return ok
}
