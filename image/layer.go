package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	goruntime "runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/lading-build/lading/store"
)

// CompressionLevel is the gzip level of every layer WriteLayer writes.
// It is part of the layer digest: changing it changes image digests.
const CompressionLevel = gzip.BestSpeed

// Layers of at least parallelThreshold bytes are gzipped in blocks of
// parallelBlock bytes, one goroutine per CPU (pgzip). Both numbers are
// part of the layer digests.
const (
	parallelThreshold = 1 << 20
	parallelBlock     = 1 << 20
)

// WriteLayer reads an uncompressed layer tar once, gzips it into a store
// blob while hashing both streams, and returns a store-backed layer whose
// digest, diffID and size are known without reading it again.
func WriteLayer(ctx context.Context, s *store.Store, tarStream io.Reader) (v1.Layer, error) {
	w, err := NewLayerWriter(s)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	if _, err := io.Copy(w, ctxReader{ctx, tarStream}); err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	l, _, err := w.Commit()
	return l, err
}

// A LayerWriter gzips an uncompressed layer tar, written to it, into a
// store blob while hashing both streams. The blob is one gzip member, or
// several when Cut is called between tar entries (a gzip stream may hold
// any number of members, and readers concatenate them). A later layer
// that ends with the same entries can then copy the last member (Splice)
// instead of compressing them again.
//
// A member is compressed in the writer's goroutine while it is under
// parallelThreshold bytes, and in parallel blocks on every CPU once it is
// larger (pgzip). Both forms depend only on the bytes, so digests stay
// reproducible.
type LayerWriter struct {
	s    *store.Store
	bw   *store.BlobWriter
	diff hash.Hash // the whole tar
	size int64     // tar bytes so far
	// The member being written: its tar bytes are buffered in head until
	// they reach parallelThreshold, and hashed into part once Cut was
	// called (a layer never cut has no part anyone locates).
	part    hash.Hash
	cut     bool
	start   int64
	head    []byte
	pz      *pgzip.Writer
	last    *Part // the last member ended
	spliced bool
}

// A Part locates one gzip member of a layer blob: its Offset and Size in
// the blob, and the digest of the tar bytes it decompresses to ("" for a
// member written before the first Cut, which nothing locates).
type Part struct {
	Offset, Size int64
	TarDigest    string
}

// NewLayerWriter starts a layer blob in s. Commit stores it; Close
// discards it unless committed.
func NewLayerWriter(s *store.Store) (*LayerWriter, error) {
	bw, err := s.NewBlobWriter()
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	return &LayerWriter{s: s, bw: bw, diff: sha256.New(), part: sha256.New()}, nil
}

// Write adds tar bytes to the current member.
func (w *LayerWriter) Write(p []byte) (int, error) {
	if w.spliced {
		return 0, errors.New("writing layer: write after a spliced last part")
	}
	w.diff.Write(p)
	if w.cut {
		w.part.Write(p)
	}
	w.size += int64(len(p))
	if w.pz != nil {
		return w.pz.Write(p)
	}
	if len(w.head)+len(p) < parallelThreshold {
		w.head = append(w.head, p...)
		return len(p), nil
	}
	pz, err := pgzip.NewWriterLevel(w.bw, CompressionLevel)
	if err == nil {
		err = pz.SetConcurrency(parallelBlock, goruntime.NumCPU())
	}
	if err != nil {
		return 0, fmt.Errorf("writing layer: %w", err)
	}
	w.pz = pz
	if _, err := pz.Write(w.head); err != nil {
		return 0, err
	}
	w.head = nil
	return pz.Write(p)
}

// TarSize is the number of tar bytes written (or spliced) so far.
func (w *LayerWriter) TarSize() int64 { return w.size }

// Cut ends the current member, if anything was written to it: what is
// written next starts a new one. Call it between tar entries.
func (w *LayerWriter) Cut() error {
	if w.spliced {
		return errors.New("writing layer: cut after a spliced last part")
	}
	if w.pz != nil || len(w.head) > 0 {
		if err := w.endMember(); err != nil {
			return err
		}
	}
	w.cut = true // the members from here on are hashed
	return nil
}

// endMember compresses what is buffered and ends the member.
func (w *LayerWriter) endMember() error {
	if w.pz != nil {
		err := w.pz.Close()
		w.pz = nil
		if err != nil {
			return fmt.Errorf("writing layer: %w", err)
		}
	} else {
		gz, err := gzip.NewWriterLevel(w.bw, CompressionLevel)
		if err == nil {
			_, err = gz.Write(w.head)
		}
		if err == nil {
			err = gz.Close()
		}
		if err != nil {
			return fmt.Errorf("writing layer: %w", err)
		}
		w.head = w.head[:0]
	}
	end := w.bw.Size()
	w.last = &Part{Offset: w.start, Size: end - w.start}
	if w.cut {
		w.last.TarDigest = sumOf(w.part)
	}
	w.start = end
	w.part.Reset()
	return nil
}

