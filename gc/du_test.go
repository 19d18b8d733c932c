package gc_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/gc"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

// TestDiskUsageRecords counts the cache records of a part with snapshots
// (listed with their sizes) and of one without (counted only).
func TestDiskUsageRecords(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	put := func(part gc.Part, n int) {
		t.Helper()
		c, err := cache.Open(st.Path(part.Cache))
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			key := fmt.Sprintf("sha256:%064x", n*100+i)
			if err := c.Put(&cache.Record{Key: key, Snapshot: fmt.Sprintf("s%d", i), Step: fmt.Sprint("RUN ", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	parts := gc.Parts()
	overlay, native := parts[0], parts[1]
	if overlay.Name != "overlay" || native.Name != "native" {
		t.Fatalf("parts %v", parts)
	}
	put(overlay, 1) // no snapshots/overlay: counted, not listed
	put(native, 2)
	sn, err := snapshot.NewNative(st.Path(native.Snapshots))
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()

	u, err := gc.DiskUsage(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var count int
	for _, c := range u.Categories {
		if c.Name == gc.CacheRecords {
			count = c.Count
		}
	}
	if count != 3 {
		t.Errorf("%d cache records, want 3", count)
	}
	if len(u.Records) != 2 {
		t.Errorf("listed %d records, want the native part's 2: %+v", len(u.Records), u.Records)
	}
}
