package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	Init()
	code := m.Run()
	if probe.dir != "" {
		os.RemoveAll(probe.dir)
	}
	os.Exit(code)
}

const busybox = "/bin/busybox"

// needRoot skips tests that start real containers when they cannot run.
func needRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create namespaces and mounts")
	}
	if _, err := os.Stat(busybox); err != nil {
		tb.Skip("needs busybox-static (apt-get install -y busybox-static)")
	}
}

// newRootfs builds a busybox rootfs with users root and app (1000, also in
// group extra 2000). It registers checks that nothing stays mounted under
// the test's directories and that no child process remains.
func newRootfs(tb testing.TB) string {
	tb.Helper()
	needRoot(tb)
	root := filepath.Join(tb.TempDir(), "rootfs")
	must(tb, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(tb, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(tb, os.Chmod(filepath.Dir(root), 0o755))
	bb, err := os.ReadFile(busybox)
	must(tb, err)
	must(tb, os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755))
	out, err := exec.Command(busybox, "--list").Output()
	must(tb, err)
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			must(tb, os.Symlink("busybox", filepath.Join(root, "bin", applet)))
		}
	}
	writeFile(tb, filepath.Join(root, "etc/passwd"),
		"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
	writeFile(tb, filepath.Join(root, "etc/group"),
		"root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
	tb.Cleanup(func() { checkClean(tb, filepath.Dir(root)) })
	return root
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func writeFile(tb testing.TB, name, content string) {
	tb.Helper()
	must(tb, os.WriteFile(name, []byte(content), 0o644))
}

// checkClean fails if anything is mounted under dir or a child process of
// this test binary is still around.
func checkClean(tb testing.TB, dir string) {
	tb.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	must(tb, err)
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, dir) {
			tb.Errorf("left mounted: %s", line)
		}
	}
	if kids := children(tb); len(kids) > 0 {
		tb.Errorf("child processes left: %v", kids)
	}
}

// children lists the processes whose parent is this process.
func children(tb testing.TB) []int {
	tb.Helper()
	entries, err := os.ReadDir("/proc")
	must(tb, err)
	var kids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// fields after the command, which is in parentheses
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) {
			kids = append(kids, pid)
		}
	}
	return kids
}

// hostProcs lists host processes whose command line contains s.
func hostProcs(tb testing.TB, s string) []string {
	tb.Helper()
	entries, err := os.ReadDir("/proc")
	must(tb, err)
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, s) {
			found = append(found, e.Name()+": "+cmd)
		}
	}
	return found
}

// sh runs script with /bin/sh in the container and returns its output.
func sh(tb testing.TB, spec Spec, script string) (string, string, error) {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	spec.Args = []string{"/bin/sh", "-c", script}
	spec.Stdout, spec.Stderr = &stdout, &stderr
	err := Run(context.Background(), spec)
	return stdout.String(), stderr.String(), err
}

// shOK is sh that fails the test on error.
func shOK(tb testing.TB, spec Spec, script string) string {
	tb.Helper()
	out, errOut, err := sh(tb, spec, script)
	if err != nil {
		tb.Fatalf("%s: %v\nstdout: %s\nstderr: %s", script, err, out, errOut)
	}
	return out
}

func TestPid1AndHostname(t *testing.T) {
	root := newRootfs(t)
	got := shOK(t, Spec{Rootfs: root, Hostname: "box"}, `echo $$; hostname; cat /etc/hostname`)
	if want := "1\nbox\nbox\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got = shOK(t, Spec{Rootfs: root}, `hostname`)
	if want := DefaultHostname + "\n"; got != want {
		t.Errorf("default hostname: got %q, want %q", got, want)
	}
}

