package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/testutil"
	"github.com/lading-build/lading/runtime"
)

// The unprivileged user the rootless tests build as, and its subordinate
// ids, made by the tests when missing.
const (
	rootlessUser     = "ladingrootless"
	rootlessSubStart = 524288
	rootlessSubCount = 65536
)

// rootlessAccount returns the uid and gid of the test user, creating it
// and its /etc/subuid and /etc/subgid ranges when missing.
func rootlessAccount(t *testing.T) (uid, gid int) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "newuidmap")
	u, err := user.Lookup(rootlessUser)
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", rootlessUser).CombinedOutput()
		if err != nil {
			t.Fatalf("useradd: %v: %s", err, out)
		}
		if u, err = user.Lookup(rootlessUser); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	for _, f := range []struct{ file, flag string }{{"/etc/subuid", "--add-subuids"}, {"/etc/subgid", "--add-subgids"}} {
		r, err := runtime.SubIDRanges(f.file, rootlessUser, uid)
		if err != nil {
			t.Fatal(err)
		}
		if len(r) > 0 {
			continue
		}
		span := strconv.Itoa(rootlessSubStart) + "-" + strconv.Itoa(rootlessSubStart+rootlessSubCount-1)
		if out, err := exec.Command("usermod", f.flag, span, rootlessUser).CombinedOutput(); err != nil {
			t.Fatalf("usermod: %v: %s", err, out)
		}
	}
	return uid, gid
}

// rootlessHome is a directory owned by the test user holding its home,
// data and runtime directories and a copy of the test binary (the one
// go test made is in a directory only root can enter).
type rootlessHome struct {
	dir, exe string
	uid, gid int
	// tun, when set, is a tun device node the test made: lading then runs
	// in a private mount namespace where it is bound over /dev/net/tun, so
	// a test can choose the device's mode without touching the host's.
	tun string
}

func newRootlessHome(t *testing.T, uid, gid int) *rootlessHome {
	t.Helper()
	dir, err := os.MkdirTemp("", "lading-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &rootlessHome{dir: dir, exe: filepath.Join(dir, "lading"), uid: uid, gid: gid}
	bin, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"home", "data", "run", "out"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// context makes a build context readable by the test user with files
// and a static busybox.
func (h *rootlessHome) context(t *testing.T, files map[string]string) string {
	t.Helper()
	dir, err := os.MkdirTemp(h.dir, "ctx-")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, files)
	bb, err := os.ReadFile(testutil.Busybox)
	if err != nil {
		t.Skip("busybox-static is not installed")
	}
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{h.dir, dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// lading runs the CLI as the test user, with its own home, data and
// runtime directories.
func (h *rootlessHome) lading(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(h.exe, args...)
	if h.tun != "" {
		// unshare and setpriv (util-linux): bind the test's node in a
		// private mount namespace, then drop to the test user as
		// Credential below would (no supplementary groups).
		script := `tun=$1 u=$2 g=$3; shift 3; mount --bind "$tun" /dev/net/tun && exec setpriv --reuid="$u" --regid="$g" --clear-groups -- "$@"`
		cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
			h.tun, strconv.Itoa(h.uid), strconv.Itoa(h.gid), h.exe}, args...)...)
	}
	cmd.Env = append([]string{
		cliEnv + "=1",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + filepath.Join(h.dir, "home"),
		"XDG_DATA_HOME=" + filepath.Join(h.dir, "data"),
		"XDG_RUNTIME_DIR=" + filepath.Join(h.dir, "run"),
	}, env...)
	cmd.Dir = filepath.Join(h.dir, "home")
	if h.tun == "" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(h.uid), Gid: uint32(h.gid)}}
	}
	return runCmd(t, cmd)
}

// rootlessRecipe has a RUN, COPY --chown, USER, a deleted file and a
// replaced directory, each in a layer of its own.
const rootlessRecipe = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /data/dir /tmp && chmod 1777 /tmp && \
    printf 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n' > /etc/passwd && \
    printf 'root:x:0:\napp:x:1000:\n' > /etc/group && \
    echo old > /data/dir/old && echo gone > /data/gone && mkdir -p /data/dir/sub && echo x > /data/dir/sub/x
