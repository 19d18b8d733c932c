package cache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPutGet(t *testing.T) {
	c := openTest(t)
	parent := testKey("parent", 0)
	want := testRecord(testKey("k", 0), parent)
	if _, ok := c.Get(want.Key); ok {
		t.Fatal("Get before Put hit")
	}
	if err := c.Put(want); err != nil {
		t.Fatal(err)
	}
	got, ok := c.Get(want.Key)
	if !ok {
		t.Fatal("Get after Put missed")
	}
	if time.Since(got.LastUsed) > time.Minute {
		t.Errorf("LastUsed = %v", got.LastUsed)
	}
	got.LastUsed, want.LastUsed = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %+v\nwant %+v", got, want)
	}
	recs, err := c.Records()
	if err != nil || len(recs) != 1 || recs[0].Key != want.Key {
		t.Errorf("Records = %v, %v", recs, err)
	}
	if err := c.Delete(want.Key); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get(want.Key); ok {
		t.Error("Get after Delete hit")
	}
	if got := c.children(parent); len(got) != 0 {
		t.Errorf("index still lists %d records", len(got))
	}
}

func TestPutDefaultsAndNilLayer(t *testing.T) {
	c := openTest(t)
	r := &Record{Key: testKey("k", 1), Snapshot: "s"}
	if err := c.Put(r); err != nil {
		t.Fatal(err)
	}
	got, ok := c.Get(r.Key)
	if !ok || got.Layer != nil || got.Created.IsZero() {
		t.Errorf("Get = %+v, %v", got, ok)
	}
}

func TestGetUpdatesLastUsed(t *testing.T) {
	c := openTest(t)
	r := testRecord(testKey("k", 0), "")
	if err := c.Put(r); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	setLastUsed(t, c, r.Key, old)
	recs, _ := c.Records()
	if !recs[0].LastUsed.Equal(old) {
		t.Fatalf("LastUsed = %v, want %v", recs[0].LastUsed, old)
	}
	c.Get(r.Key)
	recs, _ = c.Records()
	if time.Since(recs[0].LastUsed) > time.Minute {
		t.Errorf("Get did not update LastUsed: %v", recs[0].LastUsed)
	}
}

