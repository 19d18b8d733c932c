package builder

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/lading-build/lading/internal/atomicfile"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

// Cache mounts live in --root/cache-mounts/<hash of id>/: "id" holds the
// id, "0" the shared (and locked) instance, "1"... private ones.

// recordCacheMountID remembers which id a cache mount directory holds, so
// exports can name it, and marks it used now (the directory's mtime, which
// lading prune --filter until=... reads).
func recordCacheMountID(base, id string) error {
	p := filepath.Join(base, "id")
	if got, err := store.ReadCacheMountID(p); err == nil && got == id {
		now := time.Now()
		return os.Chtimes(base, now, now)
	}
	return atomicfile.Write(p, []byte(id), 0o600)
}

// realDir checks that p is a directory itself, not a symlink to one.
func realDir(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", p)
	}
	return nil
}

// CacheMountIDs lists the ids of the cache mounts under the store.
func CacheMountIDs(st *store.Store) ([]string, error) {
	mounts, err := st.CacheMounts()
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(mounts))
	for i, m := range mounts {
		ids[i] = m.ID
	}
	return ids, nil
}

// ExportCacheMounts writes the shared instance of the given cache mounts
// (all when ids is empty) as a gzip tar: "<id hash>/id" and
// "<id hash>/0/..." entries, so another machine's builds start warm.
func ExportCacheMounts(ctx context.Context, st *store.Store, ids []string, w io.Writer) error {
	if len(ids) == 0 {
		all, err := CacheMountIDs(st)
		if err != nil {
			return err
		}
		ids = all
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, id := range ids {
		base := st.CacheMountDir(id)
		if _, err := os.Stat(filepath.Join(base, "0")); err != nil {
			return fmt.Errorf("cache mount %q: %w", id, err)
		}
		prefix := filepath.Base(base) + "/"
		if err := tw.WriteHeader(&tar.Header{Name: prefix + "id", Mode: 0o600, Size: int64(len(id)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, id); err != nil {
			return err
		}
		if err := copyTree(ctx, tw, filepath.Join(base, "0"), prefix+"0/"); err != nil {
			return fmt.Errorf("exporting cache mount %q: %w", id, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// copyTree appends the tree at dir to tw under prefix, entries as the
// snapshot differ writes them (modes, owners, links, xattrs).
func copyTree(ctx context.Context, tw *tar.Writer, dir, prefix string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(snapshot.DiffDirs(ctx, "", dir, pw, snapshot.DiffOptions{})) }()
	defer pr.Close()
	tr := tar.NewReader(pr)
	if err := tw.WriteHeader(&tar.Header{Name: prefix, Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		h.Name = prefix + h.Name
		if h.Typeflag == tar.TypeLink {
			h.Linkname = prefix + h.Linkname
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// ImportCacheMounts unpacks an ExportCacheMounts archive into the store's
// cache mounts, replacing the shared instance of each mount it holds. The
// archive is applied inside the cache-mounts directory with the layer
// applier's path checks, so a hostile archive cannot write elsewhere.
func ImportCacheMounts(ctx context.Context, st *store.Store, r io.Reader) ([]string, error) {
	// Keep lading prune --mounts from removing what is being imported.
	release, err := st.Hold(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("reading cache mount archive: %w", err)
	}
	staging, err := os.MkdirTemp(st.Path("tmp"), "cache-import-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	if err := snapshot.ApplyDir(ctx, staging, zr, snapshot.ApplyOptions{}); err != nil {
		return nil, fmt.Errorf("unpacking cache mount archive: %w", err)
	}
	entries, err := os.ReadDir(staging)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		id, err := store.ReadCacheMountID(filepath.Join(staging, e.Name(), "id"))
		if err != nil {
			return ids, fmt.Errorf("cache mount archive entry %s: %w", e.Name(), err)
		}
		// Only real directories: a symlink here would later be bind
		// mounted into containers as the cache.
		if err := realDir(filepath.Join(staging, e.Name(), "0")); err != nil {
			return ids, fmt.Errorf("cache mount archive entry %s: %w", e.Name(), err)
		}
		base := st.CacheMountDir(id)
		if filepath.Base(base) != e.Name() || strings.ContainsRune(id, 0) {
			return ids, fmt.Errorf("cache mount archive entry %s does not match its id", e.Name())
		}
		if err := os.MkdirAll(base, 0o700); err != nil {
			return ids, err
		}
		old := filepath.Join(base, "0")
		trash := old + ".old"
		_ = os.RemoveAll(trash)
		if err := os.Rename(old, trash); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return ids, err
		}
		if err := os.Rename(filepath.Join(staging, e.Name(), "0"), old); err != nil {
			return ids, err
		}
		_ = os.RemoveAll(trash)
		if err := recordCacheMountID(base, id); err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}
