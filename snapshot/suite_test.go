package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newFunc constructs the Snapshotter under test in dir.
type newFunc func(dir string) (Snapshotter, error)

func TestOverlay(t *testing.T) { runSuite(t, NewOverlay) }
func TestNative(t *testing.T)  { runSuite(t, NewNative) }

// runSuite is the conformance suite every Snapshotter must pass.
func runSuite(t *testing.T, newSn newFunc) {
	requireRoot(t)
	tests := []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, sn Snapshotter, work string)
	}{
		{"Lifecycle", testLifecycle},
		{"Errors", testErrors},
		{"ParentChain", testParentChain},
		{"RoundTrip", testRoundTrip},
		{"ApplyLayer", testApplyLayer},
		{"EpochExclude", testEpochExclude},
		{"Split", testSplit},
		{"ApplyUnsafe", testApplyUnsafe},
		{"Usage", testUsage},
		{"Walk", testWalk},
		{"SameSizeMtimeRewrite", testSameSizeMtimeRewrite},
		{"Orphans", testOrphans},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := testDir(t)
			sn, err := newSn(filepath.Join(work, "sn"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sn.Close() })
			tc.fn(t, context.Background(), sn, work)
		})
	}
	t.Run("SharedDirectory", func(t *testing.T) {
		work := testDir(t)
		a, err := newSn(filepath.Join(work, "sn"))
		must(t, err)
		defer a.Close()
		b, err := newSn(filepath.Join(work, "sn"))
		must(t, err)
		defer b.Close()
		ctx := context.Background()
		_, err = a.Prepare(ctx, "k", "")
		must(t, err)
		must(t, b.Commit(ctx, "c", "k"))
		info, err := a.Stat(ctx, "c")
		must(t, err)
		if info.Kind != KindCommitted {
			t.Errorf("kind = %v, want committed", info.Kind)
		}
	})
}

// commitTree prepares key on parent, lets fill change the mounted tree,
// and commits it as name.
func commitTree(t *testing.T, ctx context.Context, sn Snapshotter, work, name, parent string, fill func(root string)) {
	t.Helper()
	mounts, err := sn.Prepare(ctx, name+"-active", parent)
	must(t, err)
	root := mountAt(t, mounts, work, "mnt-"+name)
	fill(root)
	unmount(t, root)
	must(t, sn.Commit(ctx, name, name+"-active"))
}

func testLifecycle(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	mounts, err := sn.Prepare(ctx, "a", "")
	must(t, err)
	again, err := sn.Mounts(ctx, "a")
	must(t, err)
	if len(again) != len(mounts) || again[0].Source != mounts[0].Source {
		t.Errorf("Mounts = %v, Prepare gave %v", again, mounts)
	}
	info, err := sn.Stat(ctx, "a")
	must(t, err)
	if info != (Info{Name: "a", Kind: KindActive}) {
		t.Errorf("Stat(a) = %+v", info)
	}
	must(t, sn.Commit(ctx, "c", "a"))
	if _, err := sn.Stat(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(a) after commit: %v, want ErrNotFound", err)
	}
	info, err = sn.Stat(ctx, "c")
	must(t, err)
	if info != (Info{Name: "c", Kind: KindCommitted}) {
		t.Errorf("Stat(c) = %+v", info)
	}
	_, err = sn.View(ctx, "v", "c")
	must(t, err)
	info, err = sn.Stat(ctx, "v")
	must(t, err)
	if info != (Info{Name: "v", Parent: "c", Kind: KindView}) {
		t.Errorf("Stat(v) = %+v", info)
	}
	if err := sn.Commit(ctx, "v2", "v"); !errors.Is(err, ErrWrongKind) {
		t.Errorf("Commit(view) = %v, want ErrWrongKind", err)
	}
	if err := sn.Remove(ctx, "c"); !errors.Is(err, ErrInUse) {
		t.Errorf("Remove(parent) = %v, want ErrInUse", err)
	}
	must(t, sn.Remove(ctx, "v"))
	must(t, sn.Remove(ctx, "c"))
	if _, err := sn.Stat(ctx, "c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(c) after remove: %v, want ErrNotFound", err)
	}
	ents, err := os.ReadDir(filepath.Join(work, "sn", "snapshots"))
	must(t, err)
	if len(ents) != 0 {
		t.Errorf("snapshot directories left: %v", ents)
	}
}

