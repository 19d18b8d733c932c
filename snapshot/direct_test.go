package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestOverlayDirectDir checks that writing a new directory straight into
// an active overlay snapshot gives the same layer, byte for byte, as
// writing it through the mounted snapshot, and that DirectDir refuses
// paths that exist or that a mount would resolve differently.
func TestOverlayDirectDir(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	work := testDir(t)
	sn, err := NewOverlay(filepath.Join(work, "sn"))
	must(t, err)
	defer sn.Close()
	dw, ok := sn.(DirectWriter)
	if !ok {
		t.Fatal("the overlay snapshotter is not a DirectWriter")
	}
	layers := [][]tarEntry{{
		{name: "app", typ: tar.TypeDir, mode: 0o750, xattrs: map[string]string{"user.note": "kept"}},
		{name: "app/old", data: "old"},
		{name: "file", data: "f"},
		{name: "link", typ: tar.TypeSymlink, link: "app"},
		{name: "gone", typ: tar.TypeDir, mode: 0o755},
		{name: "opq", typ: tar.TypeDir, mode: 0o755},
	}, {
		{name: ".wh.gone"},
		{name: "opq", typ: tar.TypeDir, mode: 0o755},
		{name: "opq/.wh..wh..opq"},
	}, {
		{name: "app/other", data: "other"},
	}}
	parent := ""
	for i, l := range layers {
		key, name := "k"+string(rune('0'+i)), "l"+string(rune('0'+i))
		_, err := sn.Prepare(ctx, key, parent)
		must(t, err)
		must(t, sn.Apply(ctx, key, bytes.NewReader(makeTar(t, l...))))
		must(t, sn.Commit(ctx, name, key))
		parent = name
	}

	write := func(root string) {
		must(t, os.MkdirAll(filepath.Join(root, "app/new/sub"), 0o755))
		writeFile(t, filepath.Join(root, "app/new/sub/f"), "new", 0o644)
	}
	mounts, err := sn.Prepare(ctx, "m", parent)
	must(t, err)
	write(mountAt(t, mounts, work, "mnt"))
	unmount(t, filepath.Join(work, "mnt"))
	must(t, sn.Commit(ctx, "viaMount", "m"))

	_, err = sn.Prepare(ctx, "d", parent)
	must(t, err)
	root, ok, err := dw.DirectDir(ctx, "d", "/app/new")
	if err != nil || !ok {
		t.Fatalf("DirectDir(/app/new) = %v, %v; want a directory", ok, err)
	}
	write(root)
	must(t, sn.Commit(ctx, "direct", "d"))

	epoch := int64(1600000000)
	var viaMount, direct bytes.Buffer
	must(t, sn.Diff(ctx, "viaMount", &viaMount, DiffOptions{Epoch: &epoch}))
	must(t, sn.Diff(ctx, "direct", &direct, DiffOptions{Epoch: &epoch}))
	if !bytes.Equal(viaMount.Bytes(), direct.Bytes()) {
		t.Errorf("layers differ:\nthrough a mount: %v\ndirect:          %v",
			tarNames(tarHeaders(t, viaMount.Bytes())), tarNames(tarHeaders(t, direct.Bytes())))
	}
	view, err := sn.View(ctx, "v", "direct")
	must(t, err)
	got := readTree(t, mountAt(t, view, work, "view"))
	if got["app/old"].Data == "" || got["app/other"].Data == "" || got["app/new/sub/f"].Data == "" {
		t.Errorf("the direct snapshot does not show the old and new files: %v", got)
	}
	if got["app"].Xattrs == "" || got["app"].Mode&0o777 != 0o750 {
		t.Errorf("app lost its mode or xattr: %+v", got["app"])
	}
	unmount(t, filepath.Join(work, "view"))
	must(t, sn.Remove(ctx, "v"))

	_, err = sn.Prepare(ctx, "n", parent)
	must(t, err)
	for _, dir := range []string{"/", "/app", "/app/old", "/file/x", "/link/x", "/gone/x", "/gone", "/opq/x"} {
		if _, ok, err := dw.DirectDir(ctx, "n", dir); ok || err != nil {
			t.Errorf("DirectDir(%s) = %v, %v; want not ok", dir, ok, err)
		}
	}
}

// TestCommitUnsynced checks, for both snapshotters, that a snapshot
// committed unsynced is committed like any other (a child can stand on
// it and sees its files) and that Sync then succeeds.
func TestCommitUnsynced(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	for name, open := range map[string]func(string) (Snapshotter, error){"overlay": NewOverlay, "native": NewNative} {
		t.Run(name, func(t *testing.T) {
			work := testDir(t)
			sn, err := open(filepath.Join(work, "sn"))
			must(t, err)
			defer sn.Close()
			lc, ok := sn.(LazyCommitter)
			if !ok {
				t.Fatal("not a LazyCommitter")
			}
			_, err = sn.Prepare(ctx, "a", "")
			must(t, err)
			must(t, sn.Apply(ctx, "a", bytes.NewReader(makeTar(t, tarEntry{name: "f", data: "data"}))))
			must(t, lc.CommitUnsynced(ctx, "base", "a"))
			if info, err := sn.Stat(ctx, "base"); err != nil || info.Kind != KindCommitted {
				t.Fatalf("Stat(base) = %+v, %v; want committed", info, err)
			}
			must(t, lc.Sync(ctx))
			view, err := sn.View(ctx, "v", "base")
			must(t, err)
			got := readTree(t, mountAt(t, view, work, "view"))
			if got["f"].Data == "" {
				t.Errorf("the child view does not show f: %v", got)
			}
			unmount(t, filepath.Join(work, "view"))
			must(t, sn.Remove(ctx, "v"))
		})
	}
}

// TestLinkTree checks that LinkTree recreates directories with their
// metadata and shares every other entry's inode.
func TestLinkTree(t *testing.T) {
	requireRoot(t)
	work := testDir(t)
	src, dst := filepath.Join(work, "src"), filepath.Join(work, "dst")
	must(t, os.MkdirAll(filepath.Join(src, "d/e"), 0o755))
	writeFile(t, filepath.Join(src, "d/e/f"), "data", 0o640)
	must(t, os.Symlink("e/f", filepath.Join(src, "d/l")))
	must(t, os.Chmod(filepath.Join(src, "d"), 0o710))
	must(t, os.Chown(filepath.Join(src, "d"), 12, 34))
	must(t, LinkTree(context.Background(), src, dst))
	want, got := readTree(t, src), readTree(t, dst)
	for rel, w := range want {
		g, ok := got[rel]
		if !ok {
			t.Errorf("%s missing", rel)
			continue
		}
		sameInode := g.Inode == w.Inode
		if (w.Mode&0o170000 == 0o040000) == sameInode {
			t.Errorf("%s: shares the inode: %v", rel, sameInode)
		}
		g.Inode, w.Inode = 0, 0
		if g != w {
			t.Errorf("%s = %+v, want %+v", rel, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d entries, want %d", len(got), len(want))
	}
}
