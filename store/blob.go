package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/lading-build/lading/internal/atomicfile"
)

// ErrInvalidDigest is returned (wrapped) for a digest string that is not
// "sha256:" followed by 64 lowercase hex digits.
var ErrInvalidDigest = errors.New("invalid digest")

// ErrDigestMismatch is returned (wrapped) when content does not hash to
// the digest the caller expected.
var ErrDigestMismatch = errors.New("digest mismatch")

const digestPrefix = "sha256:"

// ParseDigest validates d and returns its hex part.
func ParseDigest(d string) (string, error) {
	h, ok := strings.CutPrefix(d, digestPrefix)
	if !ok || len(h) != sha256.Size*2 {
		return "", fmt.Errorf("%w: %q", ErrInvalidDigest, d)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", fmt.Errorf("%w: %q", ErrInvalidDigest, d)
		}
	}
	return h, nil
}

// BlobPath returns the file a blob is (or would be) stored in.
func (s *Store) BlobPath(digest string) (string, error) {
	h, err := ParseDigest(digest)
	if err != nil {
		return "", err
	}
	return s.Path("blobs", "sha256", h), nil
}

// OpenBlob opens a blob for reading.
func (s *Store) OpenBlob(digest string) (*os.File, error) {
	p, err := s.BlobPath(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening blob %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("opening blob %s: %w", digest, err)
	}
	return f, nil
}

// HasBlob reports whether a blob is present. Invalid digests are absent.
func (s *Store) HasBlob(digest string) bool {
	p, err := s.BlobPath(digest)
	if err != nil {
		return false
	}
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular()
}

// BlobSize returns the size of a stored blob.
func (s *Store) BlobSize(digest string) (int64, error) {
	p, err := s.BlobPath(digest)
	if err != nil {
		return 0, err
	}
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", digest, err)
	}
	return info.Size(), nil
}

// WriteBlob stores everything r yields as a blob. When expected is not
// empty the content must hash to it, or nothing is stored.
func (s *Store) WriteBlob(r io.Reader, expected string) (digest string, size int64, err error) {
	if expected != "" {
		if _, err := ParseDigest(expected); err != nil {
			return "", 0, err
		}
	}
	w, err := s.NewBlobWriter()
	if err != nil {
		return "", 0, err
	}
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		return "", 0, fmt.Errorf("writing blob: %w", err)
	}
	return w.Commit(expected)
}

// BlobWriter writes one blob: an io.Writer onto a temp file that hashes
// what it is given. Commit moves it into place; Close discards it unless
// committed. A BlobWriter is not safe for concurrent use.
type BlobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// NewBlobWriter starts a blob under tmp/.
func (s *Store) NewBlobWriter() (*BlobWriter, error) {
	f, err := s.createTemp(blobTempPrefix)
	if err != nil {
		return nil, fmt.Errorf("creating blob: %w", err)
	}
	return &BlobWriter{s: s, f: f, h: sha256.New()}, nil
}

// Write appends p to the blob.
func (w *BlobWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("write to a closed blob writer")
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Size returns the number of bytes written so far.
func (w *BlobWriter) Size() int64 { return w.n }

// Digest returns the digest of the bytes written so far.
func (w *BlobWriter) Digest() string {
	return digestPrefix + hex.EncodeToString(w.h.Sum(nil))
}

// Commit fsyncs the blob and renames it to blobs/sha256/<hex>. When
// expected is not empty and differs from the content's digest the blob is
// discarded and an error wrapping ErrDigestMismatch returned. When the
// blob already exists the temp file is dropped. The writer is closed
// afterwards in every case.
func (w *BlobWriter) Commit(expected string) (digest string, size int64, err error) {
	if w.done {
		return "", 0, errors.New("commit of a closed blob writer")
	}
	defer w.Close()
	digest = w.Digest()
	if expected != "" && expected != digest {
		return "", 0, fmt.Errorf("committing blob: %w: got %s, want %s", ErrDigestMismatch, digest, expected)
	}
	dst, err := w.s.BlobPath(digest)
	if err != nil {
		return "", 0, err
	}
	// Even when the blob exists it is replaced: the existing file may be
	// a corrupt copy of the same size, and this one was just hashed.
	if err := w.f.Chmod(0o600); err != nil {
		return "", 0, fmt.Errorf("committing blob %s: %w", digest, err)
	}
	if err := w.f.Sync(); err != nil {
		return "", 0, fmt.Errorf("syncing blob %s: %w", digest, err)
	}
	if err := w.f.Close(); err != nil {
		return "", 0, fmt.Errorf("closing blob %s: %w", digest, err)
	}
	if err := os.Rename(w.f.Name(), dst); err != nil {
		return "", 0, fmt.Errorf("committing blob %s: %w", digest, err)
	}
	w.done = true
	if err := atomicfile.SyncDir(w.s.Path("blobs", "sha256")); err != nil {
		return "", 0, fmt.Errorf("committing blob %s: %w", digest, err)
	}
	return digest, w.n, nil
}

// Close discards the blob unless it was committed. It is safe to call
// more than once.
func (w *BlobWriter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	err := w.f.Close()
	if rmErr := os.Remove(w.f.Name()); rmErr != nil && err == nil && !errors.Is(rmErr, fs.ErrNotExist) {
		err = rmErr
	}
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("discarding blob: %w", err)
	}
	return nil
}

// Blobs lists the digests of every blob in the store.
func (s *Store) Blobs() ([]string, error) {
	entries, err := os.ReadDir(s.Path("blobs", "sha256"))
	if err != nil {
		return nil, fmt.Errorf("listing blobs: %w", err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		d := "sha256:" + e.Name()
		if _, err := ParseDigest(d); err == nil && e.Type().IsRegular() {
			out = append(out, d)
		}
	}
	return out, nil
}

// DeleteBlob removes a blob; a blob already gone is not an error.
func (s *Store) DeleteBlob(digest string) error {
	p, err := s.BlobPath(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("deleting blob %s: %w", digest, err)
	}
	return nil
}
