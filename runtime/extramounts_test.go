package runtime

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tree lists everything in root without following symlinks: each entry's
// path, type and, for directories, modification time.
func tree(tb testing.TB, root string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		e := p + " " + d.Type().String()
		if d.IsDir() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			e += " " + fi.ModTime().String()
		}
		out = append(out, e)
		return nil
	})
	must(tb, err)
	return out
}

// checkTree fails if root no longer looks as before (in a rootfs: every
// mount point the runtime created is gone and parent times restored).
func checkTree(tb testing.TB, root string, before []string) {
	tb.Helper()
	after := tree(tb, root)
	for _, e := range after {
		if !slices.Contains(before, e) {
			tb.Errorf("new: %s", e)
		}
	}
	for _, e := range before {
		if !slices.Contains(after, e) {
			tb.Errorf("changed or gone: %s", e)
		}
	}
}

// hostDir makes a directory next to the rootfs holding the given files.
func hostDir(tb testing.TB, root, name string, files map[string]string) string {
	tb.Helper()
	dir := filepath.Join(filepath.Dir(root), name)
	must(tb, os.MkdirAll(dir, 0o755))
	for f, content := range files {
		must(tb, os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755))
		writeFile(tb, filepath.Join(dir, f), content)
	}
	return dir
}

func TestMountBindReadonly(t *testing.T) {
	root := newRootfs(t)
	src := hostDir(t, root, "src", map[string]string{"in": "hello\n"})
	before := tree(t, root)
	spec := Spec{Rootfs: root, Mounts: []Mount{{Type: MountBind, Source: src, Target: "/ro", Readonly: true}}}
	got := shOK(t, spec, `
		cat /ro/in
		touch /ro/x 2>&1 || true
		grep -q ' /ro ro,nosuid,nodev' /proc/self/mountinfo && echo flags-ok`)
	if want := "hello\ntouch: /ro/x: Read-only file system\nflags-ok\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := os.Lstat(filepath.Join(src, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("written through a read-only mount: %v", err)
	}
	checkTree(t, root, before)
}

func TestMountBindReadWrite(t *testing.T) {
	root := newRootfs(t)
	cache := hostDir(t, root, "cache", nil)
	before := tree(t, root)
	spec := Spec{Rootfs: root, User: "app",
		Mounts: []Mount{{Type: MountBind, Source: cache, Target: "/home/app/.cache/go-build"}}}
	must(t, os.Chown(cache, 1000, 1000))
	for _, step := range []string{"one", "two"} {
		shOK(t, spec, `echo `+step+` >> /home/app/.cache/go-build/log`)
	}
	b, err := os.ReadFile(filepath.Join(cache, "log"))
	must(t, err)
	if want := "one\ntwo\n"; string(b) != want {
		t.Errorf("cache holds %q, want %q", b, want)
	}
	checkTree(t, root, before)
}

func TestMountBindFile(t *testing.T) {
	root := newRootfs(t)
	dir := filepath.Dir(root)
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "s3cret")
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	must(t, err)
	defer l.Close()
	before := tree(t, root)
	spec := Spec{Rootfs: root, Mounts: []Mount{
		{Type: MountBind, Source: secret, Target: "/run/secrets/x", Readonly: true},
		{Type: MountBind, Source: sock, Target: "/run/buildkit/ssh_agent.0"},
	}}
	got := shOK(t, spec, `cat /run/secrets/x; echo; test -S /run/buildkit/ssh_agent.0 && echo socket`)
	if want := "s3cret\nsocket\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	checkTree(t, root, before)

	// An existing file in the image is covered, not changed.
	writeFile(t, filepath.Join(root, "etc/secret"), "image")
	spec.Mounts = spec.Mounts[:1]
	spec.Mounts[0].Target = "/etc/secret"
	if got := shOK(t, spec, `cat /etc/secret`); got != "s3cret" {
		t.Errorf("got %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/secret")); string(b) != "image" {
		t.Errorf("image file changed to %q", b)
	}
}

func TestMountTmpfs(t *testing.T) {
	root := newRootfs(t)
	must(t, os.Mkdir(filepath.Join(root, "tmp"), 0o755))
	writeFile(t, filepath.Join(root, "tmp/image-file"), "x")
	before := tree(t, root)
	spec := Spec{Rootfs: root, User: "app", Mounts: []Mount{
		{Type: MountTmpfs, Target: "/tmp", Size: 1 << 20},
		{Type: MountTmpfs, Target: "/scratch/a", Mode: 0o700},
	}}
	got := shOK(t, spec, `
		ls /tmp
		stat -c %a /tmp /scratch/a
		dd if=/dev/zero of=/tmp/big bs=64k count=20 2>&1 | grep -o 'No space left on device'
		wc -c < /tmp/big
		grep ' /tmp ' /proc/self/mountinfo | grep -c 'rw,nosuid,nodev.*size=1024k'`)
	want := "1777\n700\nNo space left on device\n1048576\n1\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	checkTree(t, root, before)
}