func TestHostInvisible(t *testing.T) {
	root := newRootfs(t)
	dir := filepath.Dir(root)
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "host secret")
	marker := filepath.Join(dir, "marker-mount")
	must(t, os.Mkdir(marker, 0o755))
	must(t, exec.Command("mount", "-t", "tmpfs", "lading-marker", marker).Run())
	defer exec.Command("umount", marker).Run()

	got := shOK(t, Spec{Rootfs: root}, `
		ls /proc | grep -c '^[0-9]'
		grep -c lading-marker /proc/self/mountinfo
		cat `+secret+` 2>/dev/null || echo unreachable
		cat /proc/1/root`+secret+` 2>/dev/null || echo unreachable
		ps -o pid | wc -l`)
	f := strings.Fields(got)
	if len(f) != 5 {
		t.Fatalf("unexpected output %q", got)
	}
	if n, _ := strconv.Atoi(f[0]); n > 4 {
		t.Errorf("container sees %d pids", n)
	}
	if f[1] != "0" || f[2] != "unreachable" || f[3] != "unreachable" {
		t.Errorf("host visible: %q", got)
	}
	if n, _ := strconv.Atoi(f[4]); n > 5 {
		t.Errorf("ps shows %d lines", n)
	}
}

func TestReadonlyAndMasked(t *testing.T) {
	root := newRootfs(t)
	got := shOK(t, Spec{Rootfs: root}, `
		echo 1 > /proc/sys/kernel/printk 2>/dev/null && echo proc-sys-writable
		echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable
		touch /sys/x 2>/dev/null && echo sys-writable
		echo x > /sys/kernel/uevent_helper 2>/dev/null && echo uevent-writable
		wc -c < /proc/keys
		wc -c < /proc/timer_list
		ls /sys/firmware | wc -l
		touch /tmpfile && echo rootfs-writable
		ls /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/ptmx /dev/pts/ptmx /dev/shm /dev/fd/ >/dev/null && echo dev-ok
		head -c 4 /dev/zero | wc -c`)
	want := "0\n0\n0\nrootfs-writable\ndev-ok\n4\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDeviceNodesUnusableOutsideDev(t *testing.T) {
	root := newRootfs(t)
	// /dev/vda or the like: a host block device made inside the rootfs
	got := shOK(t, Spec{Rootfs: root}, `
		mknod /disk b 7 0 && echo made
		head -c 1 /disk >/dev/null 2>&1 && echo readable || echo blocked
		mknod /dev/disk b 7 0 && head -c 1 /dev/disk >/dev/null 2>&1 && echo dev-readable || echo dev-blocked
		rm -f /disk`)
	if want := "made\nblocked\ndev-blocked\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBackgroundProcessKilled(t *testing.T) {
	root := newRootfs(t)
	shOK(t, Spec{Rootfs: root}, `sleep 7654321 & echo started`)
	if p := hostProcs(t, "7654321"); len(p) > 0 {
		t.Errorf("background process survived: %v", p)
	}
}

