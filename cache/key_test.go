package cache

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestKeyFormat(t *testing.T) {
	k := NewKey("").Add(FieldInstruction, "RUN make").Sum()
	if _, err := keyHex(k); err != nil {
		t.Fatalf("Sum() = %q: %v", k, err)
	}
	if k2 := NewKey("").Add(FieldInstruction, "RUN make").Sum(); k2 != k {
		t.Errorf("same fields gave %s and %s", k, k2)
	}
}

// TestKeyFields: changing any one field's value changes the key.
func TestKeyFields(t *testing.T) {
	base := [][2]string{
		{FieldBase, "sha256:" + strings.Repeat("1", 64)},
		{FieldInstruction, "RUN make"},
		{FieldArg, "VERSION=1"},
		{FieldEnv, "A=1\x00B=2"},
		{"shell", "/bin/sh\x00-c"},
		{"user", "app"},
		{"workdir", "/src"},
		{"network", "default"},
		{"mounts", "type=cache,target=/root/.cache"},
	}
	build := func(parent string, fields [][2]string) string {
		k := NewKey(parent)
		for _, f := range fields {
			k.Add(f[0], f[1])
		}
		return k.Sum()
	}
	parent := testKey("p", 0)
	seen := map[string]string{build(parent, base): "base"}
	for i, f := range base {
		for _, v := range []string{f[1] + "x", "", strings.ToUpper(f[1])} {
			if v == f[1] {
				continue
			}
			fields := slices.Clone(base)
			fields[i][1] = v
			k := build(parent, fields)
			name := f[0] + "=" + v
			if prev, ok := seen[k]; ok {
				t.Errorf("%q gives the same key as %q", name, prev)
			}
			seen[k] = name
		}
	}
	if k := build(testKey("p", 1), base); seen[k] != "" {
		t.Errorf("another parent gives the same key as %q", seen[k])
	}
	if k := build(parent, base[1:]); seen[k] != "" {
		t.Errorf("dropping a field gives the same key as %q", seen[k])
	}
}

// TestKeyUnambiguous: field sequences that string concatenation would
// confuse give different keys.
func TestKeyUnambiguous(t *testing.T) {
	fd := func(p, d string) FileDigest { return FileDigest{Path: p, Digest: d} }
	cases := []struct {
		name string
		k    *KeyBuilder
	}{
		{"a=bc", NewKey("").Add("a", "bc")},
		{"ab=c", NewKey("").Add("ab", "c")},
		{"a=b,c=", NewKey("").Add("a", "b").Add("c", "")},
		{"a=b\\0c", NewKey("").Add("a", "b\x00c")},
		{"a=b\\0c=", NewKey("").Add("a", "b\x00c\x00")},
		{"a=", NewKey("").Add("a", "")},
		{"empty", NewKey("")},
		{"parent x", NewKey("x")},
		{"parent '' + x", NewKey("").Add("", "x")},
		{"c=,a=b", NewKey("").Add("c", "").Add("a", "b")},
		{"files a", NewKey("").AddFiles("a", nil)},
		{"files a:b", NewKey("").AddFiles("a", []FileDigest{fd("b", "")})},
		{"files a:bc", NewKey("").AddFiles("a", []FileDigest{fd("b", "c")})},
		{"files a:b,c", NewKey("").AddFiles("a", []FileDigest{fd("b", ""), fd("c", "")})},
		{"files a:b-c", NewKey("").AddFiles("a", []FileDigest{fd("b-c", "")})},
		{"files a:b\\nc", NewKey("").AddFiles("a", []FileDigest{fd("b\nc", "")})},
	}
	seen := map[string]string{}
	for _, c := range cases {
		k := c.k.Sum()
		if prev, ok := seen[k]; ok {
			t.Errorf("%s and %s give the same key", c.name, prev)
		}
		seen[k] = c.name
	}
}

func TestKeyFileOrder(t *testing.T) {
	files := []FileDigest{{"b", "sha256:2"}, {"a", "sha256:1"}, {"c/d", "sha256:3"}}
	k1 := NewKey("").AddFiles(FieldFiles, files)
	rev := slices.Clone(files)
	slices.Reverse(rev)
	k2 := NewKey("").AddFiles(FieldFiles, rev)
	if k1.Sum() != k2.Sum() {
		t.Error("reordering files changed the key")
	}
	if got := k1.Inputs()[0].Files; !slices.IsSortedFunc(got, compareFiles) {
		t.Errorf("Inputs files not sorted: %v", got)
	}
	if files[0].Path != "b" {
		t.Error("AddFiles reordered the caller's slice")
	}
}

