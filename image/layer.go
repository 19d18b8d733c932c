package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
	bw, err := s.NewBlobWriter()
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	defer bw.Close()
	// Small layers (most RUN steps) are compressed in this goroutine;
	// larger ones in parallel blocks on every CPU. Both forms depend only
	// on the layer's bytes, so digests stay reproducible.
	src := ctxReader{ctx, tarStream}
	head := make([]byte, parallelThreshold)
	n, err := io.ReadFull(src, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	small := n < parallelThreshold
	var gz io.WriteCloser
	if small {
		gz, err = gzip.NewWriterLevel(bw, CompressionLevel)
	} else {
		var pz *pgzip.Writer
		if pz, err = pgzip.NewWriterLevel(bw, CompressionLevel); err == nil {
			err = pz.SetConcurrency(parallelBlock, goruntime.NumCPU())
		}
		gz = pz
	}
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	diff := sha256.New()
	w := io.MultiWriter(diff, gz)
	if _, err := w.Write(head[:n]); err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	if !small {
		if _, err := io.Copy(w, src); err != nil {
			return nil, fmt.Errorf("writing layer: %w", err)
		}
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	dgst, size, err := bw.Commit("")
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	digest, err := v1.NewHash(dgst)
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}
	return StoreLayer(s, digest, diffID, size, types.OCILayer), nil
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