COPY --chown=1000:1000 greet.txt /home/app/greet.txt
RUN rm /data/gone && rm -rf /data/dir && mkdir /data/dir && echo new > /data/dir/new && chown 1000:1000 /data/dir
USER app
RUN --mount=type=secret,id=s,uid=1000 test "$(cat /run/secrets/s)" = secret && echo hi > /tmp/by-app && id -u > /tmp/uid
`

// TestRootlessBuildMatchesRoot builds the same recipe as root and as an
// unprivileged user: with SOURCE_DATE_EPOCH set the OCI tarballs are
// equal byte for byte, owners and whiteouts included, and the user's
// build wrote nothing outside its own directories.
func TestRootlessBuildMatchesRoot(t *testing.T) {
	uid, gid := rootlessAccount(t)
	h := newRootlessHome(t, uid, gid)
	testutil.CheckNoMounts(t, h.dir)
	watchStray(t, h)
	ctxDir := h.context(t, map[string]string{"Recipe": rootlessRecipe, "greet.txt": "hello\n", "secret": "secret"})
	epoch := "SOURCE_DATE_EPOCH=1700000000"

	secret := "--secret=id=s,src=" + filepath.Join(ctxDir, "secret")
	rootOut := filepath.Join(t.TempDir(), "root.tar")
	r := ladingEnv(t, []string{epoch}, "--root", t.TempDir(), "build", secret, "--output", "type=oci,dest="+rootOut, ctxDir)
	if r.code != 0 {
		t.Fatalf("root build: %d\n%s", r.code, r.stderr)
	}

	userOut := filepath.Join(h.dir, "out", "user.tar")
	r = h.lading(t, []string{epoch}, "build", secret, "--output", "type=oci,dest="+userOut, ctxDir)
	if r.code != 0 {
		t.Fatalf("rootless build: %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "warning: /etc/subuid") {
		t.Errorf("warned about missing ranges:\n%s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "data", "lading")); err != nil {
		t.Errorf("no store in $XDG_DATA_HOME/lading: %v", err)
	}
	checkOwners(t, userOut)
	a, _ := os.ReadFile(rootOut)
	b, _ := os.ReadFile(userOut)
	if !bytes.Equal(a, b) {
		t.Errorf("rootless OCI tarball (%d bytes) differs from root's (%d bytes)", len(b), len(a))
	}
	writtenOutside(t, h)
}

// checkOwners looks into the layers of an OCI tarball for the owners
// and whiteouts the recipe made.
func checkOwners(t *testing.T, archive string) {
	t.Helper()
	want := map[string]string{
		"home/app/greet.txt":    "1000:1000",
		"tmp/by-app":            "1000:1000",
		"data/.wh.gone":         "0:0",
		"data/dir/.wh..wh..opq": "0:0",
	}
	got := map[string]string{}
	archiveBlobs(t, archive, func(_ string, r io.Reader) {
		for name, owner := range layerOwners(t, r) {
			got[name] = owner
		}
	})
	for name, owner := range want {
		if got[name] != owner {
			t.Errorf("%s: owner %q, want %q", name, got[name], owner)
		}
	}
}

// layerOwners lists uid:gid of each entry of r when it is a layer
// (gzipped or not); other blobs give nothing.
func layerOwners(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			return out
		}
		out[strings.TrimSuffix(h.Name, "/")] = strconv.Itoa(h.Uid) + ":" + strconv.Itoa(h.Gid)
	}
}

// strayDirs are where a stray write would land.
var strayDirs = []string{os.TempDir(), "/var/tmp", "/dev/shm", "/run"}

// testHome reports whether p is the home of a rootless test: h's own, or
// one that another run of these tests (a concurrent go test) made for the
// same test user. Their contents are not stray writes.
func (h *rootlessHome) testHome(p string) bool {
	return p == h.dir || (filepath.Dir(p) == filepath.Dir(h.dir) && strings.HasPrefix(filepath.Base(p), "lading-rootless-"))
}

// ours reports whether id is the test user's or one of its subordinate
// ids.
func (h *rootlessHome) ours(id uint32) bool {
	return int(id) == h.uid || (id >= rootlessSubStart && id < rootlessSubStart+rootlessSubCount)
}

// watchStray watches strayDirs for entries the test user creates while
// the test runs (even ones removed again soon, as long as they exist
// when the event is read), and fails the test for each at its end.
func watchStray(t *testing.T, h *rootlessHome) {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[int32]string{}
	for _, d := range strayDirs {
		if wd, err := unix.InotifyAddWatch(fd, d, unix.IN_CREATE|unix.IN_MOVED_TO); err == nil {
			dirs[int32(wd)] = d
		}
	}
	var stray []string
	f, done := inotifyEvents(fd, func(wd int32, name string) {
		p := filepath.Join(dirs[wd], name)
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil && (h.ours(st.Uid) || h.ours(st.Gid)) && !h.testHome(p) {
			stray = append(stray, p)
		}
	})
	t.Cleanup(func() {
		f.Close()
		<-done
		for _, p := range stray {
			t.Errorf("rootless build wrote %s", p)
		}
	})
}

// writtenOutside fails the test for any file owned by the test user or
// its subordinate ids left in strayDirs, outside the test user's own
// directory.
func writtenOutside(t *testing.T, h *rootlessHome) {
	t.Helper()
	ours := h.ours
	for _, top := range strayDirs {
		filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if h.testHome(p) {
				return filepath.SkipDir
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && (ours(st.Uid) || ours(st.Gid)) {
				t.Errorf("rootless build wrote %s", p)
			}
			return nil
		})
	}
}

// busyboxBase is the start of the recipes below: busybox with its applets.
const busyboxBase = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
`

