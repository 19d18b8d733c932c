package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
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
