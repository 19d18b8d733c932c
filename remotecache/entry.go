package remotecache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/store"
)

// Entry is one step of the cache as it travels between machines.
type Entry struct {
	Key     string           `json:"key"`              // step cache key "sha256:..."
	Parent  string           `json:"parent,omitempty"` // parent step key ("" for a stage's first step)
	Layer   *cache.LayerDesc `json:"layer,omitempty"`  // nil: the step changed nothing
	Created time.Time        `json:"created"`          // the record's creation time (history times come from it)
	Stage   string           `json:"stage,omitempty"`  // for humans
	Step    string           `json:"step,omitempty"`
}

// FromRecord returns the entry of a local cache record.
func FromRecord(r *cache.Record) Entry {
	e := Entry{Key: r.Key, Parent: r.Parent, Created: r.Created, Stage: r.Stage, Step: r.Step}
	if r.Layer != nil {
		l := *r.Layer
		e.Layer = &l
	}
	return e
}

// Source is a cache to read steps from. Implementations are safe for
// concurrent use.
type Source interface {
	// Lookup returns the entry of a step key.
	Lookup(key string) (Entry, bool)
	// FetchLayer makes sure the layer blob is in the local store,
	// verifying its digest; cheap when already there.
	FetchLayer(ctx context.Context, st *store.Store, d cache.LayerDesc) error
}

// Sink is a cache to write steps to.
type Sink interface {
	// Export writes entries and their layer blobs (read from st), merging
	// with what the destination already has (entries with other keys are
	// kept; for the registry, blobs already there are not re-uploaded).
	Export(ctx context.Context, st *store.Store, entries []Entry) error
}

// ErrInvalidEntry marks an entry with a malformed key, parent or layer.
var ErrInvalidEntry = errors.New("invalid cache entry")

// indexVersion is the version of the entries document.
const indexVersion = 1

// index is the entries document: DIR/index.json, and the value of the
// "lading.cache.v1" field of a registry cache's config.
type index struct {
	Version int     `json:"version"`
	Entries []Entry `json:"entries"`
}

// validate checks the fields a cache relies on: keys and digests are
// "sha256:<64 hex>" (so they are safe in file names) and layers name a
// media type.
func (e Entry) validate() error {
	if _, err := store.ParseDigest(e.Key); err != nil {
		return fmt.Errorf("%w: key: %w", ErrInvalidEntry, err)
	}
	if e.Parent != "" {
		if _, err := store.ParseDigest(e.Parent); err != nil {
			return fmt.Errorf("%w %s: parent: %w", ErrInvalidEntry, e.Key, err)
		}
	}
	if l := e.Layer; l != nil {
		if _, err := store.ParseDigest(l.Digest); err != nil {
			return fmt.Errorf("%w %s: layer: %w", ErrInvalidEntry, e.Key, err)
		}
		if _, err := store.ParseDigest(l.DiffID); err != nil {
			return fmt.Errorf("%w %s: layer diff id: %w", ErrInvalidEntry, e.Key, err)
		}
		if l.Size < 0 || l.MediaType == "" {
			return fmt.Errorf("%w %s: layer %s: no size or media type", ErrInvalidEntry, e.Key, l.Digest)
		}
	}
	return nil
}

// validateAll checks entries a caller hands to Export.
func validateAll(entries []Entry) error {
	for _, e := range entries {
		if err := e.validate(); err != nil {
			return err
		}
	}
	return nil
}

// decodeIndex parses an entries document. A document of another version
// is an error; single malformed entries are dropped, so that one bad
// entry written by someone else does not cost the whole cache.
func decodeIndex(data []byte) (map[string]Entry, error) {
	var idx index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("parsing cache index: %w", err)
	}
	if idx.Version != indexVersion {
		return nil, fmt.Errorf("cache index version %d, want %d", idx.Version, indexVersion)
	}
	out := make(map[string]Entry, len(idx.Entries))
	merge(out, idx.Entries)
	return out, nil
}

// encodeIndex returns the entries document of m, entries sorted by key.
func encodeIndex(m map[string]Entry) ([]byte, error) {
	return json.MarshalIndent(index{Version: indexVersion, Entries: sorted(m)}, "", "\t")
}

// merge adds entries to m; for a key m already has, the newer entry
// wins (the added one when equally old). Malformed entries are skipped.
func merge(m map[string]Entry, entries []Entry) {
	for _, e := range entries {
		if e.validate() != nil {
			continue
		}
		if old, ok := m[e.Key]; ok && old.Created.After(e.Created) {
			continue
		}
		m[e.Key] = e
	}
}

// sorted returns the entries of m ordered by key.
func sorted(m map[string]Entry) []Entry {
	out := make([]Entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// entrySource is the lookup half shared by both sources.
type entrySource map[string]Entry

func (s entrySource) Lookup(key string) (Entry, bool) {
	e, ok := s[key]
	if ok && e.Layer != nil {
		l := *e.Layer
		e.Layer = &l
	}
	return e, ok
}
