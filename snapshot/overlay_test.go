package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOverlayDeepStack mounts 250 layers, beyond what one page of
// "lowerdir=" options holds.
func TestOverlayDeepStack(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	work := testDir(t)
	sn, err := NewOverlay(filepath.Join(work, "sn"))
	must(t, err)
	defer sn.Close()
	const depth = 250
	parent := ""
	for i := range depth {
		key := fmt.Sprintf("layer-%d", i)
		_, err := sn.Prepare(ctx, key+"-active", parent)
		must(t, err)
		layer := makeTar(t, tarEntry{name: fmt.Sprintf("files/%03d", i), data: key})
		must(t, sn.Apply(ctx, key+"-active", bytes.NewReader(layer)))
		must(t, sn.Commit(ctx, key, key+"-active"))
		parent = key
	}
	mounts, err := sn.Prepare(ctx, "top", parent)
	must(t, err)
	if n := len(strings.Join(mounts[0].Options, ",")); n < os.Getpagesize() {
		t.Fatalf("options are %d bytes, the test needs more than a page", n)
	}
	root := mountAt(t, mounts, work, "mnt")
	for _, i := range []int{0, 1, depth / 2, depth - 1} {
		b, err := os.ReadFile(filepath.Join(root, fmt.Sprintf("files/%03d", i)))
		if want := fmt.Sprintf("layer-%d", i); err != nil || string(b) != want {
			t.Errorf("files/%03d = %q, %v; want %q", i, b, err, want)
		}
	}
	ents, err := os.ReadDir(filepath.Join(root, "files"))
	must(t, err)
	if len(ents) != depth {
		t.Errorf("%d files visible, want %d", len(ents), depth)
	}
	unmount(t, root)

	// Without lowerdir+, mount(2) gets paths relative to their common
	// directory, which fit.
	c := parseOverlay(mounts[0].Options)
	if err := mountOverlayClassic(c, root); err != nil {
		t.Fatalf("classic mount with relative paths: %v", err)
	}
	defer UnmountAll(root)
	if _, err := os.Stat(filepath.Join(root, "files/000")); err != nil {
		t.Error(err)
	}
	unmount(t, root)
}

func TestOverlaySupported(t *testing.T) {
	requireRoot(t)
	work := testDir(t)
	if err := OverlaySupported(work); err != nil {
		t.Fatalf("OverlaySupported(%s) = %v", work, err)
	}
	ents, err := os.ReadDir(work)
	must(t, err)
	if len(ents) != 1 || ents[0].Name() != ".overlay-probe-ok" {
		t.Errorf("probe left %v, want only its mark", ents)
	}
	// A mark from another kernel, user or filesystem is not trusted: the
	// probe runs again and writes its own.
	mark := filepath.Join(work, ".overlay-probe-ok")
	must(t, os.WriteFile(mark, []byte("kernel=other"), 0o600))
	if err := OverlaySupported(work); err != nil {
		t.Fatalf("OverlaySupported(%s) again = %v", work, err)
	}
	if b, err := os.ReadFile(mark); err != nil || string(b) != probeMark(work) {
		t.Errorf("mark after a second probe = %q, %v; want %q", b, err, probeMark(work))
	}
	must(t, os.Remove(mark))
	// A directory on overlayfs cannot hold upper directories.
	for _, d := range []string{"l1", "l2", "u", "w", "m"} {
		must(t, os.Mkdir(filepath.Join(work, d), 0o755))
	}
	p := func(n string) string { return filepath.Join(work, n) }
	root := mountAt(t, []Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + p("l1") + ":" + p("l2"), "upperdir=" + p("u"), "workdir=" + p("w")}}}, work, "m")
	if err := OverlaySupported(root); err == nil {
		t.Error("OverlaySupported on overlayfs = nil, want an error")
	}
}

// TestOverlayApplyLowerLinks applies layers over a parent whose links
// point inside and outside the root.
func TestOverlayApplyLowerLinks(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	work := testDir(t)
	sn, err := NewOverlay(filepath.Join(work, "sn"))
	must(t, err)
	defer sn.Close()
	_, err = sn.Prepare(ctx, "b", "")
	must(t, err)
	must(t, sn.Apply(ctx, "b", bytes.NewReader(makeTar(t,
		tarEntry{name: "usr/lib/libc", data: "libc"},
		tarEntry{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		tarEntry{name: "etc", typ: tar.TypeSymlink, link: "/etc"},
		tarEntry{name: "gone/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "gone/f", data: "f"},
	))))
	must(t, sn.Commit(ctx, "base", "b"))
	_, err = sn.Prepare(ctx, "a", "base")
	must(t, err)
	must(t, sn.Apply(ctx, "a", bytes.NewReader(makeTar(t,
		tarEntry{name: "lib/libm", data: "libm"},
		tarEntry{name: "libc2", typ: tar.TypeLink, link: "usr/lib/libc"},
		tarEntry{name: ".wh.gone"},
		tarEntry{name: "gone/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "gone/new", data: "new"},
	))))
	// etc -> /etc resolves to itself inside the root: a loop, not the
	// host's /etc.
	err = sn.Apply(ctx, "a", bytes.NewReader(makeTar(t, tarEntry{name: "etc/shadow", data: "evil"})))
	if !errors.Is(err, unix.ELOOP) {
		t.Errorf("writing through the parent's /etc link: %v, want a symlink loop error", err)
	}
	mounts, err := sn.Mounts(ctx, "a")
	must(t, err)
	root := mountAt(t, mounts, work, "mnt")
	tree := readTree(t, root)
	if _, ok := tree["usr/lib/libm"]; !ok {
		t.Error("lib/libm did not land in usr/lib")
	}
	if tree["libc2"].Inode != tree["usr/lib/libc"].Inode {
		t.Error("libc2 is not a hardlink of the copied-up usr/lib/libc")
	}
	if _, ok := tree["gone/f"]; ok {
		t.Error("gone/f survived the whiteout and re-creation of gone/")
	}
	if _, ok := tree["gone/new"]; !ok {
		t.Error("gone/new missing")
	}
}

// TestOverlayDiffSmall checks a one-file change diffs quickly.
func TestOverlayDiffSmall(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	work := testDir(t)
	sn, err := NewOverlay(filepath.Join(work, "sn"))
	must(t, err)
	defer sn.Close()
	var entries []tarEntry
	for i := range 2000 {
		entries = append(entries, tarEntry{name: fmt.Sprintf("d%02d/f%04d", i%50, i), data: "x"})
	}
	_, err = sn.Prepare(ctx, "b", "")
	must(t, err)
	must(t, sn.Apply(ctx, "b", bytes.NewReader(makeTar(t, entries...))))
	must(t, sn.Commit(ctx, "base", "b"))
	start := time.Now()
	_, err = sn.Prepare(ctx, "s", "base")
	must(t, err)
	must(t, sn.Apply(ctx, "s", bytes.NewReader(makeTar(t, tarEntry{name: "d01/new", data: "new"}))))
	must(t, sn.Commit(ctx, "step", "s"))
	var out bytes.Buffer
	must(t, sn.Diff(ctx, "step", &out, DiffOptions{}))
	elapsed := time.Since(start)
	if got := tarNames(tarHeaders(t, out.Bytes())); strings.Join(got, " ") != "d01/ d01/new" {
		t.Errorf("layer = %v", got)
	}
	t.Logf("prepare+apply+commit+diff of one file over 2000: %v", elapsed)
}
