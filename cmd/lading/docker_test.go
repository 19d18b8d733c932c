package main

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/testutil"
)

// dockerRunOptions are what lading needs from `docker run` without
// --privileged (docs/where-it-runs.md): system calls for user namespaces
// and mounts, which Docker's default seccomp profile refuses, and a /proc
// with nothing mounted over it, without which the kernel refuses a new
// /proc in a user namespace. On hosts with AppArmor, also
// --security-opt apparmor=unconfined.
var dockerRunOptions = []string{"--security-opt", "seccomp=unconfined", "--security-opt", "systempaths=unconfined"}

// privateDockerd starts a dockerd of the test's own (private data, exec
// and socket directories; no iptables, no bridge) and returns the docker
// command line that talks to it. It is stopped when the test ends.
func privateDockerd(t *testing.T) []string {
	t.Helper()
	testutil.RequireRoot(t)
	dockerd := testutil.RequireTool(t, "dockerd")
	docker := testutil.RequireTool(t, "docker")
	dir, err := os.MkdirTemp("", "lading-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckNoMounts(t, dir)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "run", "docker.sock")
	if err := os.Mkdir(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	created := watchCreate(t, filepath.Dir(sock), "docker.sock")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(dockerd, "--iptables=false", "--ip-masq=false", "--bridge=none",
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "-H", "unix://"+sock)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		// What dockerd may leave mounted (its own bind of the data root).
		for _, m := range testutil.MountsUnder(t, dir) {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	})
	select {
	case <-created:
	case <-exited:
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("dockerd exited:\n%s", log)
	}
	d := []string{docker, "-H", "unix://" + sock}
	// The socket listens before the daemon serves: info waits for it.
	if out, err := exec.Command(d[0], append(d[1:], "info")...).CombinedOutput(); err != nil {
		t.Fatalf("docker info: %v\n%s", err, out)
	}
	return d
}

// inotifyEvents reads the events of the inotify instance fd (made
// non-blocking) in a goroutine, calling fn with each one's watch and
// name, until the returned file is closed; done is closed then.
func inotifyEvents(fd int, fn func(wd int32, name string)) (f *os.File, done <-chan struct{}) {
	f = os.NewFile(uintptr(fd), "inotify")
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
				off += unix.SizeofInotifyEvent + int(ev.Len)
				fn(ev.Wd, name)
			}
		}
	}()
	return f, ch
}

// watchCreate returns a channel closed once dir has an entry name (at
// once when it has one already).
func watchCreate(t *testing.T, dir, name string) <-chan struct{} {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{})
	var once sync.Once
	f, _ := inotifyEvents(fd, func(_ int32, got string) {
		if got == name {
			once.Do(func() { close(ch) })
		}
	})
	t.Cleanup(func() { f.Close() })
	if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
		once.Do(func() { close(ch) })
	}
	return ch
}

// builderImage writes the tarball of a minimal image for `docker import`:
// busybox, this test binary as /usr/local/bin/lading with the libraries
// it and newuidmap/newgidmap need, the user build (1000) with
// subordinate ids, and newuidmap/newgidmap with file capabilities
// (CAP_SETUID, CAP_SETGID) instead of setuid root: a setuid-root
// newuidmap (Debian's) needs CAP_SYS_ADMIN, which a container lacks.
func builderImage(t *testing.T, archive string) {
	t.Helper()
	newuidmap := testutil.RequireTool(t, "newuidmap")
	newgidmap := testutil.RequireTool(t, "newgidmap")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mkdir := func(p string, mode int64, uid int) {
		for _, d := range parents(p) {
			if !dirs[d] {
				dirs[d] = true
				m, u := int64(0o755), 0
				if d == p {
					m, u = mode, uid
				}
				must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: m, Uid: u, Gid: u}))
			}
		}
	}
	file := func(name string, data []byte, mode int64, pax map[string]string) {
		mkdir(filepath.Dir(name), 0o755, 0)
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), PAXRecords: pax}))
		_, err := tw.Write(data)
		must(t, err)
	}
	hostFile := func(src, name string, mode int64, pax map[string]string) {
		data, err := os.ReadFile(src)
		must(t, err)
		file(name, data, mode, pax)
	}
	hostFile(testutil.Busybox, "bin/busybox", 0o755, nil)
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/sh", Linkname: "busybox"}))
	hostFile("/proc/self/exe", "usr/local/bin/lading", 0o755, nil)
	hostFile(newuidmap, "usr/bin/newuidmap", 0o755, fileCaps(unix.CAP_SETUID))
	hostFile(newgidmap, "usr/bin/newgidmap", 0o755, fileCaps(unix.CAP_SETGID))
	for _, lib := range sharedLibs(t, "/proc/self/exe", newuidmap, newgidmap) {
		hostFile(lib, strings.TrimPrefix(lib, "/"), 0o755, nil)
	}
	file("etc/passwd", []byte("root:x:0:0::/root:/bin/sh\nbuild:x:1000:1000::/home/build:/bin/sh\n"), 0o644, nil)
	file("etc/group", []byte("root:x:0:\nbuild:x:1000:\n"), 0o644, nil)
	file("etc/subuid", []byte("build:100000:65536\n"), 0o644, nil)
	file("etc/subgid", []byte("build:100000:65536\n"), 0o644, nil)
	mkdir("tmp", 0o1777, 0)
	mkdir("home/build", 0o755, 1000)
	must(t, tw.Close())
	must(t, os.WriteFile(archive, buf.Bytes(), 0o644))
}

