package remotecache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/internal/atomicfile"
	"github.com/lading-build/lading/store"
)

// Names inside a cache directory.
const (
	indexName  = "index.json"
	lockName   = "index.lock"
	tempPrefix = ".tmp-"
)

// staleTemp is how old a temp file in a cache directory must be before
// Export removes it as a leftover of a killed process.
const staleTemp = time.Hour

// localSource reads a cache directory.
type localSource struct {
	entrySource
	dir string
}

func openLocalSource(dir string) (*localSource, error) {
	data, err := os.ReadFile(filepath.Join(dir, indexName))
	if errors.Is(err, fs.ErrNotExist) {
		return &localSource{entrySource: entrySource{}, dir: dir}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	m, err := decodeIndex(data)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	return &localSource{entrySource: m, dir: dir}, nil
}

// blobPath returns the file of a blob in a cache directory.
func blobPath(dir, digest string) (string, error) {
	h, err := store.ParseDigest(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "blobs", "sha256", h), nil
}

// FetchLayer copies the blob from the directory into the store; the
// store rejects content that does not hash to d.Digest.
func (s *localSource) FetchLayer(ctx context.Context, st *store.Store, d cache.LayerDesc) error {
	if st.HasBlob(d.Digest) {
		return nil
	}
	p, err := blobPath(s.dir, d.Digest)
	if err != nil {
		return fmt.Errorf("fetching layer from cache %s: %w", s.dir, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("fetching layer from cache %s: %w", s.dir, err)
	}
	defer f.Close()
	w, err := st.NewBlobWriter()
	if err != nil {
		return fmt.Errorf("fetching layer %s from cache %s: %w", d.Digest, s.dir, err)
	}
	defer w.Close()
	if _, err := io.Copy(w, ctxReader{ctx, f}); err != nil {
		return fmt.Errorf("fetching layer %s from cache %s: %w", d.Digest, s.dir, err)
	}
	if _, _, err := w.Commit(d.Digest); err != nil {
		return fmt.Errorf("fetching layer %s from cache %s: %w", d.Digest, s.dir, err)
	}
	return nil
}

// localSink writes a cache directory.
type localSink struct {
	dir string
}

// Export copies the layer blobs the directory lacks, then rewrites
// index.json with the entries merged into those already there. It holds
// DIR/index.lock meanwhile, so concurrent exports to one directory keep
// each other's entries.
func (s *localSink) Export(ctx context.Context, st *store.Store, entries []Entry) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("exporting cache to %s: %w", s.dir, err)
		}
	}()
	if err := validateAll(entries); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	blobs := filepath.Join(s.dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	removeStale(blobs, time.Now().Add(-staleTemp))
	for _, e := range entries {
		if e.Layer == nil {
			continue
		}
		if err := copyBlob(ctx, st, blobs, *e.Layer); err != nil {
			return err
		}
	}
	unlock, err := lockFile(ctx, filepath.Join(s.dir, lockName))
	if err != nil {
		return err
	}
	defer unlock()
	m := map[string]Entry{}
	data, err := os.ReadFile(filepath.Join(s.dir, indexName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if m, err = decodeIndex(data); err != nil {
			return err
		}
	}
	merge(m, entries)
	if data, err = encodeIndex(m); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.dir, indexName), data, 0o644)
}

// copyBlob copies a layer blob from the store into the directory blobs
// unless a file of its size is there, verifying its digest on the way (a
// corrupt store blob fails the export and is removed from the store).
func copyBlob(ctx context.Context, st *store.Store, blobs string, d cache.LayerDesc) (err error) {
	h, err := store.ParseDigest(d.Digest)
	if err != nil {
		return err
	}
	dst := filepath.Join(blobs, h)
	if have, err := os.Stat(dst); err == nil && have.Mode().IsRegular() && have.Size() == d.Size {
		return nil
	}
	src, err := st.OpenVerified(d.Digest, d.Size)
	if err != nil {
		return fmt.Errorf("copying layer: %w", err)
	}
	defer src.Close()
	f, err := os.CreateTemp(blobs, tempPrefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, ctxReader{ctx, src}); err != nil {
		return fmt.Errorf("copying layer: %w", err)
	}
	if err := commitTemp(f, dst); err != nil {
		return fmt.Errorf("copying layer %s: %w", d.Digest, err)
	}
	return nil
}

// commitTemp makes the temp file f readable, syncs and closes it, renames
// it to dst and syncs dst's directory.
func commitTemp(f *os.File, dst string) error {
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// removeStale removes temp files in dir older than cutoff.
func removeStale(dir string, cutoff time.Time) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// lockFile takes an exclusive flock on path, polling until ctx is done.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
