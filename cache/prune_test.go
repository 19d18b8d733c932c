package cache

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"
)

// pruneFixture: A <- B <- {C, E}, and D alone. E changed no files, so it
// shares B's snapshot and has no layer.
type pruneFixture struct {
	c     *Cache
	keys  map[string]string // name -> key
	sizes map[string]int64  // snapshot -> size
}

func newPruneFixture(t *testing.T) *pruneFixture {
	t.Helper()
	f := &pruneFixture{c: openTest(t), keys: map[string]string{},
		sizes: map[string]int64{"snapA": 100, "snapB": 200, "snapC": 300, "snapD": 400}}
	specs := []struct {
		name, parent, snap string
		layer              int64
		age                time.Duration
	}{
		{"A", "", "snapA", 10, 5 * time.Hour},
		{"D", "", "snapD", 40, 4 * time.Hour},
		{"B", "A", "snapB", 20, 3 * time.Hour},
		{"E", "B", "snapB", 0, 2 * time.Hour},
		{"C", "B", "snapC", 30, 1 * time.Hour},
	}
	for _, s := range specs {
		f.keys[s.name] = testKey(s.name, 0)
		r := &Record{Key: f.keys[s.name], Parent: f.keys[s.parent], Snapshot: s.snap, Step: s.name}
		if s.layer > 0 {
			r.Layer = &LayerDesc{Digest: "sha256:layer" + s.name, Size: s.layer}
		}
		if err := f.c.Put(r); err != nil {
			t.Fatal(err)
		}
		setLastUsed(t, f.c, r.Key, time.Now().Add(-s.age))
	}
	return f
}

func (f *pruneFixture) sizeOf(s string) int64 { return f.sizes[s] }

// prune runs Prune, checking that every snapshot is removed only after no
// record refers to it, and returns the removed snapshots in order.
func (f *pruneFixture) prune(t *testing.T, keep int64) ([]string, PruneStats, error) {
	t.Helper()
	var removed []string
	st, err := f.c.Prune(context.Background(), Policy{Keep: keep}, f.sizeOf, func(_ context.Context, snap string) error {
		recs, err := f.c.Records()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Snapshot == snap {
				t.Errorf("removing %s while record %s still uses it", snap, r.Step)
			}
		}
		removed = append(removed, snap)
		return nil
	})
	return removed, st, err
}

func (f *pruneFixture) left(t *testing.T) []string {
	t.Helper()
	recs, err := f.c.Records()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Step)
	}
	slices.Sort(names)
	return names
}

func TestPrune(t *testing.T) {
	cases := []struct {
		name    string
		keep    int64
		removed []string
		left    []string
		stats   PruneStats
	}{
		{"nothing to do", 1100, nil, []string{"A", "B", "C", "D", "E"}, PruneStats{}},
		// A is least recently used; its dependents go first (E before C as
		// E is older), B's snapshot only once both B and E are gone.
		{"oldest with dependents", 500, []string{"snapC", "snapB", "snapA"}, []string{"D"},
			PruneStats{Records: 4, Snapshots: 3, Bytes: 660}},
		{"everything", -1, []string{"snapC", "snapB", "snapA", "snapD"}, nil,
			PruneStats{Records: 5, Snapshots: 4, Bytes: 1100}},
		{"zero", 0, []string{"snapC", "snapB", "snapA", "snapD"}, nil,
			PruneStats{Records: 5, Snapshots: 4, Bytes: 1100}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newPruneFixture(t)
			removed, st, err := f.prune(t, tc.keep)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(removed, tc.removed) {
				t.Errorf("removed %v, want %v", removed, tc.removed)
			}
			if got := f.left(t); !slices.Equal(got, tc.left) {
				t.Errorf("left %v, want %v", got, tc.left)
			}
			if st != tc.stats {
				t.Errorf("stats %+v, want %+v", st, tc.stats)
			}
		})
	}
}

