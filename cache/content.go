package cache

import (
	"fmt"
	"os"
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

// PutContent records that snapshot holds the output of the copy keyed by
// key.
func (c *Cache) PutContent(key, snapshot string) error {
	h, err := keyHex(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.path("content"), 0o700); err != nil {
		return fmt.Errorf("recording copy content: %w", err)
	}
	return atomicfile.WriteIn(c.path("tmp"), c.path("content", h), []byte(snapshot), 0o600)
}

// Content returns the snapshot recorded for key, if any.
func (c *Cache) Content(key string) (string, bool) {
	h, err := keyHex(key)
	if err != nil {
		return "", false
	}
	b, err := os.ReadFile(c.path("content", h))
	if err != nil {
		return "", false
	}
	name := strings.TrimSpace(string(b))
	return name, name != ""
}
