package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lading-build/lading/internal/atomicfile"
)

// ErrNotFound is returned (wrapped) when a name or blob does not exist.
var ErrNotFound = errors.New("not found")

// staleTemp is how long a temp file may sit unmodified under tmp/ before
// Open treats it as left behind by a crashed process and removes it.
const staleTemp = 24 * time.Hour

// Store is lading's state under one root directory. It is safe for
// concurrent use by several goroutines and several processes.
type Store struct {
	root string
}

// DefaultRoot returns /var/lib/lading for root, and $XDG_DATA_HOME/lading
// (falling back to ~/.local/share/lading) for other users.
func DefaultRoot() string {
	if os.Geteuid() == 0 {
		return "/var/lib/lading"
	}
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "lading")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), fmt.Sprintf("lading-%d", os.Geteuid()))
	}
	return filepath.Join(home, ".local", "share", "lading")
}

// Open opens the store at root ("" means DefaultRoot), creating its
// directories when missing, and removes stale temp files left behind by
// crashed processes. Its errors name the root.
func Open(root string) (*Store, error) {
	if root == "" {
		root = DefaultRoot()
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", root, err)
	}
	s := &Store{root: abs}
	// Layers of private images live here: the root is the owner's only
	// (0700). Roots of older versions were 0755 with 0644 files; the
	// first Open tightens them.
	if err := atomicfile.Private(abs, ".", filepath.Join("blobs", "sha256")); err != nil {
		return nil, fmt.Errorf("opening store %s: %w", abs, err)
	}
	for _, d := range []string{s.Path("blobs", "sha256"), s.Path("tmp"), s.Path("locks")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("opening store %s: %w", abs, err)
		}
	}
	// Builds mount snapshots under tmp: no other user may walk in.
	if err := os.Chmod(s.Path("tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("opening store %s: %w", abs, err)
	}
	s.removeStaleTemps(time.Now().Add(-staleTemp))
	return s, nil
}

// Root returns the absolute root directory of the store.
func (s *Store) Root() string { return s.root }

// Path joins elem onto the root, for directories other packages keep
// there, e.g. s.Path("snapshots"). The caller creates it.
func (s *Store) Path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// removeStaleTemps deletes files under tmp/ last modified before cutoff.
// Temp files still being written are younger; errors are ignored because
// a leftover temp file is harmless.
func (s *Store) removeStaleTemps(cutoff time.Time) {
	entries, err := os.ReadDir(s.Path("tmp"))
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			continue
		}
		_ = os.RemoveAll(s.Path("tmp", e.Name()))
	}
}

// RemoveBlobTemps removes the temp files of blobs being written (those
// of processes killed mid-write, which Open only removes after a day) and
// returns the bytes freed. Only writers of blobs create them, and they
// hold the collection lock (Hold): call it only while holding Collect.
func (s *Store) RemoveBlobTemps() (int64, error) {
	entries, err := os.ReadDir(s.Path("tmp"))
	if err != nil {
		return 0, fmt.Errorf("removing blob temp files: %w", err)
	}
	var freed int64
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), blobTempPrefix+"-") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if err := os.Remove(s.Path("tmp", e.Name())); err == nil {
			freed += info.Size()
		}
	}
	return freed, nil
}

// blobTempPrefix starts the names of blob temp files under tmp/.
const blobTempPrefix = "blob"

// createTemp creates a temp file under tmp/ with the given name prefix.
func (s *Store) createTemp(prefix string) (*os.File, error) {
	return os.CreateTemp(s.Path("tmp"), prefix+"-*")
}
