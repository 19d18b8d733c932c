package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// epoch is the mtime of every entry in the archives lading writes, so
// two exports of one image are byte-identical.
var epoch = time.Unix(0, 0)

// tarFile writes a reproducible tar straight onto an *os.File. Entry data
// copied from files goes file-to-file (copy_file_range), never through
// archive/tar's writer, which would copy it through user space twice.
type tarFile struct {
	f   *os.File
	hdr bytes.Buffer
}

// header writes the header of one entry with clean, fixed fields.
func (t *tarFile) header(name string, typ byte, size int64) error {
	h := &tar.Header{
		Typeflag: typ,
		Name:     name,
		Size:     size,
		Mode:     0o644,
		ModTime:  epoch,
	}
	if typ == tar.TypeDir {
		h.Mode = 0o755
	}
	t.hdr.Reset()
	// A fresh tar.Writer per header: it only ever writes header blocks
	// to the buffer; the data and its padding are written by the caller.
	if err := tar.NewWriter(&t.hdr).WriteHeader(h); err != nil {
		return fmt.Errorf("writing tar header %s: %w", name, err)
	}
	_, err := t.f.Write(t.hdr.Bytes())
	return err
}

func (t *tarFile) dir(name string) error {
	return t.header(name, tar.TypeDir, 0)
}

// bytes writes one regular file with content b.
func (t *tarFile) bytes(name string, b []byte) error {
	return t.copy(name, bytes.NewReader(b), int64(len(b)))
}

// copy writes one regular file of size bytes read from r. When r is an
// *os.File, or a verified store blob (an io.WriterTo), the kernel copies
// the data.
func (t *tarFile) copy(name string, r io.Reader, size int64) error {
	if err := t.header(name, tar.TypeReg, size); err != nil {
		return err
	}
	var n int64
	var err error
	if wt, ok := r.(io.WriterTo); ok {
		n, err = wt.WriteTo(t.f)
	} else {
		n, err = t.f.ReadFrom(io.LimitReader(r, size))
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("writing %s: got %d bytes, want %d", name, n, size)
	}
	return t.pad(size)
}

func (t *tarFile) pad(size int64) error {
	var zeros [512]byte
	if rem := size % 512; rem != 0 {
		_, err := t.f.Write(zeros[:512-rem])
		return err
	}
	return nil
}

// close writes the two zero blocks that end a tar.
func (t *tarFile) close() error {
	var zeros [1024]byte
	_, err := t.f.Write(zeros[:])
	return err
}

// writeAtomic creates path through a temp file next to it: fill writes
// the content, then the file is renamed over path, so path is never seen
// half written, and on error or cancellation nothing is left behind.
//
// Outputs are not fsynced: they are the user's files, not store state,
// and flushing 500 MB to disk costs seconds where the copy costs a
// quarter of one (a power cut right after can lose them, as with cp).
func writeAtomic(ctx context.Context, path string, fill func(*os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = fill(f); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = ctx.Err(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
