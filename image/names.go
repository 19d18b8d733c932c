package image

import (
	"fmt"
	"strings"

	gcrname "github.com/google/go-containerregistry/pkg/name"

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

// ValidateName checks that name is a valid Docker image reference: a
// lowercase repository with an optional tag (up to 128 letters, digits,
// '_', '.' and '-', not starting with '.' or '-') or digest.
func ValidateName(name string) error {
	ref, err := gcrname.ParseReference(name, gcrname.WeakValidation)
	if err != nil {
		return fmt.Errorf("invalid image name %q: %w", name, err)
	}
	if t, ok := ref.(gcrname.Tag); ok && strings.IndexAny(t.TagStr(), ".-") == 0 {
		return fmt.Errorf("invalid image name %q: a tag cannot start with '.' or '-'", name)
	}
	return nil
}