func TestUser(t *testing.T) {
	root := newRootfs(t)
	tests := []struct {
		user, want string
	}{
		{"", "0 0 0 /root"},
		{"app", "1000 1000 1000 2000 /home/app"},
		{"1000:2000", "1000 2000 2000 /home/app"},
		{"4242", "4242 0 0 /"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			got := shOK(t, Spec{Rootfs: root, User: tt.user}, `echo $(id -u) $(id -g) $(id -G) $HOME`)
			if got != tt.want+"\n" {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	_, _, err := sh(t, Spec{Rootfs: root, User: "nobody"}, `true`)
	if err == nil || !strings.Contains(err.Error(), "setting up container") {
		t.Errorf("unknown user: got %v", err)
	}
}

// TestCapabilities: Docker's default set without CAP_NET_RAW (bit 13).
func TestCapabilities(t *testing.T) {
	root := newRootfs(t)
	// Docker's default set (a fixed mask, not containerCaps again) less
	// CAP_NET_RAW (bit 13).
	const caps = 0x00000000a80425fb &^ (1 << 13)
	want := fmt.Sprintf("CapInh:\t%016x\nCapPrm:\t%016x\nCapEff:\t%016x\nCapBnd:\t%016x\nCapAmb:\t%016x\n",
		0, caps, caps, caps, 0)
	if got := shOK(t, Spec{Rootfs: root}, `grep Cap /proc/self/status`); got != want {
		t.Errorf("root: got\n%s\nwant\n%s", got, want)
	}
	want = fmt.Sprintf("CapInh:\t%016x\nCapPrm:\t%016x\nCapEff:\t%016x\nCapBnd:\t%016x\nCapAmb:\t%016x\n",
		0, 0, 0, caps, 0)
	if got := shOK(t, Spec{Rootfs: root, User: "app"}, `grep Cap /proc/self/status`); got != want {
		t.Errorf("app: got\n%s\nwant\n%s", got, want)
	}
}

func TestEnv(t *testing.T) {
	root := newRootfs(t)
	got := shOK(t, Spec{Rootfs: root, Env: []string{"A=1", "A=2"}}, `echo $PATH $HOME $A; env | grep -c ^A=`)
	if want := DefaultPath + " /root 2\n1\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got = shOK(t, Spec{Rootfs: root, Env: []string{"PATH=/bin", "HOME=/x"}}, `echo $PATH $HOME`)
	if want := "/bin /x\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEtcFiles(t *testing.T) {
	root := newRootfs(t)
	hosts := "10.0.0.1 image-host\n"
	writeFile(t, filepath.Join(root, "etc/hosts"), hosts)
	etc, err := os.Stat(filepath.Join(root, "etc"))
	must(t, err)
	got := shOK(t, Spec{Rootfs: root, Hosts: "1.2.3.4 given\n", Hostname: "h"},
		`cat /etc/hosts; grep -c nameserver /etc/resolv.conf; echo more >> /etc/hosts; ls /etc`)
	if want := "1.2.3.4 given\n"; !strings.HasPrefix(got, want) {
		t.Errorf("hosts: got %q, want prefix %q", got, want)
	}
	if strings.Contains(got, "\n0\n") {
		t.Errorf("no nameserver in resolv.conf: %q", got)
	}
	b, err := os.ReadFile(filepath.Join(root, "etc/hosts"))
	must(t, err)
	if string(b) != hosts {
		t.Errorf("image's /etc/hosts changed to %q", b)
	}
	for _, name := range []string{"etc/resolv.conf", "etc/hostname", "proc", "dev", "sys"} {
		if _, err := os.Lstat(filepath.Join(root, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/%s left in the rootfs: %v", name, err)
		}
	}
	after, err := os.Stat(filepath.Join(root, "etc"))
	must(t, err)
	if !after.ModTime().Equal(etc.ModTime()) {
		t.Errorf("/etc mtime changed from %v to %v", etc.ModTime(), after.ModTime())
	}
	got = shOK(t, Spec{Rootfs: root}, `grep localhost /etc/hosts | head -1`)
	if !strings.HasPrefix(got, "127.0.0.1") {
		t.Errorf("default hosts: %q", got)
	}
}

func TestStubReplacedByStep(t *testing.T) {
	root := newRootfs(t)
	// A step that fills a directory the runtime created keeps it.
	shOK(t, Spec{Rootfs: root, Cwd: "/work"}, `touch /work/kept`)
	if _, err := os.Stat(filepath.Join(root, "work/kept")); err != nil {
		t.Errorf("working directory content lost: %v", err)
	}
	// The image's symlinked /etc/resolv.conf is left alone.
	must(t, os.Symlink("/run/resolv.conf", filepath.Join(root, "etc/resolv.conf")))
	shOK(t, Spec{Rootfs: root}, `true`)
	if l, err := os.Readlink(filepath.Join(root, "etc/resolv.conf")); err != nil || l != "/run/resolv.conf" {
		t.Errorf("symlink changed: %q %v", l, err)
	}
	// A symlinked /proc is refused rather than followed.
	must(t, os.Symlink("/", filepath.Join(root, "proc")))
	_, _, err := sh(t, Spec{Rootfs: root}, `true`)
	if err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlinked /proc: got %v", err)
	}
}

func TestExitCode(t *testing.T) {
	root := newRootfs(t)
	_, _, err := sh(t, Spec{Rootfs: root}, `exit 3`)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Signal != 0 {
		t.Errorf("got %v, want exit status 3", err)
	}
	err = Run(context.Background(), Spec{Rootfs: root, Args: []string{"nope"}})
	if err == nil || !strings.HasPrefix(err.Error(), "setting up container: ") ||
		!strings.Contains(err.Error(), "not found") {
		t.Errorf("missing command: got %v", err)
	}
}

func TestSetupErrorCwdIsFile(t *testing.T) {
	root := newRootfs(t)
	err := Run(context.Background(), Spec{Rootfs: root, Args: []string{"true"}, Cwd: "/etc/passwd"})
	if err == nil || !strings.HasPrefix(err.Error(), "setting up container: ") {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("got %v, want the errno of the init (ENOTDIR)", err)
	}
}

func TestCwdCannotReachHost(t *testing.T) {
	root := newRootfs(t)
	dir := filepath.Dir(root)
	writeFile(t, filepath.Join(dir, "host-only"), "x")
	// A leaked, inheritable descriptor of a host directory.
	fd, err := unixOpenDirInheritable(dir)
	must(t, err)
	defer closeFD(fd)
	for n := 0; n <= fd+2; n++ {
		cwd := fmt.Sprintf("/proc/self/fd/%d", n)
		out, _, err := sh(t, Spec{Rootfs: root, Cwd: cwd}, `ls; ls ..; ls ../..`)
		if strings.Contains(out, "host-only") || strings.Contains(out, "rootfs") {
			t.Errorf("cwd %s reaches the host: %q", cwd, out)
		}
		if err == nil {
			t.Logf("cwd %s: ran in %q", cwd, out)
		}
	}
}

func TestExeNotWritable(t *testing.T) {
	root := newRootfs(t)
	self, err := os.Executable()
	must(t, err)
	before, err := os.ReadFile(self)
	must(t, err)
	sh(t, Spec{Rootfs: root}, `
		echo x > /proc/self/exe
		echo x > /proc/1/exe
		for p in /proc/[0-9]*; do echo x > $p/exe; done
		true`)
	after, err := os.ReadFile(self)
	must(t, err)
	if !bytes.Equal(before, after) {
		t.Fatal("the host binary was modified")
	}
	f, err := sealedExe()
	must(t, err)
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Error("sealed copy is writable")
	}
	seals, err := fcntlSeals(f)
	must(t, err)
	if seals&initSeals != initSeals {
		t.Errorf("seals %#x, want %#x", seals, initSeals)
	}
}

func TestNetworkNone(t *testing.T) {
	root := newRootfs(t)
	addProbe(t, root)
	got := shOK(t, Spec{Rootfs: root, Network: NetworkNone}, `ls /sys/class/net; cat /sys/class/net/lo/operstate; probe ping >/dev/null && echo ping-ok; test -s /etc/resolv.conf && echo resolv-ok`)
	if want := "lo\nunknown\nping-ok\nresolv-ok\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got = shOK(t, Spec{Rootfs: root}, `ls /sys/class/net | grep -vc '^lo$'`)
	if got == "0\n" {
		t.Errorf("host network shows only lo")
	}
}

func TestPidsLimit(t *testing.T) {
	root := newRootfs(t)
	// After the bomb, the shell may not be able to fork at all: wait and
	// count with builtins only.
	out, errOut, err := sh(t, Spec{Rootfs: root, Limits: Limits{Pids: 20}}, `
		grep -vc ':/$' /proc/self/cgroup
		bomb() { bomb | bomb & }
		bomb
		i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done
		set -- /proc/[0-9]*; echo $#`)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	f := strings.Fields(out)
	if len(f) != 2 || f[0] != "0" {
		t.Fatalf("unexpected output %q (the first number counts cgroups not at the namespace's root)", out)
	}
	if n, _ := strconv.Atoi(f[1]); n > 20 {
		t.Errorf("%d processes under a limit of 20", n)
	}
	checkNoCgroups(t)
}

func TestMemoryAndCPULimits(t *testing.T) {
	root := newRootfs(t)
	got := shOK(t, Spec{Rootfs: root, Limits: Limits{Memory: 64 << 20, CPUs: 0.5}}, `cat /proc/self/cgroup`)
	checkCgroupRoots(t, got)
	// tail keeps the last line of /dev/zero, which never ends.
	_, _, err := sh(t, Spec{Rootfs: root, Limits: Limits{Memory: 16 << 20}}, `exec tail /dev/zero`)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Signal != int(syscall.SIGKILL) || ee.Code != 137 {
		t.Errorf("memory hog: got %v, want it killed", err)
	}
	checkNoCgroups(t)
}

// TestCgroupNamespace: a step has a cgroup namespace of its own, rooted
// at its cgroup (or lading's, without limits): /proc/self/cgroup shows
// "/" for every hierarchy, never the host's paths.
func TestCgroupNamespace(t *testing.T) {
	root := newRootfs(t)
	host, err := os.Readlink("/proc/self/ns/cgroup")
	must(t, err)
	for _, l := range []Limits{{}, {Pids: 100}} {
		got := shOK(t, Spec{Rootfs: root, Limits: l}, `readlink /proc/self/ns/cgroup; cat /proc/self/cgroup`)
		ns, cgroups, _ := strings.Cut(got, "\n")
		if ns == host || !strings.HasPrefix(ns, "cgroup:[") {
			t.Errorf("limits %+v: cgroup namespace %q, host's %q", l, ns, host)
		}
		checkCgroupRoots(t, cgroups)
	}
	checkNoCgroups(t)
}

// checkCgroupRoots checks that every line of a /proc/self/cgroup shows
// the root of its hierarchy.
func checkCgroupRoots(t *testing.T, procCgroup string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(procCgroup), "\n")
	for _, l := range lines {
		if f := strings.SplitN(l, ":", 3); len(f) != 3 || f[2] != "/" {
			t.Errorf("/proc/self/cgroup line %q, want the root /", l)
		}
	}
	if len(lines) == 0 || lines[0] == "" {
		t.Errorf("empty /proc/self/cgroup")
	}
}

// checkNoCgroups fails if Run left a cgroup behind: it looks only at
// the cgroups this test process made, below its own ones.
func checkNoCgroups(t *testing.T) {
	t.Helper()
	own, err := readOwnCgroups()
	must(t, err)
	mine := fmt.Sprintf("%s%d-", cgroupPrefix, os.Getpid())
	dirs := []string{own.v2}
	for _, d := range own.v1 {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), mine) {
				t.Errorf("cgroup left: %s/%s", d, e.Name())
			}
		}
	}
}