func testErrors(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	_, err := sn.Prepare(ctx, "a", "")
	must(t, err)
	checks := []struct {
		what string
		err  error
		want error
	}{
		{"Prepare existing key", second(sn.Prepare(ctx, "a", "")), ErrExists},
		{"Prepare missing parent", second(sn.Prepare(ctx, "b", "nope")), ErrNotFound},
		{"Prepare on active parent", second(sn.Prepare(ctx, "b", "a")), ErrWrongKind},
		{"View missing parent", second(sn.View(ctx, "b", "nope")), ErrNotFound},
		{"Mounts missing", second(sn.Mounts(ctx, "nope")), ErrNotFound},
		{"Stat missing", second(sn.Stat(ctx, "nope")), ErrNotFound},
		{"Remove missing", sn.Remove(ctx, "nope"), ErrNotFound},
		{"Commit missing", sn.Commit(ctx, "x", "nope"), ErrNotFound},
		{"Diff active", sn.Diff(ctx, "a", &bytes.Buffer{}, DiffOptions{}), ErrWrongKind},
		{"Diff missing", sn.Diff(ctx, "nope", &bytes.Buffer{}, DiffOptions{}), ErrNotFound},
		{"Apply missing", sn.Apply(ctx, "nope", bytes.NewReader(nil)), ErrNotFound},
	}
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.what, c.err, c.want)
		}
	}
	must(t, sn.Commit(ctx, "c", "a"))
	_, err = sn.Prepare(ctx, "a2", "")
	must(t, err)
	if err := sn.Commit(ctx, "c", "a2"); !errors.Is(err, ErrExists) {
		t.Errorf("Commit to existing name: %v, want ErrExists", err)
	}
	if err := sn.Apply(ctx, "c", bytes.NewReader(nil)); !errors.Is(err, ErrWrongKind) {
		t.Errorf("Apply on committed: %v, want ErrWrongKind", err)
	}
	// The failed commit left a2 active and usable.
	must(t, sn.Commit(ctx, "c2", "a2"))
}

func second[T any](_ T, err error) error { return err }

func testParentChain(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	parent := ""
	for i, name := range []string{"l1", "l2", "l3"} {
		commitTree(t, ctx, sn, work, name, parent, func(root string) {
			writeFile(t, filepath.Join(root, name), name, 0o644)
			if i > 0 {
				must(t, os.WriteFile(filepath.Join(root, "l1"), []byte("changed by "+name), 0o644))
			}
		})
		parent = name
	}
	for _, view := range []bool{false, true} {
		var mounts []Mount
		var err error
		if view {
			mounts, err = sn.View(ctx, "top-view", "l3")
		} else {
			mounts, err = sn.Prepare(ctx, "top", "l3")
		}
		must(t, err)
		root := mountAt(t, mounts, work, "mnt-top-"+map[bool]string{true: "view", false: "rw"}[view])
		for name, want := range map[string]string{"l1": "changed by l3", "l2": "l2", "l3": "l3"} {
			b, err := os.ReadFile(filepath.Join(root, name))
			if err != nil || string(b) != want {
				t.Errorf("%s = %q, %v; want %q", name, b, err, want)
			}
		}
		err = os.WriteFile(filepath.Join(root, "new"), nil, 0o644)
		if view && !errors.Is(err, unix.EROFS) {
			t.Errorf("writing to a view: %v, want EROFS", err)
		}
		if !view && err != nil {
			t.Errorf("writing to an active snapshot: %v", err)
		}
		unmount(t, root)
	}
	// Changes of a snapshot are invisible to its parent.
	mounts, err := sn.View(ctx, "l2-view", "l2")
	must(t, err)
	root := mountAt(t, mounts, work, "mnt-l2")
	if _, err := os.Stat(filepath.Join(root, "l3")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("l3 visible in l2: %v", err)
	}
}

