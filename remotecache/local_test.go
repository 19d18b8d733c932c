package remotecache

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lading-build/lading/store"
)

func localSpec(dir string) Spec { return Spec{Type: TypeLocal, Dir: dir} }

func TestLocalRoundTrip(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	entries := testEntries(t, st)
	dir := filepath.Join(t.TempDir(), "cache")
	sink, err := OpenSink(localSpec(dir), testOpts())
	must(t, err)
	must(t, sink.Export(ctx, st, entries))

	var idx struct {
		Version int
		Entries []json.RawMessage
	}
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	must(t, err)
	if err := json.Unmarshal(data, &idx); err != nil || idx.Version != 1 || len(idx.Entries) != 3 {
		t.Errorf("index.json: version %d, %d entries, %v", idx.Version, len(idx.Entries), err)
	}
	blobs, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	must(t, err)
	if len(blobs) != 2 {
		t.Errorf("%d blobs in the cache directory, want 2", len(blobs))
	}

	src, err := OpenSource(ctx, localSpec(dir), testOpts())
	must(t, err)
	checkSource(t, src, st, entries)

	// A damaged blob is rejected and nothing is stored.
	l := entries[2].Layer
	p, err := blobPath(dir, l.Digest)
	must(t, err)
	b, err := os.ReadFile(p)
	must(t, err)
	b[len(b)/2] ^= 0xff
	must(t, os.WriteFile(p, b, 0o644))
	fresh := openStore(t)
	err = src.FetchLayer(ctx, fresh, *l)
	if !errors.Is(err, store.ErrDigestMismatch) || !strings.Contains(err.Error(), dir) {
		t.Errorf("FetchLayer of a damaged blob: %v", err)
	}
	if fresh.HasBlob(l.Digest) {
		t.Error("damaged blob stored")
	}
	// A missing blob is an error too.
	must(t, os.Remove(p))
	if err := src.FetchLayer(ctx, fresh, *l); err == nil {
		t.Error("FetchLayer of a missing blob succeeded")
	}
	// Exporting again puts the blob back.
	must(t, sink.Export(ctx, st, entries))
	must(t, src.FetchLayer(ctx, fresh, *l))
}

func TestLocalMerge(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	entries := testEntries(t, st)
	dir := t.TempDir()
	sink, err := OpenSink(localSpec(dir), testOpts())
	must(t, err)
	must(t, sink.Export(ctx, st, entries[:2]))

	// Another machine exports the third step and a newer second step.
	st2 := openStore(t)
	newer := entries[1]
	newer.Created = newer.Created.Add(time.Hour)
	newer.Step = "ENV A=2"
	third := entries[2]
	third.Layer = writeLayer(t, st2, 2)
	must(t, sink.Export(ctx, st2, []Entry{newer, third}))

	// An older copy of a step does not replace the newer one.
	older := entries[1]
	older.Created = older.Created.Add(-time.Hour)
	must(t, sink.Export(ctx, st, []Entry{older}))

	src, err := OpenSource(ctx, localSpec(dir), testOpts())
	must(t, err)
	checkSource(t, src, st, []Entry{entries[0], newer, third})
}

func TestLocalMissingAndDamaged(t *testing.T) {
	ctx := context.Background()
	for _, dir := range []string{filepath.Join(t.TempDir(), "none"), t.TempDir()} {
		src, err := OpenSource(ctx, localSpec(dir), testOpts())
		if err != nil {
			t.Fatalf("missing cache %s: %v", dir, err)
		}
		if _, ok := src.Lookup(key("a")); ok {
			t.Error("empty source hit")
		}
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"version":1,"entries":[`), 0o644))
	if _, err := OpenSource(ctx, localSpec(dir), testOpts()); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("damaged index: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"version":2,"entries":[]}`), 0o644))
	if _, err := OpenSource(ctx, localSpec(dir), testOpts()); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("future index: %v", err)
	}
	// Malformed entries (a key that could escape the directory) are dropped.
	must(t, os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"version":1,"entries":[
		{"key":"sha256:../../etc","created":"2024-01-01T00:00:00Z"},
		{"key":"`+key("ok")+`","layer":{"digest":"sha256:../x","diffID":"`+key("d")+`","size":1,"mediaType":"m"},"created":"2024-01-01T00:00:00Z"},
		{"key":"`+key("good")+`","created":"2024-01-01T00:00:00Z"}]}`), 0o644))
	src, err := OpenSource(ctx, localSpec(dir), testOpts())
	must(t, err)
	if _, ok := src.Lookup(key("ok")); ok {
		t.Error("entry with a bad layer digest kept")
	}
	if _, ok := src.Lookup(key("good")); !ok {
		t.Error("good entry dropped")
	}
}

func TestExportRejects(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	entries := testEntries(t, st)
	bad := entries[0]
	bad.Key = "sha256:short"
	sink, err := OpenSink(localSpec(t.TempDir()), testOpts())
	must(t, err)
	if err := sink.Export(ctx, st, []Entry{bad}); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("bad key: %v", err)
	}
	// A layer the store lacks.
	if err := sink.Export(ctx, openStore(t), entries); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing layer: %v", err)
	}
}

func TestLocalConcurrentExports(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	entries := testEntries(t, st)
	dir := t.TempDir()
	errs := make(chan error, len(entries))
	for _, e := range entries {
		go func() {
			sink, err := OpenSink(localSpec(dir), testOpts())
			if err == nil {
				err = sink.Export(ctx, st, []Entry{e})
			}
			errs <- err
		}()
	}
	for range entries {
		must(t, <-errs)
	}
	src, err := OpenSource(ctx, localSpec(dir), testOpts())
	must(t, err)
	checkSource(t, src, st, entries)
}
