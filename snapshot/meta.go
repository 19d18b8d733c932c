package snapshot

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/atomicfile"
)

// record is the authoritative description of one snapshot, stored in
// snapshots/ID/meta.
type record struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Parent string `json:"parent,omitempty"`
	// Chain lists the ids of the committed ancestors, parent first.
	Chain []string `json:"chain,omitempty"`
}

const (
	kindActive    = "active"
	kindView      = "view"
	kindCommitted = "committed"
)

func (r record) kind() Kind {
	switch r.Kind {
	case kindActive:
		return KindActive
	case kindView:
		return KindView
	case kindCommitted:
		return KindCommitted
	}
	return KindUnknown
}

func (r record) info() Info {
	return Info{Name: r.Name, Parent: r.Parent, Kind: r.kind()}
}

// store keeps snapshot records and directories under one directory. All
// metadata changes happen under mu (goroutines) and an exclusive flock on
// the lock file (processes).
type store struct {
	dir  string
	mu   sync.Mutex
	lock *os.File
}

func openStore(dir string) (*store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolving snapshot directory: %w", err)
	}
	for _, d := range []string{abs, filepath.Join(abs, "snapshots"), filepath.Join(abs, "names"), filepath.Join(abs, "trash")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating snapshot directory: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(abs, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening snapshot lock: %w", err)
	}
	s := &store{dir: abs, lock: lock}
	// Finish deletions a killed process left behind.
	var trash []string
	err = s.locked(func() error {
		ents, err := os.ReadDir(filepath.Join(abs, "trash"))
		for _, e := range ents {
			trash = append(trash, filepath.Join(abs, "trash", e.Name()))
		}
		return err
	})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("reading snapshot trash: %w", err)
	}
	for _, t := range trash {
		_ = os.RemoveAll(t)
	}
	return s, nil
}

func (s *store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// locked runs fn holding the store lock.
func (s *store) locked(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return errors.New("snapshotter is closed")
	}
	fd := int(s.lock.Fd())
	for {
		err := unix.Flock(fd, unix.LOCK_EX)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return fmt.Errorf("locking snapshot metadata: %w", err)
		}
	}
	defer unix.Flock(fd, unix.LOCK_UN)
	return fn()
}

func (s *store) snapshotDir(id string) string { return filepath.Join(s.dir, "snapshots", id) }
func (s *store) fsDir(id string) string       { return filepath.Join(s.dir, "snapshots", id, "fs") }
func (s *store) workDir(id string) string     { return filepath.Join(s.dir, "snapshots", id, "work") }

func (s *store) indexPath(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(s.dir, "names", hex.EncodeToString(sum[:16]))
}

// get returns the record of key or name; call with the lock held.
func (s *store) get(name string) (record, error) {
	id, err := os.ReadFile(s.indexPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return record{}, fmt.Errorf("snapshot %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return record{}, fmt.Errorf("reading snapshot index: %w", err)
	}
	r, err := s.readRecord(string(id))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && r.Name != name) {
		// A stale index entry left by a crash between the record and
		// the index update: the record is authoritative.
		return record{}, fmt.Errorf("snapshot %q: %w", name, ErrNotFound)
	}
	return r, err
}

// valid returns the record in the snapshot directory id if it is whole
// and its name's index leads back to it; call with the lock held.
func (s *store) valid(id string) (record, bool) {
	r, err := s.readRecord(id)
	if err != nil || r.ID != id {
		return record{}, false
	}
	cur, err := s.get(r.Name)
	return r, err == nil && cur.ID == r.ID
}

func (s *store) readRecord(id string) (record, error) {
	var r record
	b, err := os.ReadFile(filepath.Join(s.snapshotDir(id), "meta"))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decoding snapshot record %s: %w", id, err)
	}
	return r, nil
}

// writeRecord writes r; durable fsyncs it. A record that is not durable
// is worthless after a power loss (an active snapshot), or is made
// durable by the syncfs before anything durable refers to it (see
// LazyCommitter); records skips a torn one.
func (s *store) writeRecord(r record, durable bool) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return writeMeta(filepath.Join(s.snapshotDir(r.ID), "meta"), b, durable)
}

// writeMeta replaces path with data atomically; durable also fsyncs it
// and its directory.
func writeMeta(path string, data []byte, durable bool) error {
	if durable {
		return atomicfile.Write(path, data, 0o600)
	}
	return atomicfile.WriteUnsynced(path, data, 0o600)
}

