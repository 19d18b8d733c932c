package image

import (
	"context"
	"crypto/sha256"
	"encoding"
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
// any number of members, and readers concatenate them). When the layer
// starts with the same entries as an earlier one (a COPY's files), the
// earlier blob's first member is copied (Splice) instead of compressed
// again, and the diffID's hash resumes from its state after them, so the
// member is not even decompressed.
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
	// they reach parallelThreshold.
	head []byte
	pz   *pgzip.Writer
	// keepHead (KeepHead): the first Cut describes the first member in
	// first. That member starts the blob, so the blob's running digest
	// at the Cut is the member's.
	keepHead bool
	first    *Part
	members  int // members ended
}

// A Part describes a layer blob's first gzip member: its Size in bytes
// and their Digest, the TarSize bytes of tar it decompresses to, and
// TarState, the layer's diffID hash (sha256) after them
// (encoding.BinaryMarshaler form).
type Part struct {
	Size     int64
	Digest   string
	TarSize  int64
	TarState []byte
}

// NewLayerWriter starts a layer blob in s. Commit stores it; Close
// discards it unless committed.
func NewLayerWriter(s *store.Store) (*LayerWriter, error) {
	bw, err := s.NewBlobWriter()
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	return &LayerWriter{s: s, bw: bw, diff: sha256.New()}, nil
}

// KeepHead makes Commit describe the blob's first member (see Part),
// for a later Splice. Call it before writing.
func (w *LayerWriter) KeepHead() { w.keepHead = true }

// Write adds tar bytes to the current member.
func (w *LayerWriter) Write(p []byte) (int, error) {
	w.diff.Write(p)
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
	if w.pz == nil && len(w.head) == 0 {
		return nil
	}
	keep := w.keepHead && w.members == 0
	if err := w.endMember(); err != nil || !keep {
		return err
	}
	state, err := w.diff.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return fmt.Errorf("writing layer: %w", err)
	}
	w.first = &Part{Size: w.bw.Size(), Digest: w.bw.Digest(), TarSize: w.size, TarState: state}
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
	w.members++
	return nil
}

// Splice starts the layer with the first member of the store blob src,
// which p describes (Commit's Part for it): its bytes are copied, and
// must hash to p.Digest (nothing stored is used unchecked); the tar they
// hold is not read again, the diffID's hash resuming from p.TarState.
// Call it before writing anything.
func (w *LayerWriter) Splice(ctx context.Context, src string, p Part) error {
	if w.size != 0 || w.members != 0 {
		return errors.New("reusing a layer part: the layer has begun")
	}
	if p.Size <= 0 || p.TarSize <= 0 {
		return fmt.Errorf("reusing a layer part: a part of %d bytes holding %d tar bytes", p.Size, p.TarSize)
	}
	f, err := w.s.OpenBlob(src)
	if err != nil {
		return fmt.Errorf("reusing a layer part: %w", err)
	}
	defer f.Close()
	// Large reads: fewer writes to the blob. The part starts the blob, so
	// the blob's digest so far is the part's.
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(w.bw, ctxReader{ctx, io.NewSectionReader(f, 0, p.Size)}, buf)
	switch {
	case err != nil:
	case n != p.Size:
		err = fmt.Errorf("blob %s is shorter than the part it should hold", src)
	case w.bw.Digest() != p.Digest:
		err = fmt.Errorf("the first %d bytes of blob %s are not the part recorded", p.Size, src)
	default:
		err = w.diff.(encoding.BinaryUnmarshaler).UnmarshalBinary(p.TarState)
	}
	if err != nil {
		return fmt.Errorf("reusing a layer part: %w", err)
	}
	w.size = p.TarSize
	w.first = &p
	w.members = 1
	return nil
}

// Commit ends the last member and stores the blob. It returns the layer
// and, after KeepHead or Splice, what its first member is.
func (w *LayerWriter) Commit() (v1.Layer, *Part, error) {
	if w.pz != nil || len(w.head) > 0 || w.members == 0 {
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
	return StoreLayer(w.s, digest, diffID, size, types.OCILayer), w.first, nil
}

// Close discards the blob unless it was committed. A member still being
// compressed in parallel is ended first: its goroutines write to the
// blob.
func (w *LayerWriter) Close() error {
	if w.pz != nil {
		_ = w.pz.Close()
		w.pz = nil
	}
	return w.bw.Close()
}

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
