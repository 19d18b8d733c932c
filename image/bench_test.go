package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/store"
)

// bigImage stores an image of n random (incompressible) blobs of size
// bytes each, stored directly as layer blobs: exporters copy blobs and
// never look inside, so the content need not be a real gzip stream.
func bigImage(b *testing.B, s *store.Store, n int, size int64) v1.Image {
	b.Helper()
	var layers []v1.Layer
	for i := 0; i < n; i++ {
		d, sz, err := s.WriteBlob(io.LimitReader(rand.Reader, size), "")
		if err != nil {
			b.Fatal(err)
		}
		h, _ := v1.NewHash(d)
		layers = append(layers, StoreLayer(s, h, h, sz, types.OCILayer))
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		b.Fatal(err)
	}
	dgst, err := Save(context.Background(), s, img)
	if err != nil {
		b.Fatal(err)
	}
	loaded, err := Load(s, dgst.String())
	if err != nil {
		b.Fatal(err)
	}
	return loaded
}

func benchmarkExport(b *testing.B, mk func(string, []string) Exporter) {
	const layers, layerSize = 5, 100 << 20 // 500 MiB
	s := openStore(b)
	img := bigImage(b, s, layers, layerSize)
	out := filepath.Join(b.TempDir(), "out.tar")
	ctx := context.Background()
	b.SetBytes(layers * layerSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := mk(out, []string{"big:1"}).Export(ctx, img); err != nil {
			b.Fatal(err)
		}
		os.Remove(out)
	}
}

// BenchmarkExportOCI500MB exports a 500 MiB image as an OCI archive; the
// MB/s figure is what matters (target: a 500 MB image in well under 1 s).
func BenchmarkExportOCI500MB(b *testing.B) { benchmarkExport(b, NewOCIArchive) }

// BenchmarkExportDocker500MB is the same for a docker archive.
func BenchmarkExportDocker500MB(b *testing.B) { benchmarkExport(b, NewDockerArchive) }

// BenchmarkWriteLayer gzips and double-hashes a 64 MiB layer tar of
// half-compressible data into the store.
func BenchmarkWriteLayer(b *testing.B) {
	const size = 64 << 20
	data := make([]byte, size)
	rand.Read(data[:size/2])
	s := openStore(b)
	ctx := context.Background()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data[0] = byte(i) // a new blob each time
		if _, err := WriteLayer(ctx, s, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
