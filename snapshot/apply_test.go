package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

type unsafeLayer struct {
	name  string
	layer []byte
	// contained, when set, is where the hostile write must land inside
	// the root (symlinks resolve inside it); otherwise the layer must be
	// rejected with ErrUnsafeLayer.
	contained string
	// accepted marks a layer that is harmless as it stands (a hardlink
	// to a symlink is another symlink) and must apply.
	accepted bool
}

// unsafeLayers are hostile layers: ApplyDir rejects them with
// ErrUnsafeLayer or keeps their writes inside the root.
func unsafeLayers(t testing.TB) []unsafeLayer {
	return []unsafeLayer{
		{"dotdot", makeTar(t, tarEntry{name: "../evil", data: "evil"}), "", false},
		{"dotdot-inside", makeTar(t, tarEntry{name: "a/../../evil", data: "evil"}), "", false},
		{"symlink-then-write", makeTar(t,
			tarEntry{name: "link", typ: tar.TypeSymlink, link: "/etc"},
			tarEntry{name: "link/passwd", data: "evil"}), "etc/passwd", false},
		{"relative-escape-then-write", makeTar(t,
			tarEntry{name: "up", typ: tar.TypeSymlink, link: "../../.."},
			tarEntry{name: "up/evil", data: "evil"}), "evil", false},
		{"absolute-symlink-dir", makeTar(t,
			tarEntry{name: "abs", typ: tar.TypeSymlink, link: "/tmp"},
			tarEntry{name: "abs/sub/file", data: "evil"}), "tmp/sub/file", false},
		{"hardlink-outside", makeTar(t, tarEntry{name: "pw", typ: tar.TypeLink, link: "../../../../../../etc/passwd"}), "", false},
		{"hardlink-to-escaping-symlink", makeTar(t,
			tarEntry{name: "s", typ: tar.TypeSymlink, link: "../../../../etc/passwd"},
			tarEntry{name: "h", typ: tar.TypeLink, link: "s"}), "", true},
		{"root-symlink", makeTar(t, tarEntry{name: ".", typ: tar.TypeSymlink, link: "/"}), "", false},
		{"root-file", makeTar(t, tarEntry{name: "/.", data: "x"}), "", false},
		{"whiteout-empty", makeTar(t, tarEntry{name: "etc/.wh."}), "", false},
		{"whiteout-dotdot", makeTar(t, tarEntry{name: ".wh.."}), "", false},
		{"whiteout-dot", makeTar(t, tarEntry{name: "etc/.wh.."}), "", false},
		{"whiteout-dir", makeTar(t, tarEntry{name: ".wh.x/y"}), "", false},
	}
}

// hostRoot returns a "host" directory with a root inside and a sentinel
// file outside.
func hostRoot(t testing.TB) (host, root string) {
	host = testDir(t)
	root = filepath.Join(host, "root")
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	writeFile(t, filepath.Join(root, "etc/passwd"), "inside", 0o644)
	writeFile(t, filepath.Join(host, "etc/passwd"), "outside", 0o644)
	return host, root
}

func TestApplyDirUnsafe(t *testing.T) {
	requireRoot(t)
	var hostPasswd unix.Stat_t
	must(t, unix.Stat("/etc/passwd", &hostPasswd))
	for _, tc := range unsafeLayers(t) {
		t.Run(tc.name, func(t *testing.T) {
			host, root := hostRoot(t)
			before := listHost(t, host, root)
			err := ApplyDir(context.Background(), root, bytes.NewReader(tc.layer), ApplyOptions{})
			if tc.accepted {
				if err != nil {
					t.Errorf("ApplyDir = %v, want it applied", err)
				}
			} else if tc.contained != "" {
				if err != nil {
					t.Errorf("ApplyDir = %v, want the write contained in the root", err)
				}
				if b, _ := os.ReadFile(filepath.Join(root, tc.contained)); string(b) != "evil" {
					t.Errorf("%s inside the root = %q, want the layer's write", tc.contained, b)
				}
			} else if !errors.Is(err, ErrUnsafeLayer) {
				t.Errorf("ApplyDir = %v, want ErrUnsafeLayer", err)
			}
			after := listHost(t, host, root)
			if strings.Join(before, "\n") != strings.Join(after, "\n") {
				t.Errorf("host changed:\nbefore %v\nafter %v", before, after)
			}
			if b, _ := os.ReadFile(filepath.Join(host, "etc/passwd")); string(b) != "outside" {
				t.Errorf("host file changed: %q", b)
			}
			if fi, err := os.Lstat(root); err != nil || !fi.IsDir() {
				t.Errorf("root replaced: %v", err)
			}
		})
	}
	var after unix.Stat_t
	must(t, unix.Stat("/etc/passwd", &after))
	if after.Nlink != hostPasswd.Nlink || after.Mtim != hostPasswd.Mtim {
		t.Error("/etc/passwd was touched")
	}
}