// TestRootlessRunIsolation: a rootless RUN has the isolation of root
// mode (its own pid, uts, ipc, mount and network namespaces, seccomp) in
// the user namespace, root there being the test user outside; the
// default network is pasta's where /dev/net/tun allows, loopback only
// with a warning where not; the host's network gets the host's /sys.
func TestRootlessRunIsolation(t *testing.T) {
	uid, gid := rootlessAccount(t)
	h := newRootlessHome(t, uid, gid)
	testutil.CheckNoMounts(t, h.dir)
	ctxDir := h.context(t, map[string]string{"Recipe": busyboxBase + `RUN echo "uidmap $(cat /proc/self/uid_map)"; \
    echo "pid1 $(cat /proc/1/cmdline | tr '\0' ' ')"; echo "hostname $(hostname)"; \
    grep -E '^(Seccomp|CapEff):' /proc/self/status; \
    echo "ipc $(readlink /proc/self/ns/ipc)"; echo "mnt $(readlink /proc/self/ns/mnt)"; \
    echo "net $(ls /sys/class/net | tr '\n' ' ')"; ip route | sed 's/^/route /'
`})
	self := func(ns string) string {
		l, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	run := func(args ...string) (string, string) {
		t.Helper()
		r := h.lading(t, nil, append([]string{"build", "--progress", "plain", "--no-cache"}, append(args, ctxDir)...)...)
		if r.code != 0 {
			t.Fatalf("rootless build %v: %d\n%s", args, r.code, r.stderr)
		}
		return r.stdout + r.stderr, r.stderr
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("no /dev/net/tun: %v", err)
	}
	// The test's own tun node, bound over /dev/net/tun for lading only:
	// 0600 as Debian without udev leaves it, so loopback only.
	h.tun = filepath.Join(h.dir, "tun")
	if err := unix.Mknod(h.tun, unix.S_IFCHR|0o600, int(unix.Mkdev(10, 200))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h.tun, 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr := run()
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "uidmap 0 "+strconv.Itoa(uid)+" 1 ") {
		t.Errorf("root in the RUN step is not the test user outside:\n%s", out)
	}
	for _, want := range []string{
		"pid1 /bin/sh -c ",
		"Seccomp:\t2",
		"net lo \n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr, "/dev/net/tun cannot be opened") {
		t.Errorf("no warning about /dev/net/tun:\n%s", stderr)
	}
	if strings.Contains(out, "hostname "+mustHostname(t)+"\n") {
		t.Errorf("the RUN step has the host's hostname:\n%s", out)
	}
	for _, ns := range []string{"ipc", "mnt"} {
		if strings.Contains(out, ns+" "+self(ns)) {
			t.Errorf("the RUN step shares the host's %s namespace", ns)
		}
	}
	if strings.Contains(out, "CapEff:\t0000000000000000") {
		t.Errorf("root in the RUN step has no capabilities in its namespace:\n%s", out)
	}

	// With the mode udev gives it, pasta connects the namespace.
	if err := os.Chmod(h.tun, 0o666); err != nil {
		t.Fatal(err)
	}
	if out, _ = run(); !strings.Contains(out, "route default via") {
		t.Errorf("no default route through pasta:\n%s", out)
	}
	out, _ = run("--network", "host", "--allow", "network.host")
	if strings.Contains(out, "net lo \n") || !strings.Contains(out, "route default") {
		t.Errorf("--network host: not the host's interfaces:\n%s", out)
	}
}

func mustHostname(t *testing.T) string {
	t.Helper()
	n, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRootlessWithoutRanges: a user without /etc/subuid ranges builds
// with its own ids only, warned; an owner it cannot map is an error that
// says why.
func TestRootlessWithoutRanges(t *testing.T) {
	testutil.RequireRoot(t)
	const name = "ladingnosubid"
	u, err := user.Lookup(name)
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v: %s", err, out)
		}
		if u, err = user.Lookup(name); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if r, _ := runtime.SubIDRanges("/etc/subuid", name, uid); len(r) > 0 {
		t.Skipf("%s has subordinate uids", name)
	}
	h := newRootlessHome(t, uid, gid)
	ctxDir := h.context(t, map[string]string{"Recipe": busyboxBase + "RUN echo hi > /x\n"})
	r := h.lading(t, nil, "build", ctxDir)
	if r.code != 0 {
		t.Fatalf("build: %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "warning: /etc/subuid or /etc/subgid has no range") {
		t.Errorf("no warning about the single-id mapping:\n%s", r.stderr)
	}
	writeFiles(t, ctxDir, map[string]string{"Recipe": busyboxBase + "COPY --chown=1000:1000 busybox /b\n"})
	r = h.lading(t, nil, "build", ctxDir)
	if want := "Recipe:4: COPY: copying busybox to /b: owner 1000:1000 is not mapped"; r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("build with --chown: %d, want 1 and %q:\n%s", r.code, want, r.stderr)
	}
}

// TestRootlessNoUserNamespace: where user namespaces are forbidden,
// lading stops at once and names the setting.
func TestRootlessNoUserNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	unshare := testutil.RequireTool(t, "unshare")
	// The limit is per user namespace: zero in a throwaway one.
	cmd := exec.Command(unshare, "--user", "--map-root-user", "sh", "-c",
		`echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" --rootless build "$1"`, os.Args[0], t.TempDir())
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, out)
	}
	if want := "rootless mode needs a user namespace, but user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0"; !strings.Contains(string(out), want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}