func TestBadKeys(t *testing.T) {
	c := openTest(t)
	for _, k := range []string{"", "sha256:", "sha256:../../etc/passwd", "sha256:" + strings.Repeat("A", 64), "md5:" + strings.Repeat("a", 64), strings.Repeat("a", 64)} {
		if _, ok := c.Get(k); ok {
			t.Errorf("Get(%q) hit", k)
		}
		if err := c.Put(&Record{Key: k}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", k, err)
		}
		if _, err := c.Lock(context.Background(), k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Lock(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	if err := c.Put(&Record{Key: testKey("k", 0), Parent: "nope"}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Put with bad parent = %v, want ErrInvalidKey", err)
	}
}

// TestCrashLeftovers: whatever a kill -9 (or a crash of a filesystem
// without ordered data) can leave is never returned.
func TestCrashLeftovers(t *testing.T) {
	c := openTest(t)
	good := testRecord(testKey("good", 0), "")
	if err := c.Put(good); err != nil {
		t.Fatal(err)
	}
	h, _ := keyHex(good.Key)
	data, err := os.ReadFile(c.path("records", h))
	if err != nil {
		t.Fatal(err)
	}
	other := testRecord(testKey("other", 0), "")
	otherData, _ := encodeRecord(other)
	flipped := []byte(string(data))
	flipped[len(flipped)-10] ^= 1
	cases := map[string][]byte{
		"empty":            {},
		"header only":      data[:strings.IndexByte(string(data), '\n')+1],
		"half":             data[:len(data)/2],
		"one byte short":   data[:len(data)-1],
		"one byte extra":   append([]byte(string(data)), ' '),
		"bit flipped":      flipped,
		"zeros":            make([]byte, len(data)),
		"other key's file": otherData,
		"bare json":        data[strings.IndexByte(string(data), '\n')+1:],
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			key := testKey(name, 0)
			kh, _ := keyHex(key)
			if err := os.WriteFile(c.path("records", kh), content, 0o644); err != nil {
				t.Fatal(err)
			}
			if r, ok := c.Get(key); ok {
				t.Errorf("Get returned %+v", r)
			}
		})
	}
	// A temp file of a Put killed before its rename is invisible, and
	// removed by a later Open once stale.
	tmp := c.path("tmp", ".tmp-123")
	if err := os.WriteFile(tmp, data[:10], 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := c.Records()
	if err != nil || len(recs) != 1 || recs[0].Key != good.Key {
		t.Errorf("Records = %d records, %v; want only the good one", len(recs), err)
	}
	old := time.Now().Add(-2 * staleTemp)
	os.Chtimes(tmp, old, old)
	if _, err := Open(c.Dir()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("stale temp file survived Open: %v", err)
	}
	if _, ok := c.Get(good.Key); !ok {
		t.Error("good record lost")
	}
}

func TestConcurrentPutGoroutines(t *testing.T) {
	c := openTest(t)
	const workers, n = 8, 30
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range n {
				// Half the keys are shared by all workers, half their own.
				key := testKey("shared", i)
				if i%2 == 1 {
					key = testKey(fmt.Sprint("own", w), i)
				}
				if err := c.Put(testRecord(key, "")); err != nil {
					t.Error(err)
					return
				}
				if r, ok := c.Get(testKey("shared", i)); ok && r.Key != testKey("shared", i) {
					t.Errorf("Get returned record %s", r.Key)
				}
			}
		})
	}
	wg.Wait()
	recs, err := c.Records()
	if err != nil {
		t.Fatal(err)
	}
	if want := n/2 + workers*n/2; len(recs) != want {
		t.Errorf("%d records, want %d", len(recs), want)
	}
	if left, _ := os.ReadDir(c.path("tmp")); len(left) != 0 {
		t.Errorf("%d temp files left", len(left))
	}
}

func TestConcurrentPutProcesses(t *testing.T) {
	c := openTest(t)
	const n = 100
	var waits []func() error
	for _, prefix := range []string{"p", "q", "p"} { // two processes share keys
		waits = append(waits, startHelper(t, io.Discard, "put", c.Dir(), prefix, fmt.Sprint(n)))
	}
	for _, wait := range waits {
		if err := wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}
	recs, err := c.Records()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2*n {
		t.Errorf("%d records, want %d", len(recs), 2*n)
	}
	for _, prefix := range []string{"p", "q"} {
		for i := range n {
			if _, ok := c.Get(testKey(prefix, i)); !ok {
				t.Errorf("record %s%d missing", prefix, i)
			}
		}
	}
}

