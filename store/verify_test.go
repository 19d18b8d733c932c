package store

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenVerified(t *testing.T) {
	s := openTest(t)
	data := bytes.Repeat([]byte("verified on the way out "), 5000)
	d, size, err := s.WriteBlob(bytes.NewReader(data), "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.OpenVerified(d, size)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("good blob: %d bytes, %v", len(got), err)
	}
	// A reader that stops at the descriptor's size still gets the check.
	r, _ = s.OpenVerified(d, size)
	if _, err := io.ReadAll(io.LimitReader(r, size)); err != nil {
		t.Fatalf("limited read of a good blob: %v", err)
	}
	r.Close()

	// The kernel-copy path checks too.
	r, _ = s.OpenVerified(d, size)
	var out bytes.Buffer
	if n, err := r.(io.WriterTo).WriteTo(&out); err != nil || n != size || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("WriteTo of a good blob: %d bytes, %v", n, err)
	}
	r.Close()

	// Only the caller's size is wrong: an error, and the blob stays.
	if _, err := s.OpenVerified(d, size+1); err == nil || errors.Is(err, ErrCorruptBlob) {
		t.Fatalf("wrong descriptor size: err = %v, want a size error", err)
	}
	if !s.HasBlob(d) {
		t.Fatal("a good blob was removed for a wrong descriptor size")
	}

	p, _ := s.BlobPath(d)
	data[len(data)/2] ^= 1
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = s.OpenVerified(d, size)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, io.LimitReader(r, size))
	r.Close()
	if !errors.Is(err, ErrCorruptBlob) || !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("flipped blob: err = %v, want ErrCorruptBlob", err)
	}
	if s.HasBlob(d) {
		t.Fatal("corrupt blob kept")
	}
	d3, size3, _ := s.WriteBlob(bytes.NewReader(data[:len(data)-1]), "")
	p3, _ := s.BlobPath(d3)
	flipped := bytes.Clone(data[:len(data)-1])
	flipped[7] ^= 1
	os.WriteFile(p3, flipped, 0o600)
	r, _ = s.OpenVerified(d3, size3)
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.(io.WriterTo).WriteTo(f)
	r.Close()
	f.Close()
	if !errors.Is(err, ErrCorruptBlob) || s.HasBlob(d3) {
		t.Fatalf("WriteTo of a flipped blob: %v (kept: %v)", err, s.HasBlob(d3))
	}

	// Torn (shorter) blob: fails before a byte is read and is removed.
	d2, size2, _ := s.WriteBlob(bytes.NewReader(data), "")
	p2, _ := s.BlobPath(d2)
	if err := os.Truncate(p2, size2/2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenVerified(d2, size2); !errors.Is(err, ErrCorruptBlob) {
		t.Fatalf("torn blob: err = %v, want ErrCorruptBlob", err)
	}
	if s.HasBlob(d2) {
		t.Fatal("torn blob kept")
	}
}

// TestRemoveBlobTemps: the temp file of a blob a killed process was
// writing goes; other temp files stay.
func TestRemoveBlobTemps(t *testing.T) {
	s := openTest(t)
	w, err := s.NewBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "half a layer")
	other := s.Path("tmp", ".tmp-names.json-123")
	if err := os.WriteFile(other, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	freed, err := s.RemoveBlobTemps()
	if err != nil || freed != int64(len("half a layer")) {
		t.Fatalf("RemoveBlobTemps = %d, %v", freed, err)
	}
	if left := tmpFiles(t, s); len(left) != 1 || left[0] != filepath.Base(other) {
		t.Errorf("tmp/ holds %v, want only %s", left, filepath.Base(other))
	}
	w.Close()
}

// TestCorruptBlobReplaced: a corrupt blob found by a reader is removed
// only if it is still the file the reader opened, not a good copy
// committed meanwhile; and committing a blob replaces a corrupt copy of
// the same size.
func TestCorruptBlobReplaced(t *testing.T) {
	s := openTest(t)
	data := bytes.Repeat([]byte("replaced while read "), 1000)
	d, size, err := s.WriteBlob(bytes.NewReader(data), "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.BlobPath(d)
	bad := bytes.Clone(data)
	bad[3] ^= 1
	if err := os.WriteFile(p, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := s.OpenVerified(d, size)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A good copy lands while the corrupt one is being read.
	if _, _, err := s.WriteBlob(bytes.NewReader(data), d); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Fatal("committing a blob kept a corrupt copy of the same size")
	}
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, ErrCorruptBlob) {
		t.Fatalf("reading the corrupt copy: err = %v, want ErrCorruptBlob", err)
	}
	if err := s.VerifyBlob(d); err != nil {
		t.Fatalf("the good copy: %v", err)
	}
}