func TestConcurrentRuns(t *testing.T) {
	needRoot(t)
	errs := make(chan error, 4)
	roots := make([]string, cap(errs))
	for i := range roots {
		roots[i] = newRootfs(t)
	}
	for i, root := range roots {
		go func() {
			var out bytes.Buffer
			err := Run(context.Background(), Spec{Rootfs: root, Args: []string{"hostname"}, Hostname: fmt.Sprint("c", i), Stdout: &out})
			if err == nil && out.String() != fmt.Sprintf("c%d\n", i) {
				err = fmt.Errorf("container %d: hostname %q", i, out.String())
			}
			errs <- err
		}()
	}
	for range roots {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// notifyWriter calls fn on the first write containing s.
type notifyWriter struct {
	s    string
	fn   func()
	done bool
}

func (w *notifyWriter) Write(b []byte) (int, error) {
	if !w.done && bytes.Contains(b, []byte(w.s)) {
		w.done = true
		w.fn()
	}
	return len(b), nil
}

func TestCancelStreams(t *testing.T) {
	root := newRootfs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The output must arrive while the command runs: it triggers the cancel.
	w := &notifyWriter{s: "ready", fn: cancel}
	start := time.Now()
	err := Run(ctx, Spec{Rootfs: root, Args: []string{"sh", "-c", "sleep 8765432 & echo ready; sleep 8765432"}, Stdout: w})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	if p := hostProcs(t, "8765432"); len(p) > 0 {
		t.Errorf("processes survived: %v", p)
	}
}

// BenchmarkRunTrue measures the overhead of one container: start, setup,
// exec /bin/true, wait and teardown. "ready" uses a rootfs that has all
// mount points, as an image usually has /proc, /dev and /sys; "bare" one
// where every mount point is created and removed again on each run.
func BenchmarkRunTrue(b *testing.B) {
	for _, bare := range []bool{false, true} {
		name := "ready"
		if bare {
			name = "bare"
		}
		b.Run(name, func(b *testing.B) {
			root := newRootfs(b)
			if !bare {
				for _, d := range []string{"proc", "dev", "sys"} {
					must(b, os.Mkdir(filepath.Join(root, d), 0o755))
				}
				for _, f := range []string{"hosts", "resolv.conf", "hostname"} {
					writeFile(b, filepath.Join(root, "etc", f), "")
				}
			}
			spec := Spec{Rootfs: root, Args: []string{"/bin/true"}}
			ctx := context.Background()
			for b.Loop() {
				if err := Run(ctx, spec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
