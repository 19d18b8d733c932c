// Package testutil holds helpers shared by lading's tests: root checks, a
// busybox root filesystem made from Debian's busybox-static, and the check
// that a test left nothing mounted.
package testutil

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync/atomic"
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
	out, err := mountinfo.Under(dir)
	must(t, err)
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

// NamespaceHolders lists the processes that are in the namespace ns (a
// link such as "net:[4026532174]", as /proc/PID/ns/net shows it) or hold
// it open; empty once it is gone.
func NamespaceHolders(t testing.TB, ns string) []string {
	t.Helper()
	kind, _, _ := strings.Cut(ns, ":")
	procs, err := filepath.Glob("/proc/[0-9]*")
	must(t, err)
	var found []string
	for _, p := range procs {
		if l, _ := os.Readlink(p + "/ns/" + kind); l == ns {
			found = append(found, p)
			continue
		}
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, fd := range fds {
			if l, _ := os.Readlink(fd); l == ns {
				found = append(found, fd)
			}
		}
	}
	return found
}

// LoopbackListener listens on the host's 127.0.0.1 until the test ends,
// answering every connection with a line, and returns its port and the
// number of connections accepted so far.
func LoopbackListener(t testing.TB) (port int, accepted func() int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Write([]byte("host-loopback-service\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().(*net.TCPAddr).Port, n.Load
}

// Descendants returns the pids and command names of pid's descendants.
func Descendants(pid int) map[int]string {
	type proc struct {
		ppid int
		comm string
	}
	procs := map[int]proc{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lp, rp := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if lp < 1 || rp < lp {
			continue
		}
		f := strings.Fields(string(b[rp+1:]))
		self, err1 := strconv.Atoi(strings.TrimSpace(string(b[:lp])))
		if len(f) < 2 || err1 != nil {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		procs[self] = proc{ppid, string(b[lp+1 : rp])}
	}
	out := map[int]string{}
	for changed := true; changed; {
		changed = false
		for self, p := range procs {
			if _, seen := out[self]; !seen && (p.ppid == pid || out[p.ppid] != "") {
				out[self] = p.comm
				changed = true
			}
		}
	}
	return out
}

// BusyboxDeb is the path of Debian's busybox-static package for arch
// ("arm64") that `make test` downloads into the gitignored testdata/debs.
func BusyboxDeb(arch string) string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "debs", "busybox-static_"+arch+".deb")
}

// BusyboxRootfsArch is BusyboxRootfs with the busybox binary of arch: this
// machine's for its own architecture, else the one in BusyboxDeb(arch),
// extracted with dpkg-deb. The test is skipped when that package is
// missing (make test fetches it).
func BusyboxRootfsArch(t testing.TB, dir, arch string) {
	t.Helper()
	BusyboxRootfs(t, dir)
	if arch == goruntime.GOARCH {
		return
	}
	deb := BusyboxDeb(arch)
	if _, err := os.Stat(deb); err != nil {
		t.Skipf("%s is missing (make test downloads it)", deb)
	}
	RequireTool(t, "dpkg-deb")
	x := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
	}
	data, err := os.ReadFile(filepath.Join(x, "bin", "busybox"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755))
}
