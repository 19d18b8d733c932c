package snapshot

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DirectWriter is implemented by snapshotters that can take writes of new
// paths straight into an active snapshot's own directory, without
// mounting it: writing many files through overlayfs costs a lookup in
// every lower layer per file, and writing them below costs none.
//
// Lifecycle: Prepare(key, parent); DirectDir(key, "/app/src"); if ok,
// write at and below root+"/app/src" only (nothing else may change);
// Commit. When not ok, mount the snapshot as usual.
type DirectWriter interface {
	// DirectDir returns a directory standing for the root of active
	// snapshot key, for writes at and below dir (absolute in the
	// snapshot). dir must not exist in the snapshot; the directories on
	// its path that do are made in root with their owner, mode, xattrs
	// and times, as a write through a mount would copy them up. ok is
	// false when dir exists, or a non-directory, a whiteout or an opaque
	// directory lies on its path.
	DirectDir(ctx context.Context, key, dir string) (root string, ok bool, err error)
	// CommittedDir returns the directory holding what committed snapshot
	// name changed over its parent, read-only to the caller.
	CommittedDir(ctx context.Context, name string) (string, error)
}

// LazyCommitter is implemented by snapshotters that can commit a snapshot
// before its files are durable, for a caller that makes them durable
// later, before anything durable refers to the snapshot (a build step's
// snapshot is committed on the step's path, and synced in the
// background before its cache record is written; a temporary one is
// never synced). A snapshot committed so and lost to a power failure is
// referenced by nothing and garbage collection removes it.
type LazyCommitter interface {
	// CommitUnsynced is Commit without making the files durable.
	CommitUnsynced(ctx context.Context, name, key string) error
	// Sync makes the files of every snapshot committed so far durable.
	Sync(ctx context.Context) error
}

// An OrphanRemover removes the snapshot directories that no valid record
// leads to: leftovers of a process killed while creating a snapshot, or
// of a power loss before unsynced metadata reached the disk. Run it only
// while nothing else uses the snapshotter. It returns how many it
// removed.
type OrphanRemover interface {
	RemoveOrphans(ctx context.Context) (int, error)
}

// DirectDir implements DirectWriter: the upper directory of a fresh
// active snapshot, with the existing ancestors of dir copied up.
func (o *overlaySnapshotter) DirectDir(ctx context.Context, key, dir string) (string, bool, error) {
	r, err := o.lookup(key, kindActive)
	if err != nil {
		return "", false, err
	}
	rel := strings.TrimPrefix(path.Clean("/"+dir), "/")
	if rel == "" {
		return "", false, nil
	}
	upper, lowers := o.st.fsDir(r.ID), o.lowerDirs(r)
	comps := strings.Split(rel, "/")
	var up []string // existing ancestors to copy up, outermost first
	for i := range comps {
		p := strings.Join(comps[:i+1], "/")
		st, where, err := mergedLookup(upper, lowers, p)
		if err != nil {
			return "", false, fmt.Errorf("looking up %s: %w", p, err)
		}
		if i == len(comps)-1 {
			if st != nil || deletedBelow(lowers, p) {
				return "", false, nil
			}
			break
		}
		if st == nil {
			if deletedBelow(lowers, p) {
				return "", false, nil // a mount would make it opaque
			}
			break // the rest of the path is new
		}
		if !isDir(st) || hasOpaque(where) || strings.HasPrefix(where, upper+"/") {
			return "", false, nil
		}
		up = append(up, p)
	}
	for _, p := range up {
		st, where, err := mergedLookup(upper, lowers, p)
		if err != nil {
			return "", false, err
		}
		dst := filepath.Join(upper, p)
		if err := unix.Mkdir(dst, 0o700); err != nil {
			return "", false, fmt.Errorf("copying up %s: %w", p, err)
		}
		if err := copyMeta(where, dst, st); err != nil {
			return "", false, fmt.Errorf("copying up %s: %w", p, err)
		}
	}
	return upper, true, nil
}

// deletedBelow reports whether a whiteout for rel lies in one of lowers.
func deletedBelow(lowers []string, rel string) bool {
	for _, l := range lowers {
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(l, rel), &st) == nil && isWhiteout(&st) {
			return true
		}
	}
	return false
}

// CommittedDir implements DirectWriter.
func (o *overlaySnapshotter) CommittedDir(ctx context.Context, name string) (string, error) {
	r, err := o.lookup(name, kindCommitted)
	if err != nil {
		return "", err
	}
	return o.st.fsDir(r.ID), nil
}

// LinkTree recreates the tree at src (inside a committed snapshot's
// directory) at dst (inside an active one's, not existing yet): its
// directories anew, with their owner, mode, xattrs and times, and every
// other entry as a hard link to the same inode. A committed snapshot's
// files are never written again (overlayfs copies a file up before any
// change), so the two snapshots can share them; making them costs no new
// inode and no data.
func LinkTree(ctx context.Context, src, dst string) error {
	type dir struct {
		from, to string
		st       *unix.Stat_t
	}
	var dirs []dir
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if !d.IsDir() {
			if err := unix.Linkat(unix.AT_FDCWD, p, unix.AT_FDCWD, to, 0); err != nil {
				return &os.PathError{Op: "link", Path: to, Err: err}
			}
			return nil
		}
		st, err := lstat(p)
		if err != nil {
			return err
		}
		if err := unix.Mkdir(to, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: to, Err: err}
		}
		dirs = append(dirs, dir{p, to, st})
		return nil
	})
	if err != nil {
		return err
	}
	// Deepest first, once their entries are in: times stay as they were.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := copyMeta(dirs[i].from, dirs[i].to, dirs[i].st); err != nil {
			return err
		}
	}
	return nil
}