// treeKey digests every file under dir with a fresh stat cache.
func treeKey(t *testing.T, dir string) string {
	t.Helper()
	sc, err := OpenStatCache(t.TempDir(), dir)
	if err != nil {
		t.Fatal(err)
	}
	files := walkFiles(t, dir)
	fds, err := DigestFiles(context.Background(), sc, files)
	if err != nil {
		t.Fatal(err)
	}
	return NewKey("").Add(FieldInstruction, "COPY . /").AddFiles(FieldFiles, fds).Sum()
}

// TestKeyFileChanges: every kind of change to a source file changes the
// key, and touching a file or reordering the walk does not.
func TestKeyFileChanges(t *testing.T) {
	tree := map[string]string{
		"main.go":     "package main\n",
		"lib/util.go": "package lib\n",
		"lib/empty/":  "",
		"link":        "->main.go",
	}
	cases := []struct {
		name   string
		root   bool // needs root (chown)
		change func(dir string) error
		same   bool
	}{
		{"content", false, func(d string) error {
			return os.WriteFile(filepath.Join(d, "main.go"), []byte("package xxxx\n"), 0o644)
		}, false},
		{"mode", false, func(d string) error { return os.Chmod(filepath.Join(d, "main.go"), 0o755) }, false},
		{"dir mode", false, func(d string) error { return os.Chmod(filepath.Join(d, "lib/empty"), 0o700) }, false},
		{"uid", true, func(d string) error { return os.Lchown(filepath.Join(d, "main.go"), 1000, 0) }, false},
		{"gid", true, func(d string) error { return os.Lchown(filepath.Join(d, "main.go"), 0, 1000) }, false},
		{"symlink owner", true, func(d string) error { return os.Lchown(filepath.Join(d, "link"), 1000, 1000) }, false},
		{"symlink target", false, func(d string) error {
			p := filepath.Join(d, "link")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("lib/util.go", p)
		}, false},
		{"file to symlink", false, func(d string) error {
			p := filepath.Join(d, "main.go")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("package main\n", p)
		}, false},
		{"added", false, func(d string) error { return os.WriteFile(filepath.Join(d, "new.go"), nil, 0o644) }, false},
		{"removed", false, func(d string) error { return os.Remove(filepath.Join(d, "lib/util.go")) }, false},
		{"renamed", false, func(d string) error {
			return os.Rename(filepath.Join(d, "lib/util.go"), filepath.Join(d, "lib/util2.go"))
		}, false},
		{"touch", false, func(d string) error {
			at := time.Now().Add(-time.Hour)
			return os.Chtimes(filepath.Join(d, "main.go"), at, at)
		}, true},
		{"touch dir", false, func(d string) error {
			at := time.Now().Add(-time.Hour)
			return os.Chtimes(filepath.Join(d, "lib"), at, at)
		}, true},
		{"rewrite same content", false, func(d string) error {
			return os.WriteFile(filepath.Join(d, "main.go"), []byte("package main\n"), 0o644)
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			dir := t.TempDir()
			writeTree(t, dir, tree)
			before := treeKey(t, dir)
			if err := tc.change(dir); err != nil {
				t.Fatal(err)
			}
			after := treeKey(t, dir)
			if got := before == after; got != tc.same {
				t.Errorf("key unchanged = %v, want %v", got, tc.same)
			}
		})
	}
}

func TestDigestFilesReorder(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a": "1", "b/c": "2", "d": "->a"})
	sc, err := OpenStatCache(t.TempDir(), dir)
	if err != nil {
		t.Fatal(err)
	}
	files := walkFiles(t, dir)
	got1, err := DigestFiles(context.Background(), sc, files)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(files)
	got2, err := DigestFiles(context.Background(), sc, files)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got1, got2) {
		t.Errorf("reordered input gave %v, want %v", got2, got1)
	}
	if !slices.IsSortedFunc(got1, compareFiles) {
		t.Errorf("not sorted: %v", got1)
	}
}
