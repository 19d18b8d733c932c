package remotecache

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/store"
)

// testOpts are RemoteOptions for tests: no credentials (never the
// user's ~/.docker/config.json), no retry delays.
func testOpts(insecure ...string) image.RemoteOptions {
	return image.RemoteOptions{Keychain: authn.NewMultiKeychain(), Retries: -1, Insecure: insecure}
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// key returns a step key made from s.
func key(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// writeLayer stores a layer of one random file with image.WriteLayer.
func writeLayer(t *testing.T, st *store.Store, seed uint64) *cache.LayerDesc {
	t.Helper()
	data := make([]byte, 32<<10)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "file", Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := image.WriteLayer(context.Background(), st, &buf)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := l.Digest()
	diff, _ := l.DiffID()
	size, _ := l.Size()
	mt, _ := l.MediaType()
	return &cache.LayerDesc{Digest: d.String(), DiffID: diff.String(), Size: size, MediaType: string(mt)}
}

// testEntries returns a stage of three steps: two with layers (written
// to st), the middle one without.
func testEntries(t *testing.T, st *store.Store) []Entry {
	t.Helper()
	created := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	return []Entry{
		{Key: key("a"), Layer: writeLayer(t, st, 1), Created: created, Stage: "build", Step: "RUN make"},
		{Key: key("b"), Parent: key("a"), Created: created.Add(time.Second), Stage: "build", Step: "ENV A=1"},
		{Key: key("c"), Parent: key("b"), Layer: writeLayer(t, st, 2), Created: created.Add(2 * time.Second), Stage: "build", Step: "COPY . /src"},
	}
}

func sameEntry(a, b Entry) bool {
	a.Created, b.Created = a.Created.UTC(), b.Created.UTC()
	return reflect.DeepEqual(a, b)
}

// checkSource checks that src has every entry and that FetchLayer puts
// their blobs, byte for byte, into a fresh store.
func checkSource(t *testing.T, src Source, from *store.Store, want []Entry) {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	for _, w := range want {
		got, ok := src.Lookup(w.Key)
		if !ok {
			t.Errorf("Lookup(%s): miss", w.Step)
			continue
		}
		if !sameEntry(got, w) {
			t.Errorf("Lookup(%s) = %+v, want %+v", w.Step, got, w)
		}
		if w.Layer == nil {
			continue
		}
		if err := src.FetchLayer(ctx, st, *w.Layer); err != nil {
			t.Fatalf("FetchLayer(%s): %v", w.Step, err)
		}
		if got, want := readBlob(t, st, w.Layer.Digest), readBlob(t, from, w.Layer.Digest); !bytes.Equal(got, want) {
			t.Errorf("blob of %s differs after FetchLayer", w.Step)
		}
		if err := src.FetchLayer(ctx, st, *w.Layer); err != nil {
			t.Errorf("second FetchLayer(%s): %v", w.Step, err)
		}
	}
	if _, ok := src.Lookup(key("nope")); ok {
		t.Error("Lookup of an unknown key hit")
	}
}

func readBlob(t *testing.T, st *store.Store, digest string) []byte {
	t.Helper()
	f, err := st.OpenBlob(digest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startRegistry serves ggcr's in-memory registry on 127.0.0.1, wrapped by
// wrap when not nil, and returns its host:port.
func startRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