// create makes a new snapshot record and its directories; call with the
// lock held.
func (s *store) create(key, parent, kind string) (record, error) {
	if key == "" {
		return record{}, errors.New("empty snapshot key")
	}
	if _, err := s.get(key); err == nil {
		return record{}, fmt.Errorf("snapshot %q: %w", key, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return record{}, err
	}
	r := record{Name: key, Kind: kind, Parent: parent}
	if parent != "" {
		p, err := s.get(parent)
		if err != nil {
			return record{}, fmt.Errorf("parent: %w", err)
		}
		if p.Kind != kindCommitted {
			return record{}, fmt.Errorf("parent %q is not committed: %w", parent, ErrWrongKind)
		}
		r.Chain = append([]string{p.ID}, p.Chain...)
	}
	id, err := s.newID()
	if err != nil {
		return record{}, err
	}
	r.ID = id
	err = func() error {
		for _, d := range []string{s.fsDir(id), s.workDir(id)} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
		}
		// An active snapshot or a view is of no use after a crash: its
		// metadata is not fsynced.
		if err := s.writeRecord(r, false); err != nil {
			return err
		}
		return writeMeta(s.indexPath(key), []byte(id), false)
	}()
	if err != nil {
		_ = os.RemoveAll(s.snapshotDir(id))
		return record{}, fmt.Errorf("creating snapshot %q: %w", key, err)
	}
	return r, nil
}

// newID reserves a short random id by creating its directory.
func (s *store) newID() (string, error) {
	for range 100 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		id := hex.EncodeToString(b[:])
		err := os.Mkdir(s.snapshotDir(id), 0o700)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("creating snapshot directory: %w", err)
		}
	}
	return "", errors.New("no free snapshot id")
}

// commit renames active snapshot key to committed name; call with the lock
// held. durable fsyncs the metadata (Commit); CommitUnsynced leaves it,
// like the files, to the syncfs before a cache record refers to the
// snapshot.
func (s *store) commit(name, key string, durable bool) error {
	if name == "" {
		return errors.New("empty snapshot name")
	}
	r, err := s.get(key)
	if err != nil {
		return err
	}
	if r.Kind != kindActive {
		return fmt.Errorf("committing %q: snapshot is %s: %w", key, r.Kind, ErrWrongKind)
	}
	if _, err := s.get(name); err == nil {
		return fmt.Errorf("snapshot %q: %w", name, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	r.Name, r.Kind = name, kindCommitted
	// The record is the commit point; the index follows it.
	if err := s.writeRecord(r, durable); err != nil {
		return fmt.Errorf("committing %q: %w", key, err)
	}
	if err := writeMeta(s.indexPath(name), []byte(r.ID), durable); err != nil {
		return fmt.Errorf("committing %q: %w", key, err)
	}
	if err := os.Remove(s.indexPath(key)); err != nil {
		return fmt.Errorf("committing %q: %w", key, err)
	}
	if !durable {
		return nil
	}
	return atomicfile.SyncDir(filepath.Join(s.dir, "names"))
}

// remove deletes the record of key and moves its data to the trash; it
// returns the trash path to delete once the lock is released.
func (s *store) remove(key string) (string, error) {
	r, err := s.get(key)
	if err != nil {
		return "", err
	}
	if r.Kind == kindCommitted {
		children, err := s.children(r.Name)
		if err != nil {
			return "", err
		}
		if len(children) > 0 {
			return "", fmt.Errorf("removing %q: parent of %q: %w", key, children[0], ErrInUse)
		}
	}
	trash := filepath.Join(s.dir, "trash", r.ID)
	// Moving the directory removes the record with it; the index entry
	// then dangles and is ignored until it is deleted just below.
	if err := os.Rename(s.snapshotDir(r.ID), trash); err != nil {
		return "", fmt.Errorf("removing %q: %w", key, err)
	}
	if err := os.Remove(s.indexPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return trash, fmt.Errorf("removing %q: %w", key, err)
	}
	return trash, atomicfile.SyncDir(filepath.Join(s.dir, "names"))
}

// children lists the snapshots whose parent is name.
func (s *store) children(name string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "snapshots"))
	if err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	var out []string
	for _, e := range ents {
		r, err := s.readRecord(e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // being created
		}
		if err != nil {
			return nil, err
		}
		if r.Parent == name {
			if cur, err := s.get(r.Name); err == nil && cur.ID == r.ID {
				out = append(out, r.Name)
			}
		}
	}
	return out, nil
}

// checkStoreDir rejects directories whose path cannot be written into an
// overlay option string.
func checkStoreDir(dir string) error {
	if strings.ContainsAny(dir, ":,") {
		return fmt.Errorf("snapshot directory %q contains ':' or ','", dir)
	}
	return nil
}
