package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// ErrCorruptBlob is returned (wrapped) when a stored blob's bytes do not
// hash to its digest. The blob has then been removed from the store, so
// the next build re-creates it (a cache record whose layer is missing is
// a miss) and the next pull fetches it again.
var ErrCorruptBlob = errors.New("corrupt blob")

// OpenVerified opens a blob for streaming and checks it while it is read:
// once the reader has returned the last byte (or io.EOF), the bytes must
// hash to digest, or the read fails with an error wrapping ErrCorruptBlob
// and ErrDigestMismatch, and the blob is removed. size is the size the
// caller expects (from a descriptor); -1 accepts any. A blob of another
// size fails before any byte is returned: removed when its bytes do not
// match its digest either (torn), kept when only the caller's size is
// wrong.
func (s *Store) OpenVerified(digest string, size int64) (io.ReadCloser, error) {
	f, err := s.OpenBlob(digest)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening blob %s: %w", digest, err)
	}
	v := &verifier{s: s, f: f, digest: digest, size: info.Size(), h: sha256.New()}
	if size >= 0 && info.Size() != size {
		defer v.Close()
		if _, err := io.Copy(io.Discard, v); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("blob %s is %d bytes, but its descriptor says %d", digest, info.Size(), size)
	}
	return v, nil
}

// VerifyBlob reads a whole blob and checks it as OpenVerified does.
func (s *Store) VerifyBlob(digest string) error {
	r, err := s.OpenVerified(digest, -1)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(io.Discard, r)
	return err
}

// corrupt removes a bad blob, read through f, and returns the error that
// says so. A blob that was replaced since f was opened (a good copy
// committed meanwhile) is not the bad one and stays.
func (s *Store) corrupt(f *os.File, digest, why string) error {
	msg := "removed it from the store; build or pull again to re-create it"
	if s.sameBlob(f, digest) {
		if rmErr := s.DeleteBlob(digest); rmErr != nil {
			msg = fmt.Sprintf("could not remove it: %v", rmErr)
		}
	} else {
		msg = "it was replaced meanwhile; the new copy stays"
	}
	return fmt.Errorf("blob %s: %w (%w: %s): %s", digest, ErrCorruptBlob, ErrDigestMismatch, why, msg)
}

// sameBlob reports whether digest's path still names the file f.
func (s *Store) sameBlob(f *os.File, digest string) bool {
	p, err := s.BlobPath(digest)
	if err != nil {
		return false
	}
	opened, err := f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Lstat(p)
	return err == nil && os.SameFile(opened, now)
}

// verifier hashes a blob as it is read and checks the digest when the
// last byte has been read.
type verifier struct {
	s      *Store
	f      *os.File
	digest string
	size   int64 // of the file when opened
	n      int64
	h      hash.Hash
	err    error // sticky result of the check
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.size {
		v.err = v.s.corrupt(v.f, v.digest, "it grew while being read")
		return n, v.err
	}
	if v.n == v.size || err == io.EOF {
		if v.err = v.check(); v.err == nil {
			v.err = io.EOF
		}
		if n > 0 && v.err == io.EOF {
			return n, nil
		}
		return n, v.err
	}
	return n, err
}

// WriteTo copies the whole blob to w and checks it, as Read does. When
// nothing was read yet it lets the kernel copy the data (copy_file_range
// when w is a file) while another goroutine hashes the same file; the
// verdict comes before WriteTo returns, so a caller that commits its
// output only on success never commits a corrupt blob.
func (v *verifier) WriteTo(w io.Writer) (int64, error) {
	if v.n != 0 || v.err != nil {
		return io.Copy(w, struct{ io.Reader }{v})
	}
	hashed := make(chan error, 1)
	go func() {
		h := sha256.New()
		n, err := io.Copy(h, io.NewSectionReader(v.f, 0, v.size))
		if err == nil {
			v.h, v.n = h, n
			err = v.check()
		}
		hashed <- err
	}()
	// Nothing was read: the file's offset is 0. (A *os.File, not a
	// SectionReader, so that os.File.ReadFrom can use copy_file_range.)
	n, err := io.Copy(w, io.LimitReader(v.f, v.size))
	if hashErr := <-hashed; hashErr != nil {
		v.err = hashErr
		return n, hashErr
	}
	v.err = io.EOF
	return n, err
}

func (v *verifier) check() error {
	if v.n != v.size {
		return v.s.corrupt(v.f, v.digest, fmt.Sprintf("read %d bytes of %d", v.n, v.size))
	}
	got := digestPrefix + hex.EncodeToString(v.h.Sum(nil))
	if got != v.digest {
		return v.s.corrupt(v.f, v.digest, "its bytes hash to "+got)
	}
	return nil
}

func (v *verifier) Close() error { return v.f.Close() }
