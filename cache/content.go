package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lading-build/lading/internal/atomicfile"
)

// A content entry names a committed snapshot holding the result of a
// COPY whose output does not depend on what lies below it (its
// destination did not exist), by a key over the COPY and the digests of
// what it copied, without the parent: a COPY invalidated only by an
// earlier step can then link the files of the earlier result instead of
// copying them again. Entries live in content/<hex>; a stale one (its
// snapshot pruned) is simply not used.

// A ContentPart locates the copy's files in a layer blob written from
// the snapshot: the blob's first gzip member, Size bytes whose sha256 is
// Digest, holding the tar entries of the copy's destination (TarSize
// bytes, after which the layer's diffID hash has state TarState),
// written with SOURCE_DATE_EPOCH Epoch. A later layer holding the same
// files copies that member instead of compressing them again.
type ContentPart struct {
	Blob     string `json:"blob"`
	Size     int64  `json:"size"`
	Digest   string `json:"digest"`
	TarSize  int64  `json:"tarSize"`
	TarState []byte `json:"tarState"`
	Epoch    *int64 `json:"epoch,omitempty"`
}

// SameEpoch reports whether the part was written with epoch.
func (p *ContentPart) SameEpoch(epoch *int64) bool {
	return (p.Epoch == nil) == (epoch == nil) && (epoch == nil || *p.Epoch == *epoch)
}

// contentEntry is what content/<hex> holds. Head was "part" when the
// copy's files were the blob's last member: such an entry gives no part.
type contentEntry struct {
	Snapshot string       `json:"snapshot"`
	Head     *ContentPart `json:"head,omitempty"`
}

// PutContent records that snapshot holds the output of the copy keyed by
// key, and where part (if not nil) its files are in a layer blob.
func (c *Cache) PutContent(key, snapshot string, part *ContentPart) error {
	h, err := keyHex(key)
	if err != nil {
		return err
	}
	data, err := json.Marshal(contentEntry{Snapshot: snapshot, Head: part})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.path("content"), 0o700); err != nil {
		return fmt.Errorf("recording copy content: %w", err)
	}
	return atomicfile.WriteIn(c.path("tmp"), c.path("content", h), data, 0o600)
}

// Content returns the snapshot recorded for key and where its files are
// in a layer blob (nil when unknown), if there is an entry. An entry of
// an older lading is the snapshot's name alone.
func (c *Cache) Content(key string) (string, *ContentPart, bool) {
	h, err := keyHex(key)
	if err != nil {
		return "", nil, false
	}
	e, ok := readContent(c.path("content", h))
	return e.Snapshot, e.Head, ok
}

// readContent reads a content entry; false when it is missing or
// unreadable.
func readContent(file string) (contentEntry, bool) {
	var e contentEntry
	b, err := os.ReadFile(file)
	if err != nil {
		return e, false
	}
	if len(b) > 0 && b[0] == '{' {
		if json.Unmarshal(b, &e) != nil {
			return contentEntry{}, false
		}
	} else {
		e.Snapshot = strings.TrimSpace(string(b))
	}
	return e, e.Snapshot != ""
}

// PruneContent removes the content entries whose snapshot is gone
// (exists says which are not) or that cannot be read, and returns how
// many it removed. Run it with no build running (under the store's
// collection lock).
func (c *Cache) PruneContent(exists func(snapshot string) bool) (int, error) {
	dir := c.path("content")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pruning copy content: %w", err)
	}
	n := 0
	for _, d := range ents {
		file := filepath.Join(dir, d.Name())
		if e, ok := readContent(file); ok && exists(e.Snapshot) {
			continue
		}
		if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("pruning copy content: %w", err)
		}
		n++
	}
	return n, nil
}
