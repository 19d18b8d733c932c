package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// CacheMount is one RUN --mount=type=cache directory under the root.
type CacheMount struct {
	ID  string
	Dir string
	// LastUsed is when a build last mounted it (its directory's mtime).
	LastUsed time.Time
}

// CacheMountDir returns the directory of the cache mount id:
// cache-mounts/<hex of the first 16 bytes of sha256(id)>/, holding "id"
// (the id itself), "0" (the shared instance) and "1"... (private ones).
func (s *Store) CacheMountDir(id string) string {
	sum := sha256.Sum256([]byte(id))
	return s.Path("cache-mounts", hex.EncodeToString(sum[:16]))
}

// CacheMounts lists the cache mounts under the root, sorted by id.
// Directories without a readable id are left out.
func (s *Store) CacheMounts() ([]CacheMount, error) {
	entries, err := os.ReadDir(s.Path("cache-mounts"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []CacheMount
	for _, e := range entries {
		dir := s.Path("cache-mounts", e.Name())
		id, err := ReadCacheMountID(filepath.Join(dir, "id"))
		if err != nil || s.CacheMountDir(id) != dir {
			continue
		}
		info, err := os.Lstat(dir)
		if err != nil || !info.IsDir() {
			continue
		}
		out = append(out, CacheMount{ID: id, Dir: dir, LastUsed: info.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ReadCacheMountID reads the id file p of a cache mount directory: a
// regular file (not through a symlink, never a device) of at most 4 KiB.
func ReadCacheMountID(p string) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !info.Mode().IsRegular() || info.Size() > 4096 {
		return "", errors.New("not a small regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	return string(b), err
}