func sumOf(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

// Splice ends the current member and appends, as the layer's last
// member, the bytes p locates in the store blob src. They must
// decompress to p.TarDigest: nothing stored is used unchecked. Nothing
// can be written after it.
func (w *LayerWriter) Splice(ctx context.Context, src string, p Part) error {
	if err := w.Cut(); err != nil {
		return err
	}
	f, err := w.s.OpenBlob(src)
	if err != nil {
		return fmt.Errorf("reusing a layer part: %w", err)
	}
	defer f.Close()
	// The member's bytes go into the blob and, decompressed, into the
	// layer's and the part's hashes.
	pr, pw := io.Pipe()
	unzipped := make(chan error, 1)
	go func() {
		zr, err := gzip.NewReader(pr)
		if err == nil {
			var n int64
			n, err = io.Copy(io.MultiWriter(w.diff, w.part), zr)
			w.size += n
		}
		pr.CloseWithError(err)
		unzipped <- err
	}()
	// Large reads: fewer writes to the blob and hand-offs to the reader.
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(io.MultiWriter(w.bw, pw), ctxReader{ctx, io.NewSectionReader(f, p.Offset, p.Size)}, buf)
	pw.CloseWithError(err)
	if uerr := <-unzipped; err == nil {
		err = uerr
	}
	if err == nil && n != p.Size {
		err = fmt.Errorf("blob %s is shorter than the part it should hold", src)
	}
	if got := sumOf(w.part); err == nil && got != p.TarDigest {
		err = fmt.Errorf("part of blob %s decompresses to %s, not %s", src, got, p.TarDigest)
	}
	if err != nil {
		return fmt.Errorf("reusing a layer part: %w", err)
	}
	w.last = &Part{Offset: w.start, Size: n, TarDigest: p.TarDigest}
	w.start += n
	w.spliced = true
	return nil
}

// Commit ends the last member and stores the blob. It returns the layer
// and where its last member is in the blob.
func (w *LayerWriter) Commit() (v1.Layer, *Part, error) {
	if !w.spliced && (w.pz != nil || len(w.head) > 0 || w.last == nil) {
		// An empty tar still gets its (empty) member.
		if err := w.endMember(); err != nil {
			return nil, nil, err
		}
	}
	dgst, size, err := w.bw.Commit("")
	if err != nil {
		return nil, nil, fmt.Errorf("writing layer: %w", err)
	}
	digest, err := v1.NewHash(dgst)
	if err != nil {
		return nil, nil, fmt.Errorf("writing layer: %w", err)
	}
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.diff.Sum(nil))}
	return StoreLayer(w.s, digest, diffID, size, types.OCILayer), w.last, nil
}

// Close discards the blob unless it was committed.
func (w *LayerWriter) Close() error { return w.bw.Close() }

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// StoreLayer returns a layer backed by the store blob digest, with the
// given (trusted, not rechecked) diffID, compressed size and media type.
func StoreLayer(s *store.Store, digest, diffID v1.Hash, size int64, mt types.MediaType) v1.Layer {
	return &storeLayer{s: s, digest: digest, diffID: diffID, size: size, mt: mt}
}

// storeLayer is a v1.Layer whose compressed form is a store blob.
type storeLayer struct {
	s      *store.Store
	digest v1.Hash
	diffID v1.Hash
	size   int64
	mt     types.MediaType
}

func (l *storeLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *storeLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *storeLayer) Size() (int64, error)                { return l.size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.mt, nil }

// Compressed opens the blob. It is verified as it streams: a blob whose
// bytes do not match its digest fails the read at its end (see
// store.OpenVerified), so no exporter or push passes it on.
func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	return l.open()
}

func (l *storeLayer) open() (io.ReadCloser, error) {
	rc, err := l.s.OpenVerified(l.digest.String(), l.size)
	if err != nil {
		return nil, fmt.Errorf("opening layer: %w", err)
	}
	return rc, nil
}

// Uncompressed opens the blob and decompresses it as its media type says.
func (l *storeLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := l.open()
	if err != nil {
		return nil, err
	}
	switch l.mt {
	case types.OCIUncompressedLayer, types.OCIUncompressedRestrictedLayer, types.DockerUncompressedLayer:
		return f, nil
	case types.OCILayerZStd:
		zr, err := zstd.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("decompressing layer %s: %w", l.digest, err)
		}
		return &readCloser{Reader: zr, close: func() error { zr.Close(); return f.Close() }}, nil
	default:
		gr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("decompressing layer %s: %w", l.digest, err)
		}
		return &readCloser{Reader: gr, close: func() error { gr.Close(); return f.Close() }}, nil
	}
}

// readCloser pairs a reader with a close function.
type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }
