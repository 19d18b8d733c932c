package snapshot

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMountAllRollback checks a failing mount leaves nothing mounted.
func TestMountAllRollback(t *testing.T) {
	requireRoot(t)
	work := testDir(t)
	src := filepath.Join(work, "src")
	target := filepath.Join(work, "target")
	must(t, os.Mkdir(src, 0o755))
	must(t, os.Mkdir(target, 0o755))
	err := MountAll([]Mount{
		bindMount(src, false),
		{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + filepath.Join(work, "missing")}},
	}, target)
	if err == nil {
		t.Fatal("MountAll with a bad overlay succeeded")
	}
	assertNoMounts(t, work)
}

func TestBindReadOnly(t *testing.T) {
	requireRoot(t)
	work := testDir(t)
	src := filepath.Join(work, "src")
	must(t, os.Mkdir(src, 0o755))
	root := mountAt(t, []Mount{bindMount(src, true)}, work, "target")
	if err := os.WriteFile(filepath.Join(root, "f"), nil, 0o644); err == nil {
		t.Error("wrote through a read-only bind mount")
	}
	// Nested mounts go too.
	inner := mountAt(t, []Mount{bindMount(src, false)}, work, "target2")
	must(t, os.Mkdir(filepath.Join(src, "sub"), 0o755))
	must(t, MountAll([]Mount{bindMount(src, true)}, filepath.Join(inner, "sub")))
	must(t, UnmountAll(inner))
	assertNoMounts(t, work+"/target2")
}

// TestUnmountAllLayouts checks UnmountAll leaves nothing mounted at or
// below its target however the mounts there are arranged: one mount,
// mounts stacked on the target, a mount below the target's mount, and a
// mount below the target hidden by a later mount on the target.
func TestUnmountAllLayouts(t *testing.T) {
	requireRoot(t)
	work := testDir(t)
	src := filepath.Join(work, "src")
	must(t, os.MkdirAll(filepath.Join(src, "sub"), 0o755))
	for name, layout := range map[string]func(target string){
		"one": func(target string) {
			must(t, MountAll([]Mount{bindMount(src, false)}, target))
		},
		"stacked": func(target string) {
			must(t, MountAll([]Mount{bindMount(src, false), bindMount(src, true)}, target))
		},
		"below": func(target string) {
			must(t, MountAll([]Mount{bindMount(src, false)}, target))
			must(t, MountAll([]Mount{bindMount(src, true)}, filepath.Join(target, "sub")))
		},
		"hidden": func(target string) {
			must(t, os.Mkdir(filepath.Join(target, "sub"), 0o755))
			must(t, MountAll([]Mount{bindMount(src, true)}, filepath.Join(target, "sub")))
			must(t, MountAll([]Mount{bindMount(src, false)}, target))
		},
	} {
		target := filepath.Join(work, name)
		must(t, os.Mkdir(target, 0o755))
		layout(target)
		if err := UnmountAll(target); err != nil {
			t.Errorf("%s: UnmountAll: %v", name, err)
		}
		assertNoMounts(t, target)
	}
}
