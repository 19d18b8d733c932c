package image

import (
	"fmt"

	"github.com/lading-build/lading/store"
)

// LookupName finds the stored name ref stands for and the manifest digest
// it points at. A name is looked up as written first (normalized like
// store.Tag: "app" is "app:latest"), then by CanonicalName, so "debian:12"
// finds the "index.docker.io/library/debian:12" that Pull tagged, and
// "docker.io/library/app:1" finds a locally built "app:1". The error
// wraps store.ErrNotFound when no name matches.
func LookupName(s *store.Store, ref string) (stored, digest string, err error) {
	n, err := store.NormalizeName(ref)
	if err != nil {
		return "", "", err
	}
	names, err := s.Names()
	if err != nil {
		return "", "", err
	}
	for _, e := range names {
		if e.Name == n {
			return e.Name, e.Digest, nil
		}
	}
	if want, ok := CanonicalName(ref); ok {
		for _, e := range names {
			if c, ok := CanonicalName(e.Name); ok && c == want {
				return e.Name, e.Digest, nil
			}
		}
	}
	return "", "", fmt.Errorf("resolving %s: %w", n, store.ErrNotFound)
}