func TestPruneLRU(t *testing.T) {
	c := openTest(t)
	order := []string{"Y", "Z", "X"} // least recently used first
	for i, name := range order {
		r := &Record{Key: testKey(name, 0), Snapshot: "snap" + name, Step: name}
		if err := c.Put(r); err != nil {
			t.Fatal(err)
		}
		setLastUsed(t, c, r.Key, time.Now().Add(time.Duration(i-10)*time.Minute))
	}
	c.Get(testKey("Y", 0)) // now the most recent
	var removed []string
	_, err := c.Prune(context.Background(), Policy{Keep: 150}, func(string) int64 { return 100 }, func(_ context.Context, s string) error {
		removed = append(removed, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"snapZ", "snapX"}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
}

func TestPruneRemoveError(t *testing.T) {
	f := newPruneFixture(t)
	boom := errors.New("boom")
	var removed []string
	_, err := f.c.Prune(context.Background(), Policy{Keep: -1}, f.sizeOf, func(_ context.Context, s string) error {
		if s == "snapB" {
			return boom
		}
		removed = append(removed, s)
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("Prune = %v, want boom", err)
	}
	if want := []string{"snapC", "snapA", "snapD"}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if left := f.left(t); len(left) != 0 {
		t.Errorf("records left: %v", left)
	}
}

func TestPruneRemovesLockFiles(t *testing.T) {
	f := newPruneFixture(t)
	for _, k := range f.keys {
		if k == "" {
			continue
		}
		unlock, err := f.c.Lock(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
	}
	if _, _, err := f.prune(t, -1); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(f.c.path("locks")); len(left) != 0 {
		t.Errorf("%d lock files left", len(left))
	}
	if left, _ := os.ReadDir(f.c.path("parents")); len(left) != 0 {
		t.Errorf("%d index directories left", len(left))
	}
}

func TestUsage(t *testing.T) {
	f := newPruneFixture(t)
	u, err := f.c.Usage(f.sizeOf)
	if err != nil {
		t.Fatal(err)
	}
	if u.Records != 5 || u.Snapshots != 4 || u.Size != 1100 || u.Reclaimable != 1100 {
		t.Errorf("Usage = %+v", u)
	}
	var steps []string
	for _, e := range u.Entries {
		steps = append(steps, e.Step)
	}
	if want := []string{"C", "E", "B", "D", "A"}; !slices.Equal(steps, want) {
		t.Errorf("entries %v, want %v (most recent first)", steps, want)
	}
	if u.Entries[0].Size != 330 {
		t.Errorf("C size = %d, want 330", u.Entries[0].Size)
	}
}

// TestPruneBefore: only records unused since before the cutoff go (with
// their dependents); newer ones stay.
func TestPruneBefore(t *testing.T) {
	f := newPruneFixture(t)
	var removed []string
	_, err := f.c.Prune(context.Background(), Policy{Keep: -1, Before: time.Now().Add(-4*time.Hour - 30*time.Minute)}, f.sizeOf,
		func(_ context.Context, s string) error { removed = append(removed, s); return nil })
	if err != nil {
		t.Fatal(err)
	}
	// A (5h) goes with its dependents B, E, C; D (4h) is newer than the cutoff.
	if want := []string{"snapC", "snapB", "snapA"}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if got := f.left(t); !slices.Equal(got, []string{"D"}) {
		t.Errorf("left %v, want [D]", got)
	}
}

// Content entries whose snapshot is gone, and unreadable ones, are
// pruned; the others, old plain-name ones included, stay and still
// answer.
func TestPruneContent(t *testing.T) {
	c := openTest(t)
	part := &ContentPart{Blob: "sha256:b", Size: 10, Digest: "sha256:d", TarSize: 20, TarState: []byte("s")}
	for name, snap := range map[string]string{"kept": "snapA", "gone": "snapB", "plain": "snapC"} {
		if err := c.PutContent(testKey(name, 0), snap, part); err != nil {
			t.Fatal(err)
		}
	}
	plain, err := keyHex(testKey("plain", 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.path("content", plain), []byte("snapC\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.path("content", "damaged"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := c.PruneContent(func(s string) bool { return s == "snapA" || s == "snapC" })
	if err != nil || n != 2 {
		t.Fatalf("PruneContent removed %d (%v), want 2", n, err)
	}
	if snap, got, ok := c.Content(testKey("kept", 0)); !ok || snap != "snapA" || got == nil || got.TarSize != 20 || string(got.TarState) != "s" {
		t.Errorf("kept entry: %q %+v %v", snap, got, ok)
	}
	if snap, got, ok := c.Content(testKey("plain", 0)); !ok || snap != "snapC" || got != nil {
		t.Errorf("plain entry: %q %+v %v", snap, got, ok)
	}
	if _, _, ok := c.Content(testKey("gone", 0)); ok {
		t.Error("the entry of a gone snapshot is still there")
	}
	left, err := os.ReadDir(c.path("content"))
	if err != nil || len(left) != 2 {
		t.Errorf("content entries left: %d (%v), want 2", len(left), err)
	}
}
