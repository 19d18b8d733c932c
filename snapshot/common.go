package snapshot

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// base holds what both snapshotters share: the metadata store and the
// methods that only touch metadata.
type base struct {
	st *store
}

func (b *base) Stat(ctx context.Context, key string) (Info, error) {
	var r record
	err := b.st.locked(func() (err error) {
		r, err = b.st.get(key)
		return err
	})
	if err != nil {
		return Info{}, err
	}
	return r.info(), nil
}

// Commit makes the active snapshot's files durable (syncfs of the
// filesystem holding them), then records it as committed, so a power
// loss never leaves a committed snapshot (and the cache record the
// builder writes after it) over files the kernel had not written yet.
func (b *base) Commit(ctx context.Context, name, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := b.lookup(key, kindActive)
	if err != nil {
		return err
	}
	if err := syncFS(b.st.snapshotDir(r.ID)); err != nil {
		return fmt.Errorf("committing %q: %w", key, err)
	}
	return b.st.locked(func() error { return b.st.commit(name, key, true) })
}

// CommitUnsynced implements LazyCommitter.
func (b *base) CommitUnsynced(ctx context.Context, name, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.st.locked(func() error { return b.st.commit(name, key, false) })
}

// Sync implements LazyCommitter.
func (b *base) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return syncFS(filepath.Join(b.st.dir, "snapshots"))
}

// syncFS writes the dirty data of the filesystem holding dir to disk.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

func (b *base) Remove(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var trash string
	err := b.st.locked(func() (err error) {
		trash, err = b.st.remove(key)
		return err
	})
	if trash != "" {
		if rmErr := os.RemoveAll(trash); rmErr != nil && err == nil {
			err = fmt.Errorf("removing %q data: %w", key, rmErr)
		}
	}
	return err
}

func (b *base) Close() error { return b.st.close() }

// create makes a new record under the lock.
func (b *base) create(ctx context.Context, key, parent, kind string) (record, error) {
	if err := ctx.Err(); err != nil {
		return record{}, err
	}
	var r record
	err := b.st.locked(func() (err error) {
		r, err = b.st.create(key, parent, kind)
		return err
	})
	return r, err
}

// lookup returns the record of key and checks its kind is one of kinds
// (any kind when none is given).
func (b *base) lookup(key string, kinds ...string) (record, error) {
	var r record
	err := b.st.locked(func() (err error) {
		r, err = b.st.get(key)
		return err
	})
	if err != nil {
		return r, err
	}
	if len(kinds) == 0 {
		return r, nil
	}
	for _, k := range kinds {
		if r.Kind == k {
			return r, nil
		}
	}
	return r, fmt.Errorf("snapshot %q is %s: %w", key, r.Kind, ErrWrongKind)
}

// lowerDirs returns the fs directories of r's committed ancestors, parent
// first.
func (b *base) lowerDirs(r record) []string {
	dirs := make([]string, len(r.Chain))
	for i, id := range r.Chain {
		dirs[i] = b.st.fsDir(id)
	}
	return dirs
}

func bindMount(dir string, ro bool) Mount {
	opt := "rw"
	if ro {
		opt = "ro"
	}
	return Mount{Type: "bind", Source: dir, Options: []string{"rbind", opt}}
}

// Usage returns the allocated size of the snapshot's own directory,
// counting hard links once.
func (b *base) Usage(ctx context.Context, key string) (int64, error) {
	r, err := b.lookup(key)
	if err != nil {
		return 0, err
	}
	seen := map[[2]uint64]bool{}
	var total int64
	err = filepath.WalkDir(b.st.fsDir(r.ID), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // racing removals: count what is there
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Nlink > 1 {
			id := [2]uint64{st.Dev, st.Ino}
			if seen[id] {
				return nil
			}
			seen[id] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total, err
}

// Walk lists every snapshot whose name still leads to its record.
func (b *base) Walk(ctx context.Context, fn func(Info) error) error {
	recs, err := b.records()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r.info()); err != nil {
			return err
		}
	}
	return nil
}

// records returns the record of every snapshot whose name still leads to
// it.
func (b *base) records() ([]record, error) {
	var recs []record
	err := b.st.locked(func() error {
		entries, err := os.ReadDir(filepath.Join(b.st.dir, "snapshots"))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if r, ok := b.st.valid(e.Name()); ok {
				recs = append(recs, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	return recs, nil
}

// RemoveOrphans implements OrphanRemover.
func (b *base) RemoveOrphans(ctx context.Context) (int, error) {
	var trash []string
	err := b.st.locked(func() error {
		entries, err := os.ReadDir(filepath.Join(b.st.dir, "snapshots"))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			// Under the lock nothing is half created or removed: a
			// directory no record and index lead to is a leftover.
			if _, ok := b.st.valid(e.Name()); ok {
				continue
			}
			t := filepath.Join(b.st.dir, "trash", e.Name())
			if err := os.Rename(b.st.snapshotDir(e.Name()), t); err != nil {
				return err
			}
			trash = append(trash, t)
		}
		return nil
	})
	for _, t := range trash {
		if rmErr := os.RemoveAll(t); rmErr != nil && err == nil {
			err = rmErr
		}
	}
	if err != nil {
		return len(trash), fmt.Errorf("removing orphan snapshots: %w", err)
	}
	return len(trash), nil
}

// Dirs returns, for each snapshot of sn (by name or key, as Walk lists
// them), the directory that holds all of its data and metadata, for disk
// usage reports. It returns nil for Snapshotters of other packages.
func Dirs(sn Snapshotter) (map[string]string, error) {
	if b, ok := sn.(dirser); ok {
		return b.dirs()
	}
	return nil, nil
}

// dirser is implemented by the Snapshotters of this package.
type dirser interface {
	dirs() (map[string]string, error)
}

func (b *base) dirs() (map[string]string, error) {
	recs, err := b.records()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(recs))
	for _, r := range recs {
		out[r.Name] = b.st.snapshotDir(r.ID)
	}
	return out, nil
}
