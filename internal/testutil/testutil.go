// Package testutil holds helpers shared by lading's tests: root checks, a
// busybox root filesystem made from Debian's busybox-static, and the check
// that a test left nothing mounted.
package testutil

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/internal/mountinfo"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (real mounts and containers); CI runs tests as root")
	}
}

// RequireTool skips the test when a command is not installed.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (make deps installs it)", name)
	}
	return p
}

// Busybox is the path of Debian's static busybox.
const Busybox = "/bin/busybox"

// BusyboxRootfs fills dir with a minimal root filesystem: a static busybox
// with its applets as symlinks in /bin, and /etc/passwd and /etc/group
// with root, a user "app" (1000:1000, also in group "staff" 50) and
// "nobody".
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	RequireTool(t, Busybox)
	bin := filepath.Join(dir, "bin")
	must(t, os.MkdirAll(bin, 0o755))
	data, err := os.ReadFile(Busybox)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755))
	out, err := exec.Command(Busybox, "--list").Output()
	must(t, err)
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		must(t, os.Symlink("busybox", filepath.Join(bin, applet)))
	}
	etc := filepath.Join(dir, "etc")
	must(t, os.MkdirAll(etc, 0o755))
	must(t, os.WriteFile(filepath.Join(etc, "passwd"), []byte(
		"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(etc, "group"), []byte(
		"root:x:0:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n"), 0o644))
	for _, d := range []string{"root", "tmp", "home/app"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(t, os.Chmod(filepath.Join(dir, "tmp"), 0o777|os.ModeSticky))
	if os.Geteuid() == 0 {
		must(t, os.Chown(filepath.Join(dir, "home/app"), 1000, 1000))
	}
}

// MountsUnder lists the mount points in /proc/self/mountinfo at or below
// dir.
func MountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	must(t, err)
	defer f.Close()
	dir = filepath.Clean(dir)
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := mountinfo.Unescape(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// CheckNoMounts registers a cleanup that fails the test if anything is
// still mounted under dir when the test ends.
func CheckNoMounts(t testing.TB, dir string) {
	t.Helper()
	t.Cleanup(func() {
		if m := MountsUnder(t, dir); len(m) > 0 {
			t.Errorf("mounts left behind under %s: %v", dir, m)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
