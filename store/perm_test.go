package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

// TestPrivateModes: the root is the owner's only and so are its blobs and
// names, for a new root and for one an older version left world-readable.
func TestPrivateModes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := s.WriteBlob(bytes.NewReader([]byte("private layer")), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("app", d); err != nil {
		t.Fatal(err)
	}
	blob, _ := s.BlobPath(d)
	check := func(when string) {
		t.Helper()
		if m := mode(t, root); m != 0o700 {
			t.Errorf("%s: root mode %o, want 700", when, m)
		}
		for _, p := range []string{blob, s.Path("names.json")} {
			if m := mode(t, p); m != 0o600 {
				t.Errorf("%s: %s mode %o, want 600", when, p, m)
			}
		}
	}
	check("new root")

	// What older versions left behind.
	for p, m := range map[string]os.FileMode{root: 0o755, blob: 0o644, s.Path("names.json"): 0o644} {
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	check("old root reopened")
}

// TestHoldCollect: holds are shared, Collect waits for every hold and says
// so once, and holds wait for Collect.
func TestHoldCollect(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	r1, err := s.Hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Hold(ctx) // shared
	if err != nil {
		t.Fatal(err)
	}
	waited := 0
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := s.Collect(short, func() { waited++ }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Collect while held: %v, want deadline exceeded", err)
	}
	if waited != 1 {
		t.Errorf("waiting called %d times, want 1", waited)
	}
	r1()
	r2()
	release, err := s.Collect(ctx, func() { t.Error("waiting called with no holder") })
	if err != nil {
		t.Fatal(err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := s.Hold(short2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Hold during Collect: %v, want deadline exceeded", err)
	}
	release()
	r, err := s.Hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r()
}