// fillBase makes the tree the round trip changes.
func fillBase(t *testing.T, root string) {
	p := func(n string) string { return filepath.Join(root, n) }
	writeFile(t, p("etc/passwd"), "root:x:0:0", 0o644)
	writeFile(t, p("etc/keep"), "keep", 0o644)
	writeFile(t, p("del/file"), "gone", 0o644)
	writeFile(t, p("del/stay"), "stay", 0o644)
	writeFile(t, p("deldir/sub/f"), "gone", 0o644)
	writeFile(t, p("d2f/x"), "x", 0o644)
	writeFile(t, p("f2d"), "file", 0o644)
	writeFile(t, p("opq/old1"), "old", 0o644)
	writeFile(t, p("opq/sub/old2"), "old", 0o644)
	writeFile(t, p("bin/su"), "su", 0o755)
	writeFile(t, p("mod/file"), "mod", 0o644)
	must(t, os.Symlink("etc/keep", p("keeplink")))
}

// vfsCapNetRaw is a version 2 security.capability value granting
// CAP_NET_RAW, effective.
var vfsCapNetRaw = []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// changeBase makes every kind of change a layer must carry.
func changeBase(t *testing.T, root string) {
	p := func(n string) string { return filepath.Join(root, n) }
	must(t, os.WriteFile(p("etc/passwd"), []byte("root:y:0:0"), 0o644)) // same size
	must(t, os.Remove(p("del/file")))
	must(t, os.RemoveAll(p("deldir")))
	must(t, os.RemoveAll(p("d2f")))
	writeFile(t, p("d2f"), "now a file", 0o600)
	must(t, os.Remove(p("f2d")))
	writeFile(t, p("f2d/inner"), "now a dir", 0o644)
	must(t, os.RemoveAll(p("opq")))
	writeFile(t, p("opq/new"), "new", 0o644)
	writeFile(t, p("hl/a"), "linked", 0o644)
	must(t, os.Link(p("hl/a"), p("hl/b")))
	must(t, os.Link(p("hl/a"), p("hl/c")))
	must(t, unix.Chmod(p("bin/su"), 0o4755))
	writeFile(t, p("bin/ping"), "ping", 0o755)
	must(t, unix.Lsetxattr(p("bin/ping"), "security.capability", vfsCapNetRaw, 0))
	must(t, os.Chown(p("mod/file"), 1000, 1001))
	must(t, os.Chmod(p("mod/file"), 0o640))
	writeFile(t, p("mod/x"), "x", 0o644)
	must(t, unix.Lsetxattr(p("mod/x"), "user.test", []byte("value"), 0))
	must(t, os.Mkdir(p("dev"), 0o755))
	must(t, unix.Mknod(p("dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(p("dev/loop9"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))))
	must(t, unix.Mkfifo(p("dev/fifo"), 0o644))
	must(t, os.Symlink("/etc/passwd", p("abslink")))
	must(t, os.Remove(p("keeplink")))
	must(t, os.Symlink("etc/passwd", p("keeplink")))
	must(t, os.Mkdir(p("tmp"), 0o755))
	must(t, unix.Chmod(p("tmp"), 0o1777))
	must(t, os.Lchown(p("abslink"), 5, 6))
}

func testRoundTrip(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	commitTree(t, ctx, sn, work, "base", "", func(root string) { fillBase(t, root) })
	commitTree(t, ctx, sn, work, "step", "base", func(root string) { changeBase(t, root) })

	var layer, again bytes.Buffer
	must(t, sn.Diff(ctx, "step", &layer, DiffOptions{}))
	must(t, sn.Diff(ctx, "step", &again, DiffOptions{}))
	if !bytes.Equal(layer.Bytes(), again.Bytes()) {
		t.Fatal("two diffs of one snapshot differ")
	}
	hdrs := tarHeaders(t, layer.Bytes())
	checkLayer(t, hdrs)
	names := strings.Join(tarNames(hdrs), " ")
	for _, want := range []string{"del/.wh.file", ".wh.deldir", "d2f", "f2d/", "f2d/inner", "opq/new", "bin/su", "etc/passwd", "dev/null"} {
		if !strings.Contains(" "+names+" ", " "+want+" ") {
			t.Errorf("layer lacks %s: %s", want, names)
		}
	}
	for _, unchanged := range []string{"etc/keep", "del/stay"} {
		if strings.Contains(" "+names+" ", " "+unchanged+" ") {
			t.Errorf("layer has unchanged %s", unchanged)
		}
	}
	for _, h := range hdrs {
		if h.Name == "hl/b" || h.Name == "hl/c" {
			if h.Typeflag != tar.TypeLink || h.Linkname != "hl/a" {
				t.Errorf("%s: type %c link %q, want hardlink to hl/a", h.Name, h.Typeflag, h.Linkname)
			}
		}
		if h.Name == "bin/ping" && h.PAXRecords[paxXattrPrefix+"security.capability"] != string(vfsCapNetRaw) {
			t.Errorf("bin/ping lost its capability: %v", h.PAXRecords)
		}
	}

	// Apply the layer on the parent and compare with the original.
	_, err := sn.Prepare(ctx, "check-active", "base")
	must(t, err)
	must(t, sn.Apply(ctx, "check-active", bytes.NewReader(layer.Bytes())))
	got, err := sn.Mounts(ctx, "check-active")
	must(t, err)
	want, err := sn.View(ctx, "step-view", "step")
	must(t, err)
	gotTree := readTree(t, mountAt(t, got, work, "mnt-check"))
	wantTree := readTree(t, mountAt(t, want, work, "mnt-want"))
	compareTrees(t, gotTree, wantTree)
	if a, b := gotTree["hl/a"], gotTree["hl/b"]; a.Inode != b.Inode {
		t.Errorf("hl/a and hl/b are not one file after apply")
	}
}

// checkLayer checks the layer invariants: clean headers, relative names,
// parents before children, no overlay xattrs.
func checkLayer(t *testing.T, hdrs []*tar.Header) {
	t.Helper()
	seen := map[string]bool{}
	prev := ""
	for _, h := range hdrs {
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: unclean header %+v", h.Name, h)
		}
		if strings.HasPrefix(h.Name, "/") || strings.HasPrefix(h.Name, "./") {
			t.Errorf("%s: not relative", h.Name)
		}
		if h.ModTime.Nanosecond() != 0 {
			t.Errorf("%s: sub-second mtime", h.Name)
		}
		for k := range h.PAXRecords {
			if !strings.HasPrefix(k, paxXattrPrefix) || isOverlayXattr(strings.TrimPrefix(k, paxXattrPrefix)) {
				t.Errorf("%s: PAX record %s", h.Name, k)
			}
		}
		name := strings.TrimSuffix(h.Name, "/")
		if seen[name] {
			t.Errorf("%s: duplicate", h.Name)
		}
		seen[name] = true
		if dir := filepath.Dir(name); dir != "." && !seen[dir] {
			// Parents are only required when they are written at all.
			for _, later := range hdrs {
				if strings.TrimSuffix(later.Name, "/") == dir {
					t.Errorf("%s comes before its parent", h.Name)
				}
			}
		}
		if strings.Count(prev, "/") == strings.Count(name, "/") && filepath.Dir(prev) == filepath.Dir(name) &&
			filepath.Base(name) < filepath.Base(prev) && filepath.Base(name) != opaqueMarker {
			t.Errorf("%s after %s: not sorted", name, prev)
		}
		prev = name
	}
}

// testApplyLayer applies a hand-written layer with whiteouts, an opaque
// directory and a hardlink to a file of the parent.
func testApplyLayer(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	commitTree(t, ctx, sn, work, "base", "", func(root string) {
		fillBase(t, root)
		writeFile(t, filepath.Join(root, "usr/lib/libc"), "libc", 0o644)
		must(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))
	})
	layer := makeTar(t,
		tarEntry{name: "del/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "del/.wh.file"},
		tarEntry{name: ".wh.deldir"},
		tarEntry{name: "opq/", typ: tar.TypeDir, mode: 0o700},
		tarEntry{name: "opq/.wh..wh..opq"},
		tarEntry{name: "opq/fresh", data: "fresh"},
		tarEntry{name: "lib/added", data: "through a relative link"},
		tarEntry{name: "etc/hard", typ: tar.TypeLink, link: "etc/keep"},
		tarEntry{name: "/abs/name", data: "made relative"},
		tarEntry{name: ".wh..wh.plnk/123", data: "aufs"},
	)
	_, err := sn.Prepare(ctx, "a", "base")
	must(t, err)
	must(t, sn.Apply(ctx, "a", bytes.NewReader(layer)))
	mounts, err := sn.Mounts(ctx, "a")
	must(t, err)
	root := mountAt(t, mounts, work, "mnt-a")
	p := func(n string) string { return filepath.Join(root, n) }
	for _, gone := range []string{"del/file", "deldir", "opq/old1", "opq/sub", ".wh..wh.plnk"} {
		if _, err := os.Lstat(p(gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", gone, err)
		}
	}
	for name, want := range map[string]string{
		"del/stay": "stay", "opq/fresh": "fresh", "usr/lib/added": "through a relative link",
		"etc/hard": "keep", "abs/name": "made relative", "etc/keep": "keep",
	} {
		if b, err := os.ReadFile(p(name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	var a, b unix.Stat_t
	must(t, unix.Lstat(p("etc/hard"), &a))
	must(t, unix.Lstat(p("etc/keep"), &b))
	if a.Ino != b.Ino {
		t.Error("etc/hard is not a hardlink of etc/keep")
	}
	unmount(t, root)

	// The applied snapshot diffs back to the same changes.
	must(t, sn.Commit(ctx, "applied", "a"))
	var out bytes.Buffer
	must(t, sn.Diff(ctx, "applied", &out, DiffOptions{}))
	names := " " + strings.Join(tarNames(tarHeaders(t, out.Bytes())), " ") + " "
	for _, want := range []string{"del/.wh.file", ".wh.deldir", "opq/fresh", "usr/lib/added", "abs/name"} {
		if !strings.Contains(names, " "+want+" ") {
			t.Errorf("re-diff lacks %s: %s", want, names)
		}
	}
	if strings.Contains(names, "opq/old1") || strings.Contains(names, "plnk") {
		t.Errorf("re-diff has stale entries: %s", names)
	}
}

func testEpochExclude(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	commitTree(t, ctx, sn, work, "base", "", func(root string) { fillBase(t, root) })
	commitTree(t, ctx, sn, work, "step", "base", func(root string) {
		writeFile(t, filepath.Join(root, "etc/resolv.conf"), "nameserver 1.1.1.1", 0o644)
		writeFile(t, filepath.Join(root, "proc/x"), "mount point", 0o644)
		writeFile(t, filepath.Join(root, "etc/new"), "new", 0o644)
		must(t, os.Remove(filepath.Join(root, "etc/keep")))
	})
	epoch := int64(1000)
	var out bytes.Buffer
	must(t, sn.Diff(ctx, "step", &out, DiffOptions{Epoch: &epoch, Exclude: []string{"/etc/resolv.conf", "/proc", "/etc/keep"}}))
	hdrs := tarHeaders(t, out.Bytes())
	names := strings.Join(tarNames(hdrs), " ")
	if strings.Contains(names, "resolv") || strings.Contains(names, "proc") || strings.Contains(names, "keep") {
		t.Errorf("excluded paths in layer: %s", names)
	}
	if !strings.Contains(names, "etc/new") {
		t.Errorf("layer lacks etc/new: %s", names)
	}
	for _, h := range hdrs {
		if h.ModTime.Unix() > epoch {
			t.Errorf("%s: mtime %v after epoch", h.Name, h.ModTime)
		}
	}
}

// testSplit checks DiffOptions.Split: the split path's entries come
// first, Cut marks where they end, the other entries and the tar's end
// follow, and (overlay only) OmitSplit leaves the split part out, failing
// when nothing is at the split path.
func testSplit(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	commitTree(t, ctx, sn, work, "base", "", func(root string) { fillBase(t, root) })
	fill := func(root string) {
		writeFile(t, filepath.Join(root, "app/b/x"), "x", 0o644)
		writeFile(t, filepath.Join(root, "app/b/sub/y"), "y", 0o644)
		writeFile(t, filepath.Join(root, "app/a"), "a", 0o644)
		// The same files at app/b in both trees, times included.
		stamp := time.Unix(1700000000, 0)
		for _, p := range []string{"app/b/sub/y", "app/b/x", "app/b/sub", "app/b"} {
			must(t, os.Chtimes(filepath.Join(root, p), stamp, stamp))
		}
	}
	commitTree(t, ctx, sn, work, "copy", "base", fill)
	commitTree(t, ctx, sn, work, "more", "base", func(root string) {
		fill(root)
		writeFile(t, filepath.Join(root, "zz"), "after", 0o644)
	})
	end := make([]byte, 1024)
	names := func(b []byte) []string { return tarNames(tarHeaders(t, append(append([]byte(nil), b...), end...))) }
	diff := func(name string, omit bool) ([]byte, []int, error) {
		var out bytes.Buffer
		var cuts []int
		err := sn.Diff(ctx, name, &out, DiffOptions{Split: "/app/b", OmitSplit: omit, Cut: func() error {
			cuts = append(cuts, out.Len())
			return nil
		}})
		return out.Bytes(), cuts, err
	}
	_, isOverlay := sn.(*overlaySnapshotter)
	var heads [][]byte
	for _, name := range []string{"copy", "more"} {
		whole, cuts, err := diff(name, false)
		must(t, err)
		if len(cuts) != 1 {
			t.Fatalf("%s: cuts at %v, want one where app/b's entries end", name, cuts)
		}
		head := whole[:cuts[0]]
		if got := strings.Join(names(head), " "); got != "app/b/ app/b/sub/ app/b/sub/y app/b/x" {
			t.Errorf("%s: split part holds %q", name, got)
		}
		rest := names(whole[cuts[0]:])
		if !slices.Contains(rest, "app/") || !slices.Contains(rest, "app/a") || name == "more" && !slices.Contains(rest, "zz") {
			t.Errorf("%s: after the split part: %q", name, rest)
		}
		for _, n := range rest {
			if strings.HasPrefix(n, "app/b/") {
				t.Errorf("%s: %s after the split part", name, n)
			}
		}
		if !bytes.Equal(whole[len(whole)-1024:], end) {
			t.Errorf("%s: the tar does not end with its end blocks", name)
		}
		heads = append(heads, head)
		omitted, cuts, err := diff(name, true)
		if !isOverlay {
			if !errors.Is(err, ErrSplit) {
				t.Errorf("OmitSplit on a tree diff: err = %v, want ErrSplit", err)
			}
			continue
		}
		must(t, err)
		if len(cuts) != 0 || !bytes.Equal(append(append([]byte(nil), head...), omitted...), whole) {
			t.Errorf("%s: the split part and what OmitSplit wrote (%d bytes, cuts %v) are not the whole layer", name, len(omitted), cuts)
		}
	}
	if !bytes.Equal(heads[0], heads[1]) {
		t.Error("the split parts of two layers with the same files at app/b differ")
	}
	if err := sn.Diff(ctx, "copy", io.Discard, DiffOptions{Split: "/nowhere", OmitSplit: true}); isOverlay && !errors.Is(err, ErrSplit) {
		t.Errorf("OmitSplit of a missing path: err = %v, want ErrSplit", err)
	}
}

// testApplyUnsafe applies hostile layers through the Snapshotter and
// checks nothing appeared outside the snapshotter's directory.
func testApplyUnsafe(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	commitTree(t, ctx, sn, work, "base", "", func(root string) {
		fillBase(t, root)
		must(t, os.Symlink("/etc", filepath.Join(root, "etclink")))
		must(t, os.Symlink("../../../..", filepath.Join(root, "uplink")))
	})
	before := listHost(t, work, filepath.Join(work, "sn"))
	for i, tc := range unsafeLayers(t) {
		key := "unsafe-" + tc.name
		_, err := sn.Prepare(ctx, key, "base")
		must(t, err)
		err = sn.Apply(ctx, key, bytes.NewReader(tc.layer))
		if tc.contained != "" || tc.accepted {
			if err != nil {
				t.Errorf("%d %s: Apply = %v, want the write contained", i, tc.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnsafeLayer) {
			t.Errorf("%d %s: Apply = %v, want ErrUnsafeLayer", i, tc.name, err)
		}
	}
	// Layers writing through links of the parent land inside the
	// snapshot.
	for _, tc := range []struct{ name, lands string }{
		{"etclink/passwd", "etc/passwd"},
		{"uplink/evil", "evil"},
	} {
		key := "lower-" + tc.name
		_, err := sn.Prepare(ctx, key, "base")
		must(t, err)
		if err := sn.Apply(ctx, key, bytes.NewReader(makeTar(t, tarEntry{name: tc.name, data: "evil"}))); err != nil {
			t.Errorf("%s through a parent's link: %v, want it contained", tc.name, err)
			continue
		}
		mounts, err := sn.Mounts(ctx, key)
		must(t, err)
		dir := t.TempDir()
		must(t, MountAll(mounts, dir))
		b, _ := os.ReadFile(filepath.Join(dir, tc.lands))
		must(t, UnmountAll(dir))
		if string(b) != "evil" {
			t.Errorf("%s: %s in the snapshot = %q, want the layer's write", tc.name, tc.lands, b)
		}
	}
	after := listHost(t, work, filepath.Join(work, "sn"))
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("files appeared outside the snapshotter:\nbefore %v\nafter %v", before, after)
	}
}

// testWalk checks Walk lists every snapshot with its kind and parent.
func testWalk(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	commitTree(t, ctx, sn, work, "base", "", func(root string) {})
	_, err := sn.Prepare(ctx, "active", "base")
	must(t, err)
	_, err = sn.View(ctx, "view", "base")
	must(t, err)
	got := map[string]Info{}
	must(t, sn.Walk(ctx, func(i Info) error { got[i.Name] = i; return nil }))
	want := map[string]Info{
		"base":   {Name: "base", Kind: KindCommitted},
		"active": {Name: "active", Parent: "base", Kind: KindActive},
		"view":   {Name: "view", Parent: "base", Kind: KindView},
	}
	if len(got) != len(want) {
		t.Fatalf("Walk listed %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("Walk %s = %+v, want %+v", k, got[k], w)
		}
	}
}

// testUsage checks Usage counts a snapshot's own files, hard links once.
func testUsage(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	commitTree(t, ctx, sn, work, "base", "", func(root string) {
		writeFile(t, filepath.Join(root, "small"), "x", 0o644)
	})
	big := strings.Repeat("z", 1<<20)
	commitTree(t, ctx, sn, work, "top", "base", func(root string) {
		writeFile(t, filepath.Join(root, "big"), big, 0o644)
		must(t, os.Link(filepath.Join(root, "big"), filepath.Join(root, "big2")))
	})
	n, err := sn.Usage(ctx, "top")
	must(t, err)
	if n < 1<<20 || n > 1<<20+64<<10 {
		t.Errorf("Usage(top) = %d, want about 1 MiB (hard link counted once)", n)
	}
	if _, err := sn.Usage(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Usage(missing) = %v, want ErrNotFound", err)
	}
}

// testSameSizeMtimeRewrite: a file rewritten with the same size and its
// old mtime put back (touch -r, cp -p, tar -x) is still a change.
func testSameSizeMtimeRewrite(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	commitTree(t, ctx, sn, work, "base", "", func(root string) {
		for _, f := range []string{"touched", "copied", "same"} {
			writeFile(t, filepath.Join(root, f), "hello", 0o644)
			must(t, os.Chtimes(filepath.Join(root, f), old, old))
		}
	})
	commitTree(t, ctx, sn, work, "step", "base", func(root string) {
		// touch -r: new bytes, the old mtime put back.
		p := filepath.Join(root, "touched")
		writeFile(t, p, "jello", 0o644)
		must(t, os.Chtimes(p, old, old))
		// cp -p from a file with the same size and mtime.
		src := filepath.Join(work, "src")
		writeFile(t, src, "yello", 0o644)
		must(t, os.Chtimes(src, old, old))
		if out, err := exec.Command("cp", "-p", src, filepath.Join(root, "copied")).CombinedOutput(); err != nil {
			t.Fatalf("cp -p: %v: %s", err, out)
		}
		// Same bytes written again: no change.
		p = filepath.Join(root, "same")
		writeFile(t, p, "hello", 0o644)
		must(t, os.Chtimes(p, old, old))
	})
	var layer bytes.Buffer
	must(t, sn.Diff(ctx, "step", &layer, DiffOptions{}))
	names := " " + strings.Join(tarNames(tarHeaders(t, layer.Bytes())), " ") + " "
	for _, want := range []string{"touched", "copied"} {
		if !strings.Contains(names, " "+want+" ") {
			t.Errorf("layer lacks rewritten %s:%s", want, names)
		}
	}
	if _, ok := any(sn).(*nativeSnapshotter); ok && strings.Contains(names, " same ") {
		t.Errorf("layer has the file rewritten with its own bytes:%s", names)
	}
}

// testOrphans: what a crash leaves (a snapshot directory without a
// record, one whose record is torn, one whose index is gone) is removed
// by RemoveOrphans; valid snapshots, committed or active, stay.
func testOrphans(t *testing.T, ctx context.Context, sn Snapshotter, work string) {
	commitTree(t, ctx, sn, work, "base", "", func(root string) { fillBase(t, root) })
	if _, err := sn.Prepare(ctx, "active", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "torn", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "unindexed", "base"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "sn")
	st := sn.(interface{ store() *store }).store()
	torn, err := st.get("torn")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(st.snapshotDir(torn.ID), "meta"), nil, 0o600))
	must(t, os.Remove(st.indexPath("unindexed")))
	must(t, os.MkdirAll(filepath.Join(dir, "snapshots", "0badc0de", "fs"), 0o755))

	n, err := sn.(OrphanRemover).RemoveOrphans(ctx)
	if err != nil || n != 3 {
		t.Fatalf("RemoveOrphans: %d, %v; want 3", n, err)
	}
	var names []string
	must(t, sn.Walk(ctx, func(i Info) error { names = append(names, i.Name); return nil }))
	slices.Sort(names)
	if strings.Join(names, " ") != "active base" {
		t.Errorf("snapshots left: %q", names)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	must(t, err)
	if len(ents) != 2 {
		t.Errorf("%d snapshot directories left, want 2", len(ents))
	}
	must(t, sn.Remove(ctx, "active"))
}
