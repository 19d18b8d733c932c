package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/lading-build/lading/internal/atomicfile"
)

// ErrInvalidName is returned (wrapped) for an image name or lock name that
// cannot be used.
var ErrInvalidName = errors.New("invalid name")

// Name is one image name and the manifest digest it points at.
type Name struct {
	Name    string    `json:"name"`
	Digest  string    `json:"digest"`
	Created time.Time `json:"created"`
}

// namesFile is the on-disk form of names.json.
type namesFile struct {
	Version int    `json:"version"`
	Names   []Name `json:"names"`
}

// NormalizeName returns the form names are stored under: "app" becomes
// "app:latest"; a name with a tag or digest is kept as it is.
func NormalizeName(name string) (string, error) {
	if name == "" || strings.TrimSpace(name) != name || len(name) > 1024 {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
		}
	}
	if strings.Contains(name, "@") {
		return name, nil
	}
	last := name[strings.LastIndex(name, "/")+1:]
	if last == "" {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	if strings.Contains(last, ":") {
		return name, nil
	}
	return name + ":latest", nil
}

// Tag points name (normalized) at the manifest digest, replacing what it
// pointed at before.
func (s *Store) Tag(name, digest string) error {
	n, err := NormalizeName(name)
	if err != nil {
		return err
	}
	if _, err := ParseDigest(digest); err != nil {
		return err
	}
	return s.updateNames(func(m map[string]Name) error {
		m[n] = Name{Name: n, Digest: digest, Created: time.Now().UTC()}
		return nil
	})
}

// Untag removes name (normalized); an error wrapping ErrNotFound says it
// did not exist.
func (s *Store) Untag(name string) error {
	n, err := NormalizeName(name)
	if err != nil {
		return err
	}
	return s.updateNames(func(m map[string]Name) error {
		if _, ok := m[n]; !ok {
			return fmt.Errorf("untagging %s: %w", n, ErrNotFound)
		}
		delete(m, n)
		return nil
	})
}

// Resolve returns the manifest digest name (normalized) points at, or an
// error wrapping ErrNotFound.
func (s *Store) Resolve(name string) (string, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return "", err
	}
	names, err := s.readNames()
	if err != nil {
		return "", err
	}
	for _, e := range names {
		if e.Name == n {
			return e.Digest, nil
		}
	}
	return "", fmt.Errorf("resolving %s: %w", n, ErrNotFound)
}

// Names returns every name, sorted by name.
func (s *Store) Names() ([]Name, error) {
	return s.readNames()
}

// readNames reads names.json without locking: it is only ever replaced
// by rename, so a reader sees one complete version.
func (s *Store) readNames() ([]Name, error) {
	b, err := os.ReadFile(s.Path("names.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading names: %w", err)
	}
	var f namesFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("reading names: %w", err)
	}
	sort.Slice(f.Names, func(i, j int) bool { return f.Names[i].Name < f.Names[j].Name })
	return f.Names, nil
}

// updateNames applies change to the names under an exclusive file lock
// and writes the result atomically.
func (s *Store) updateNames(change func(map[string]Name) error) error {
	l := flock.New(s.Path("names.lock"))
	if err := l.Lock(); err != nil {
		return fmt.Errorf("locking names: %w", err)
	}
	defer l.Unlock()
	names, err := s.readNames()
	if err != nil {
		return err
	}
	m := make(map[string]Name, len(names))
	for _, n := range names {
		m[n.Name] = n
	}
	if err := change(m); err != nil {
		return err
	}
	f := namesFile{Version: 1, Names: make([]Name, 0, len(m))}
	for _, n := range m {
		f.Names = append(f.Names, n)
	}
	sort.Slice(f.Names, func(i, j int) bool { return f.Names[i].Name < f.Names[j].Name })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("writing names: %w", err)
	}
	return atomicfile.WriteIn(s.Path("tmp"), s.Path("names.json"), append(b, '\n'), 0o600)
}
