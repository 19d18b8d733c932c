package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"math/rand"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/klauspost/compress/gzip"
)

// entries writes tar entries (no end blocks) for a directory with the
// given mtime and, when files is set, a large incompressible file and a
// small one below it.
func entries(t *testing.T, dirTime int64, files bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data []byte) {
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if !files {
		add(&tar.Header{Typeflag: tar.TypeDir, Name: "app/", Mode: 0o755, ModTime: time.Unix(dirTime, 0)}, nil)
	} else {
		big := make([]byte, 3<<20) // past parallelThreshold: pgzip
		rand.New(rand.NewSource(1)).Read(big)
		add(&tar.Header{Typeflag: tar.TypeDir, Name: "app/b/", Mode: 0o755, ModTime: time.Unix(5, 0)}, nil)
		add(&tar.Header{Typeflag: tar.TypeReg, Name: "app/b/big", Mode: 0o644, ModTime: time.Unix(5, 0)}, big)
		add(&tar.Header{Typeflag: tar.TypeReg, Name: "app/b/small", Mode: 0o644, ModTime: time.Unix(5, 0)}, []byte("small"))
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLayerWriterParts writes a layer whose first gzip member holds a
// COPY's files, then a second layer with other trailing entries whose
// first member is spliced from the first: both must be layers every
// reader takes, with the right digests, and a splice must give the blob
// writing the same bytes gives.
func TestLayerWriterParts(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	end := make([]byte, 1024)
	files := entries(t, 0, true)
	write := func(rest []byte, splice *Part, from string) ([]byte, *Part) {
		t.Helper()
		w, err := NewLayerWriter(s)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if splice != nil {
			if err := w.Splice(ctx, from, *splice); err != nil {
				t.Fatal(err)
			}
		} else {
			w.KeepHead()
			if _, err := w.Write(files); err != nil {
				t.Fatal(err)
			}
			if err := w.Cut(); err != nil {
				t.Fatal(err)
			}
		}
		rest = append(append([]byte(nil), rest...), end...)
		if _, err := w.Write(rest); err != nil {
			t.Fatal(err)
		}
		want := append(append([]byte(nil), files...), rest...)
		if w.TarSize() != int64(len(want)) {
			t.Errorf("TarSize = %d, want %d", w.TarSize(), len(want))
		}
		l, part, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Layer(l); err != nil {
			t.Errorf("validate.Layer: %v", err)
		}
		d, _ := l.Digest()
		if id, _ := l.DiffID(); id != sha(want) {
			t.Errorf("DiffID = %s, want %s", id, sha(want))
		}
		// ggcr reads the blob on its own: all members, concatenated.
		path, err := s.BlobPath(d.String())
		if err != nil {
			t.Fatal(err)
		}
		gl, err := tarball.LayerFromFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if gd, _ := gl.Digest(); gd != d {
			t.Errorf("ggcr digest %s, want %s", gd, d)
		}
		if gid, _ := gl.DiffID(); gid != sha(want) {
			t.Errorf("ggcr diffID %s, want %s", gid, sha(want))
		}
		blob, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The first member alone decompresses to the files.
		if part == nil || part.Size >= int64(len(blob)) || part.TarSize != int64(len(files)) {
			t.Fatalf("part %+v of a %d-byte blob", part, len(blob))
		}
		if part.Digest != sha(blob[:part.Size]).String() {
			t.Errorf("part digest %s, want %s", part.Digest, sha(blob[:part.Size]))
		}
		zr, err := gzip.NewReader(bytes.NewReader(blob[:part.Size]))
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, files) {
			t.Fatalf("first member: %d bytes (%v), want %d", len(got), err, len(files))
		}
		return blob, part
	}
	first, part := write(entries(t, 100, false), nil, "")
	firstDigest := sha(first).String()

	// Other trailing entries, the files spliced from the first blob.
	second, part2 := write(entries(t, 200, false), part, firstDigest)
	if !bytes.Equal(second[:part2.Size], first[:part.Size]) || !reflect.DeepEqual(part2, part) {
		t.Error("the spliced member differs from the one it came from")
	}
	// The first's entries again, spliced: the very blob writing gave.
	again, _ := write(entries(t, 100, false), part, sha(second).String())
	if !bytes.Equal(again, first) {
		t.Error("splicing gave another blob than writing the same tar")
	}

	// A part whose bytes do not hash to its digest, or whose hash state
	// is not one, is refused, and nothing is left behind.
	for _, bad := range []Part{
		{Size: part.Size, Digest: sha([]byte("other")).String(), TarSize: part.TarSize, TarState: part.TarState},
		{Size: part.Size - 1, Digest: part.Digest, TarSize: part.TarSize, TarState: part.TarState},
		{Size: int64(len(first)) + 1, Digest: part.Digest, TarSize: part.TarSize, TarState: part.TarState},
		{Size: part.Size, Digest: part.Digest, TarSize: part.TarSize, TarState: []byte("not a state")},
		{Size: 0, Digest: sha(nil).String(), TarSize: part.TarSize, TarState: part.TarState},
	} {
		w, err := NewLayerWriter(s)
		if err != nil {
			t.Fatal(err)
		}
		err = w.Splice(ctx, firstDigest, bad)
		if err == nil || !strings.Contains(err.Error(), "reusing a layer part") {
			t.Errorf("splice of %+v: err = %v", bad, err)
		}
		w.Close()
	}
	// A splice comes first.
	w, err := NewLayerWriter(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(files); err != nil {
		t.Fatal(err)
	}
	if err := w.Splice(ctx, firstDigest, *part); err == nil {
		t.Error("a splice after a write was taken")
	}
	w.Close()
	if left, _ := os.ReadDir(s.Path("tmp")); len(left) != 0 {
		t.Errorf("temp files left: %d", len(left))
	}
}