func TestMountStubsRemoved(t *testing.T) {
	root := newRootfs(t)
	src := hostDir(t, root, "src", nil)
	before := tree(t, root)
	spec := Spec{Rootfs: root, Mounts: []Mount{{Type: MountBind, Source: src, Target: "/a/b/c"}}}
	shOK(t, spec, `test -d /a/b/c && touch /a/b/c/in-source`)
	if _, err := os.Lstat(filepath.Join(root, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("/a left in the rootfs: %v", err)
	}
	checkTree(t, root, before)
	if _, err := os.Stat(filepath.Join(src, "in-source")); err != nil {
		t.Errorf("write to the bind source lost: %v", err)
	}
	// A created parent the step put files in stays; the mount point goes.
	shOK(t, spec, `echo kept > /a/b/kept`)
	if _, err := os.Stat(filepath.Join(root, "a/b/kept")); err != nil {
		t.Errorf("step's file lost: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "a/b/c")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point left: %v", err)
	}
}

func TestMountTargetSymlinkStaysInRootfs(t *testing.T) {
	root := newRootfs(t)
	src := hostDir(t, root, "src", map[string]string{"file": "from-src"})
	victim := hostDir(t, root, "victim", map[string]string{"keep": "host"})
	tests := []struct {
		link, target string
		landsAt      string // in the rootfs
	}{
		{"/", "/mnt/x", "x"},
		{"/etc", "/mnt/x", "etc/x"},
		{"../../..", "/mnt/x", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.link, func(t *testing.T) {
			mnt := filepath.Join(root, "mnt")
			must(t, os.Symlink(tt.link, mnt))
			defer os.Remove(mnt)
			hostX, hostErr := os.Lstat("/x")
			before := tree(t, root)
			spec := Spec{Rootfs: root, Mounts: []Mount{{Type: MountBind, Source: src, Target: tt.target}}}
			got := shOK(t, spec, `cat `+tt.target+`/file; echo; cat /`+tt.landsAt+`/file; echo; touch `+tt.target+`/new`)
			if want := "from-src\nfrom-src\n"; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			must(t, os.Remove(filepath.Join(src, "new")))
			checkTree(t, root, before)
			x, err := os.Lstat("/x")
			if (err == nil) != (hostErr == nil) || err == nil && !os.SameFile(x, hostX) {
				t.Errorf("host /x changed: %v", err)
			}
			if _, err := os.Lstat("/etc/x"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("host /etc/x: %v", err)
			}
		})
	}
	// A symlink to a host path is a dangling one in the rootfs: refused.
	victimBefore := tree(t, victim)
	must(t, os.Symlink(victim, filepath.Join(root, "mnt")))
	before := tree(t, root)
	for _, target := range []string{"/mnt", "/mnt/x"} {
		spec := Spec{Rootfs: root, Mounts: []Mount{{Type: MountBind, Source: src, Target: target}}}
		_, _, err := sh(t, spec, `true`)
		if !errors.Is(err, ErrInvalidMount) || !strings.Contains(err.Error(), "dangling symlink") {
			t.Errorf("%s: got %v, want a dangling symlink refused", target, err)
		}
	}
	checkTree(t, root, before)
	checkTree(t, victim, victimBefore)
}

// TestMountCleanupSymlinkSwap is BuildKit's CVE-2024-23652: a step
// replaces a mount point's parent that the runtime created with a symlink
// to a host path; cleaning up must not follow it.
func TestMountCleanupSymlinkSwap(t *testing.T) {
	root := newRootfs(t)
	victim := hostDir(t, root, "victim", map[string]string{"b/keep": "precious"})
	must(t, os.Mkdir(filepath.Join(victim, "b/c"), 0o755))
	victimBefore := tree(t, victim)
	src := hostDir(t, root, "src", nil)
	for _, script := range []string{
		`mv /a /a.old && ln -s ` + victim + ` /a`,
		`mv /a/b /a/b.old && ln -s ` + victim + `/b /a/b`,
		`mv /a/b /a/b.old && ln -s / /a/b`,
		`mv /a /a.old && ln -s ../../../../../../../.. /a`,
	} {
		t.Run(script, func(t *testing.T) {
			for _, m := range []Mount{
				{Type: MountTmpfs, Target: "/a/b/c"},
				{Type: MountBind, Source: src, Target: "/a/b/c"},
			} {
				spec := Spec{Rootfs: root, Mounts: []Mount{m}}
				shOK(t, spec, script)
				checkTree(t, victim, victimBefore)
				must(t, os.RemoveAll(filepath.Join(root, "a")))
				must(t, os.RemoveAll(filepath.Join(root, "a.old")))
			}
		})
	}
}

func TestMountInvalid(t *testing.T) {
	root := newRootfs(t)
	src := hostDir(t, root, "src", nil)
	file := filepath.Join(filepath.Dir(root), "file")
	writeFile(t, file, "")
	must(t, os.Symlink("/proc", filepath.Join(root, "mnt")))
	must(t, os.Symlink("/nowhere/at/all", filepath.Join(root, "dangling")))
	must(t, os.Mkdir(filepath.Join(root, "dir"), 0o755))
	before := tree(t, root)
	bind := func(target string) Mount { return Mount{Type: MountBind, Source: src, Target: target} }
	tests := []struct {
		name   string
		mounts []Mount
		want   string
	}{
		{"proc", []Mount{bind("/proc/x")}, `invalid mount target "/proc/x": overlaps /proc`},
		{"proc itself", []Mount{bind("/proc")}, "overlaps /proc"},
		{"dev", []Mount{bind("/dev/shm")}, "overlaps /dev"},
		{"sys", []Mount{bind("/sys/fs/x")}, "overlaps /sys"},
		{"hosts", []Mount{bind("/etc/hosts")}, "overlaps /etc/hosts"},
		{"etc", []Mount{bind("/etc")}, "overlaps /etc/hosts"},
		{"root", []Mount{bind("/")}, "is the root"},
		{"unclean", []Mount{bind("/x/../proc/1")}, "overlaps /proc"},
		{"relative", []Mount{bind("x")}, "not an absolute path"},
		{"via symlink", []Mount{bind("/mnt/x/y")}, `"/mnt/x/y" (/proc/x/y in the rootfs): overlaps /proc`},
		{"nested", []Mount{bind("/c"), bind("/c/d")}, `overlaps the mount on /c`},
		{"same", []Mount{bind("/c"), {Type: MountTmpfs, Target: "/c"}}, `overlaps the mount on /c`},
		{"type", []Mount{{Type: "volume", Target: "/x"}}, `unknown type "volume"`},
		{"source relative", []Mount{{Type: MountBind, Source: "src", Target: "/x"}}, "not an absolute path"},
		{"source missing", []Mount{{Type: MountBind, Source: src + "/nope", Target: "/x"}}, "no such file"},
		{"tmpfs source", []Mount{{Type: MountTmpfs, Source: src, Target: "/x"}}, "tmpfs has no source"},
		{"tmpfs mode", []Mount{{Type: MountTmpfs, Target: "/x", Mode: 0o40755}}, "bits other than permissions"},
		{"file on dir", []Mount{{Type: MountBind, Source: file, Target: "/dir"}}, "is a directory"},
		{"dir on file", []Mount{bind("/etc/passwd")}, "is not a directory"},
		{"dangling", []Mount{bind("/dangling")}, "dangling symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := sh(t, Spec{Rootfs: root, Mounts: tt.mounts}, `echo ran`)
			if !errors.Is(err, ErrInvalidMount) {
				t.Errorf("got %v, want ErrInvalidMount", err)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
			checkTree(t, root, before)
		})
	}
}

func TestTargetConflict(t *testing.T) {
	earlier := []extraMount{{Target: "/cache", Path: "root/.cache"}}
	tests := []struct {
		rel, want string
	}{
		{"usr/src", ""},
		{"procfs", ""},
		{"etc/hostsx", ""},
		{"root/.cache2", ""},
		{".", "is the root"},
		{"proc", "overlaps /proc"},
		{"dev/shm", "overlaps /dev"},
		{"etc", "overlaps /etc/hosts"},
		{"etc/resolv.conf", "overlaps /etc/resolv.conf"},
		{"root", "overlaps the mount on /cache"},
		{"root/.cache/x", "overlaps the mount on /cache"},
	}
	for _, tt := range tests {
		if got := targetConflict(tt.rel, earlier); got != tt.want {
			t.Errorf("targetConflict(%q) = %q, want %q", tt.rel, got, tt.want)
		}
	}
}

// BenchmarkRunMounts is BenchmarkRunTrue's "bare" case with a bind mount
// and a tmpfs whose mount points (and a parent) are created each run.
func BenchmarkRunMounts(b *testing.B) {
	root := newRootfs(b)
	src := hostDir(b, root, "src", nil)
	spec := Spec{Rootfs: root, Args: []string{"/bin/true"}, Mounts: []Mount{
		{Type: MountBind, Source: src, Target: "/src", Readonly: true},
		{Type: MountTmpfs, Target: "/run/tmp"},
	}}
	for b.Loop() {
		if err := Run(context.Background(), spec); err != nil {
			b.Fatal(err)
		}
	}
}
