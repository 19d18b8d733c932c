package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// settle waits until files just written are older than the racy window,
// so their digests are recorded.
func settle() { time.Sleep(racyWindow + 50*time.Millisecond) }

func TestStatCacheFastPath(t *testing.T) {
	ctxDir, statDir := t.TempDir(), t.TempDir()
	writeTree(t, ctxDir, map[string]string{"a.txt": "hello", "b.txt": "world", "dir/": "", "l": "->a.txt"})
	settle()
	digestAll := func(sc *StatCache) []FileDigest {
		t.Helper()
		fds, err := DigestFiles(context.Background(), sc, walkFiles(t, ctxDir))
		if err != nil {
			t.Fatal(err)
		}
		return fds
	}
	open := func() *StatCache {
		t.Helper()
		sc, err := OpenStatCache(statDir, ctxDir)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}

	sc := open()
	first := digestAll(sc)
	if got, want := sc.Stats(), (StatStats{Hits: 0, Misses: 2}); got != want {
		t.Errorf("cold stats = %+v, want %+v", got, want)
	}
	if err := sc.Save(); err != nil {
		t.Fatal(err)
	}

	sc = open()
	if got := digestAll(sc); !slices.Equal(got, first) {
		t.Errorf("warm digests = %v, want %v", got, first)
	}
	if got, want := sc.Stats(), (StatStats{Hits: 2, Misses: 0}); got != want {
		t.Errorf("warm stats = %+v, want %+v", got, want)
	}
	info, _ := os.Stat(sc.path)
	if err := sc.Save(); err != nil { // nothing changed: no rewrite
		t.Fatal(err)
	}
	if info2, _ := os.Stat(sc.path); !info2.ModTime().Equal(info.ModTime()) {
		t.Error("Save rewrote an unchanged stat cache")
	}

	// Same size, mtime put back: only ctime tells; it must be re-read.
	p := filepath.Join(ctxDir, "a.txt")
	old, _ := os.Stat(p)
	if err := os.WriteFile(p, []byte("HELLO"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	sc = open()
	got := digestAll(sc)
	if got[0] == first[0] {
		t.Error("rewritten a.txt kept its digest")
	}
	if got[1] != first[1] {
		t.Error("b.txt digest changed")
	}
	if got, want := sc.Stats(), (StatStats{Hits: 1, Misses: 1}); got != want {
		t.Errorf("stats after rewrite = %+v, want %+v", got, want)
	}
}

func TestStatCacheRacyNotRecorded(t *testing.T) {
	ctxDir, statDir := t.TempDir(), t.TempDir()
	writeTree(t, ctxDir, map[string]string{"fresh": "x"})
	sc, _ := OpenStatCache(statDir, ctxDir)
	for range 2 {
		if _, err := sc.Digest(File{Rel: "fresh", Abs: filepath.Join(ctxDir, "fresh")}); err != nil {
			t.Fatal(err)
		}
	}
	if got := sc.Stats(); got.Hits != 0 || got.Misses != 2 {
		t.Errorf("stats = %+v: a just-written file must be re-read", got)
	}
}

func TestStatCacheDamagedFile(t *testing.T) {
	ctxDir, statDir := t.TempDir(), t.TempDir()
	writeTree(t, ctxDir, map[string]string{"a": "1", "b": "2"})
	settle()
	sc, _ := OpenStatCache(statDir, ctxDir)
	want, err := DigestFiles(context.Background(), sc, walkFiles(t, ctxDir))
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Save(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(sc.path)
	for _, damaged := range [][]byte{data[:len(data)/2], append(slices.Clone(data[:20]), data[21:]...), {}, []byte("garbage")} {
		if err := os.WriteFile(sc.path, damaged, 0o644); err != nil {
			t.Fatal(err)
		}
		sc, err := OpenStatCache(statDir, ctxDir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DigestFiles(context.Background(), sc, walkFiles(t, ctxDir))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) || sc.Stats().Hits != 0 {
			t.Errorf("damaged stat cache: digests %v stats %+v", got, sc.Stats())
		}
	}
}

func TestStatCacheConcurrent(t *testing.T) {
	ctxDir := t.TempDir()
	tree := map[string]string{}
	for i := range 200 {
		tree[fmt.Sprintf("f%03d", i)] = fmt.Sprint(i)
	}
	writeTree(t, ctxDir, tree)
	sc, _ := OpenStatCache(t.TempDir(), ctxDir)
	files := walkFiles(t, ctxDir)
	want, err := DigestFiles(context.Background(), sc, files)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := DigestFiles(context.Background(), sc, files)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("concurrent DigestFiles: %v", err)
			}
			if err := sc.Save(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestDigestFilesCanceled(t *testing.T) {
	ctxDir := t.TempDir()
	writeTree(t, ctxDir, map[string]string{"a": "1"})
	sc, _ := OpenStatCache(t.TempDir(), ctxDir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := DigestFiles(ctx, sc, walkFiles(t, ctxDir)); err == nil {
		t.Error("DigestFiles with a canceled context succeeded")
	}
	if _, err := DigestFiles(context.Background(), sc, []File{{Rel: "x", Abs: filepath.Join(ctxDir, "missing")}}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

// bigTree writes n small files in 100 directories and waits until they
// are past the racy window.
func bigTree(tb testing.TB, n int) (string, []File) {
	tb.Helper()
	dir := tb.TempDir()
	for d := range 100 {
		if err := os.Mkdir(filepath.Join(dir, fmt.Sprintf("d%02d", d)), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("file%05d.txt", i))
		if err := os.WriteFile(p, fmt.Appendf(nil, "content of file %d\n", i), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	settle()
	return dir, walkFiles(tb, dir)
}

// warmCache digests files once, saves, and reopens the stat cache.
func warmCache(tb testing.TB, ctxDir string, files []File) (*StatCache, []FileDigest) {
	tb.Helper()
	statDir := tb.TempDir()
	sc, _ := OpenStatCache(statDir, ctxDir)
	want, err := DigestFiles(context.Background(), sc, files)
	if err != nil {
		tb.Fatal(err)
	}
	if err := sc.Save(); err != nil {
		tb.Fatal(err)
	}
	sc, err = OpenStatCache(statDir, ctxDir)
	if err != nil {
		tb.Fatal(err)
	}
	return sc, want
}

func TestDigestFilesWarm20k(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000 files")
	}
	ctxDir, files := bigTree(t, 20000)
	start := time.Now()
	sc, want := warmCache(t, ctxDir, files)
	t.Logf("cold: %v for %d files (incl. save and reopen)", time.Since(start), len(files))
	start = time.Now()
	got, err := DigestFiles(context.Background(), sc, files)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("warm: %v", elapsed)
	if !slices.Equal(got, want) {
		t.Error("warm digests differ from cold ones")
	}
	if st := sc.Stats(); st.Misses != 0 || st.Hits != 20000 {
		t.Errorf("warm stats = %+v, want 20000 hits and no misses", st)
	}
}

// BenchmarkDigestFilesWarm: an unchanged 20,000-file context, stat already
// done by the caller's walk (File.Info set).
func BenchmarkDigestFilesWarm(b *testing.B) {
	ctxDir, files := bigTree(b, 20000)
	sc, _ := warmCache(b, ctxDir, files)
	b.ResetTimer()
	for b.Loop() {
		if _, err := DigestFiles(context.Background(), sc, files); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sc.Stats().Misses), "misses")
}

// BenchmarkDigestFilesWarmLstat: the same with Info nil, so DigestFiles
// does the lstat itself.
func BenchmarkDigestFilesWarmLstat(b *testing.B) {
	ctxDir, files := bigTree(b, 20000)
	sc, _ := warmCache(b, ctxDir, files)
	bare := make([]File, len(files))
	for i, f := range files {
		bare[i] = File{Rel: f.Rel, Abs: f.Abs}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := DigestFiles(context.Background(), sc, bare); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStatCodec: decodeStat gives back what encodeStat wrote, and a body
// cut anywhere (with a checksum that matches it) is refused, not misread.
func TestStatCodec(t *testing.T) {
	entries := map[string]statEntry{}
	for i := range 300 {
		e := statEntry{dev: uint64(i), ino: 1 << 40, mode: 0o100644, uid: 1000, gid: 0, size: int64(i * 1000), mtime: -5, ctime: 1 << 50, seen: int64(i)}
		e.sum[0], e.sum[31] = byte(i), 0xff
		entries[fmt.Sprintf("/ctx/dir%d/file-%d", i%7, i)] = e
	}
	data := encodeStat(entries)
	got, err := decodeStat(data)
	if err != nil || !maps.Equal(got, entries) {
		t.Fatalf("round trip: %d entries, err %v", len(got), err)
	}
	body := data[:len(data)-sha256.Size]
	for cut := len(statMagic); cut < len(body); cut += 7 {
		short := slices.Clone(body[:cut])
		sum := sha256.Sum256(short)
		if got, err := decodeStat(append(short, sum[:]...)); err == nil {
			t.Fatalf("body cut at %d of %d decoded to %d entries", cut, len(body), len(got))
		}
	}
}