func TestApplyDir(t *testing.T) {
	requireRoot(t)
	_, root := hostRoot(t)
	writeFile(t, filepath.Join(root, "usr/lib/libc"), "libc", 0o644)
	writeFile(t, filepath.Join(root, "old/a"), "a", 0o644)
	writeFile(t, filepath.Join(root, "gone"), "gone", 0o644)
	must(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))
	layer := makeTar(t,
		tarEntry{name: "./", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: ".wh.gone"},
		tarEntry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "bin/su", data: "su", mode: 0o4755},
		tarEntry{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
		tarEntry{name: "lib/libm", data: "libm"},
		tarEntry{name: "old/", typ: tar.TypeDir, mode: 0o700},
		tarEntry{name: "old/.wh..wh..opq"},
		tarEntry{name: "old/b", data: "b"},
		tarEntry{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		tarEntry{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
		tarEntry{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
		tarEntry{name: "x", data: "x", xattrs: map[string]string{"user.k": "v", "trusted.overlay.opaque": "y"}},
		tarEntry{name: "y", typ: tar.TypeLink, link: "/x"},
		tarEntry{name: "etc/passwd/", typ: tar.TypeDir, mode: 0o755}, // file replaced by a directory
		tarEntry{name: "usr/lib", data: "directory replaced by a file"},
	)
	must(t, ApplyDir(context.Background(), root, bytes.NewReader(layer), ApplyOptions{}))
	tree := readTree(t, root)
	checks := map[string]func(n node) bool{
		"bin/su":     func(n node) bool { return n.Mode == unix.S_IFREG|0o4755 },
		"bin/sh":     func(n node) bool { return n.Link == "/bin/busybox" },
		"usr/lib":    func(n node) bool { return n.Mode&unix.S_IFMT == unix.S_IFREG },
		"old/b":      func(n node) bool { return n.Data != "" },
		"tmp":        func(n node) bool { return n.Mode == unix.S_IFDIR|0o1777 && n.Mtime == 1700000000 },
		"dev/null":   func(n node) bool { return n.Mode == unix.S_IFCHR|0o666 },
		"fifo":       func(n node) bool { return n.Mode == unix.S_IFIFO|0o600 },
		"x":          func(n node) bool { return n.Xattrs == "user.k=76" },
		"etc/passwd": func(n node) bool { return n.Mode == unix.S_IFDIR|0o755 },
	}
	for name, ok := range checks {
		if n, found := tree[name]; !found || !ok(n) {
			t.Errorf("%s: %+v (found %v)", name, n, found)
		}
	}
	for _, gone := range []string{"gone", "old/a"} {
		if _, found := tree[gone]; found {
			t.Errorf("%s not deleted", gone)
		}
	}
	if tree["x"].Inode != tree["y"].Inode {
		t.Error("y is not a hardlink of x")
	}
	if tree["lib"].Link != "usr/lib" {
		t.Errorf("lib = %+v", tree["lib"])
	}
}

// FuzzApplyDir applies arbitrary bytes: ApplyDir may fail but must not
// panic or write outside the root.
func FuzzApplyDir(f *testing.F) {
	requireRoot(f)
	for _, tc := range unsafeLayers(f) {
		f.Add(tc.layer)
	}
	f.Add(makeTar(f,
		tarEntry{name: "a/", typ: tar.TypeDir},
		tarEntry{name: "a/.wh..wh..opq"},
		tarEntry{name: "a/b", data: "b"},
		tarEntry{name: "l", typ: tar.TypeSymlink, link: "a"},
		tarEntry{name: "l/c", data: "c"},
		tarEntry{name: "h", typ: tar.TypeLink, link: "a/b"},
		tarEntry{name: ".wh.a"},
	))
	f.Fuzz(func(t *testing.T, data []byte) {
		host := t.TempDir()
		root := filepath.Join(host, "root")
		must(t, os.Mkdir(root, 0o755))
		writeFile(t, filepath.Join(host, "outside"), "x", 0o644)
		ctx := context.Background()
		_ = ApplyDir(ctx, root, bytes.NewReader(data), ApplyOptions{})
		ents, err := os.ReadDir(host)
		must(t, err)
		if len(ents) != 2 {
			t.Fatalf("host has %d entries", len(ents))
		}
		if b, err := os.ReadFile(filepath.Join(host, "outside")); err != nil || string(b) != "x" {
			t.Fatalf("outside file changed: %q %v", b, err)
		}
		if fi, err := os.Lstat(root); err != nil || !fi.IsDir() {
			t.Fatalf("root replaced: %v", err)
		}
	})
}