// TestTwoBuildsShareSteps: two processes running the builder's protocol
// over the same steps run each step exactly once and both succeed.
func TestTwoBuildsShareSteps(t *testing.T) {
	c := openTest(t)
	const n = 40
	log := filepath.Join(t.TempDir(), "ran.log")
	w1 := startHelper(t, io.Discard, "step", c.Dir(), fmt.Sprint(n), log)
	w2 := startHelper(t, io.Discard, "step", c.Dir(), fmt.Sprint(n), log)
	if err := runSteps(context.Background(), c, n, log); err != nil {
		t.Fatal(err)
	}
	for _, w := range []func() error{w1, w2} {
		if err := w(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		seen[line]++
	}
	for i := range n {
		if k := fmt.Sprintf("ran %d", i); seen[k] != 1 {
			t.Errorf("step %d ran %d times", i, seen[k])
		}
	}
}

func TestLockProcesses(t *testing.T) {
	c := openTest(t)
	key := testKey("lock", 0)
	unlock, err := c.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	// A process that cannot wait long enough fails.
	var out syncBuffer
	if err := startHelper(t, &out, "lock", c.Dir(), key, "100ms")(); err == nil || out.String() != "" {
		t.Errorf("helper locked a held key: %v, %q", err, out.String())
	}
	// One that waits gets the lock once we release it, not before.
	out.Reset()
	wait := startHelper(t, &out, "lock", c.Dir(), key, "30s")
	time.Sleep(300 * time.Millisecond)
	if out.String() != "" {
		t.Error("helper locked a held key")
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil || out.String() != "locked\n" {
		t.Fatalf("helper: %v, %q", err, out.String())
	}
	// Another key is independent.
	out.Reset()
	unlock, _ = c.Lock(context.Background(), key)
	defer unlock()
	if err := startHelper(t, &out, "lock", c.Dir(), testKey("lock", 1), "60s")(); err != nil {
		t.Errorf("locking another key: %v", err)
	}
}

func TestLockGoroutines(t *testing.T) {
	c := openTest(t)
	key := testKey("lock", 0)
	var mu sync.Mutex
	inside, peak := 0, 0
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			unlock, err := c.Lock(context.Background(), key)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			peak = max(peak, inside)
			mu.Unlock()
			time.Sleep(15 * time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			if err := unlock(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if peak != 1 {
		t.Errorf("%d goroutines held the lock at once", peak)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	unlock, _ := c.Lock(context.Background(), key)
	defer unlock()
	if _, err := c.Lock(ctx, key); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock of a held key = %v, want DeadlineExceeded", err)
	}
}

// TestLockFileRemoved: a lock file removed while held (as Prune does) does
// not let two holders in.
func TestLockFileRemoved(t *testing.T) {
	c := openTest(t)
	key := testKey("lock", 0)
	unlock, err := c.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func() error)
	go func() {
		u, err := c.Lock(context.Background(), key) // opens the old file, waits
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	time.Sleep(50 * time.Millisecond)
	h, _ := keyHex(key)
	os.Remove(c.path("locks", h))
	unlock()
	u2 := <-got // re-opened the new file after noticing
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Lock(ctx, key); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("third Lock = %v, want DeadlineExceeded", err)
	}
	u2()
}

// TestKill9DuringPuts kills a process in the middle of storing records:
// every record a later Get returns is whole and correct.
func TestKill9DuringPuts(t *testing.T) {
	c := openTest(t)
	// Each helper is killed as soon as it reports k records stored, in
	// the middle of storing the next ones.
	for round, k := range []int{1, 40, 300} {
		cmd := execSelf(strings.Join([]string{"put", c.Dir(), fmt.Sprint("kill", round), "100000", fmt.Sprint(k)}, "|"))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		cmd.Process.Kill() // SIGKILL
		cmd.Wait()
		if line != "stored\n" {
			t.Fatalf("helper stopped before storing %d records: %q, %v", k, line, err)
		}
	}
	if _, err := Open(c.Dir()); err != nil {
		t.Fatal(err)
	}
	recs, err := c.Records()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatal("no record written before the kills")
	}
	known := map[string]bool{} // the helpers write keys in order, fsync-bound
	for round := range 3 {
		for i := range 5000 {
			known[testKey(fmt.Sprint("kill", round), i)] = true
		}
	}
	for _, r := range recs {
		got, ok := c.Get(r.Key)
		if !ok {
			t.Fatalf("listed record %s not returned by Get", r.Key)
		}
		if !known[r.Key] {
			t.Fatalf("unknown record %s", r.Key)
		}
		want := testRecord(r.Key, "")
		got.LastUsed = time.Time{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("record %s differs from what was Put", r.Key)
		}
	}
	t.Logf("%d whole records survived 3 kills", len(recs))
}

// TestRecordModes: records are the owner's only, also in a cache an older
// version left world-readable.
func TestRecordModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := testKey("record-modes", 0)
	if err := c.Put(&Record{Key: key, Snapshot: "s"}); err != nil {
		t.Fatal(err)
	}
	h, _ := keyHex(key)
	rec := c.path("records", h)
	perm := func(p string) os.FileMode {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return info.Mode().Perm()
	}
	if m := perm(rec); m != 0o600 {
		t.Errorf("record mode %o, want 600", m)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(rec, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if m := perm(dir); m != 0o700 {
		t.Errorf("cache dir mode %o, want 700", m)
	}
	if m := perm(rec); m != 0o600 {
		t.Errorf("old record mode %o, want 600", m)
	}
}