// parents lists p and its parent directories, outermost first.
func parents(p string) []string {
	if p == "." || p == "" {
		return nil
	}
	return append(parents(filepath.Dir(p)), p)
}

// fileCaps is the PAX record of a security.capability attribute giving
// one capability, permitted and effective (VFS_CAP_REVISION_2).
func fileCaps(c int) map[string]string {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|1) // revision 2, effective
	binary.LittleEndian.PutUint32(b[4:], 1<<uint(c))   // permitted, low word
	return map[string]string{"SCHILY.xattr.security.capability": string(b)}
}

// sharedLibs lists the shared libraries (and the loader) the programs
// need, from ldd.
func sharedLibs(t *testing.T, progs ...string) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for _, p := range progs {
		b, err := exec.Command("ldd", p).Output()
		if err != nil {
			continue // static
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			var lib string
			switch {
			case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
				lib = f[2]
			case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
				lib = f[0]
			}
			if lib != "" && !seen[lib] {
				seen[lib] = true
				real, err := filepath.EvalSymlinks(lib)
				must(t, err)
				out = append(out, real)
				if real != lib {
					out = append(out, lib)
				}
			}
		}
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDockerUnprivileged builds, inside `docker run` without --privileged
// and as a non-root user, the recipe of the rootless test: the OCI
// tarball equals the one lading builds as root on the host.
func TestDockerUnprivileged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dockerd")
	}
	d := privateDockerd(t)
	tmp := t.TempDir()
	archive := filepath.Join(tmp, "image.tar")
	builderImage(t, archive)
	if out, err := exec.Command(d[0], append(d[1:], "import", archive, "lading-builder:test")...).CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	ctxDir := filepath.Join(tmp, "ctx")
	writeFiles(t, ctxDir, map[string]string{"Recipe": rootlessRecipe, "greet.txt": "hello\n", "secret": "secret"})
	bb, err := os.ReadFile(testutil.Busybox)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(ctxDir, "busybox"), bb, 0o755))
	outDir := filepath.Join(tmp, "out")
	must(t, os.Mkdir(outDir, 0o755))
	must(t, os.Chown(outDir, 1000, 1000))
	// The store on a volume, as overlayfs cannot use the container's own
	// overlay root as its upper layer.
	storeDir := filepath.Join(tmp, "store")
	must(t, os.Mkdir(storeDir, 0o755))
	must(t, os.Chown(storeDir, 1000, 1000))
	must(t, os.Chmod(tmp, 0o755))

	epoch := "SOURCE_DATE_EPOCH=1700000000"
	rootOut := filepath.Join(tmp, "root.tar")
	r := ladingEnv(t, []string{epoch}, "--root", t.TempDir(), "build", "--secret=id=s,src="+filepath.Join(ctxDir, "secret"),
		"--output", "type=oci,dest="+rootOut, ctxDir)
	if r.code != 0 {
		t.Fatalf("root build: %d\n%s", r.code, r.stderr)
	}

	args := append(append([]string{"run", "--rm", "--network", "none", "--user", "1000:1000"}, dockerRunOptions...),
		"-e", cliEnv+"=1", "-e", epoch, "-e", "HOME=/home/build",
		"-v", ctxDir+":/ctx:ro", "-v", outDir+":/out", "-v", storeDir+":/home/build/.local/share",
		"lading-builder:test", "/usr/local/bin/lading", "build", "--secret=id=s,src=/ctx/secret",
		"--output", "type=oci,dest=/out/image.tar", "/ctx")
	out, err := exec.Command(d[0], append(d[1:], args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("lading in docker: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(storeDir, "lading", "snapshots", "overlay", "snapshots")); err != nil {
		t.Errorf("no overlay snapshots in the container: %v\n%s", err, out)
	}
	a, _ := os.ReadFile(rootOut)
	b, _ := os.ReadFile(filepath.Join(outDir, "image.tar"))
	if len(b) == 0 || !bytes.Equal(a, b) {
		t.Errorf("OCI tarball built in docker (%d bytes) differs from root's (%d bytes)", len(b), len(a))
	}

	// Docker's default seccomp profile refuses user namespaces: lading
	// says so, and what to do.
	out, err = exec.Command(d[0], append(d[1:], "run", "--rm", "--network", "none", "--user", "1000:1000", "-e", cliEnv+"=1",
		"lading-builder:test", "/usr/local/bin/lading", "build", "/")...).CombinedOutput()
	if want := "--security-opt seccomp=unconfined"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("default seccomp profile: %v, want a failure naming %q:\n%s", err, want, out)
	}
}
