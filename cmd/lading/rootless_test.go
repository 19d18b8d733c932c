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

// lading runs the CLI as the test user, with its own home, data and
// runtime directories.
func (h *rootlessHome) lading(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(h.exe, args...)
	cmd.Env = append([]string{
		cliEnv + "=1",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + filepath.Join(h.dir, "home"),
		"XDG_DATA_HOME=" + filepath.Join(h.dir, "data"),
		"XDG_RUNTIME_DIR=" + filepath.Join(h.dir, "run"),
		"TMPDIR=" + filepath.Join(h.dir, "run"),
	}, env...)
	cmd.Dir = filepath.Join(h.dir, "home")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(h.uid), Gid: uint32(h.gid)}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
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
RUN echo hi > /tmp/by-app && id -u > /tmp/uid
`

// TestRootlessBuildMatchesRoot builds the same recipe as root and as an
// unprivileged user: with SOURCE_DATE_EPOCH set the OCI tarballs are
// equal byte for byte, owners and whiteouts included, and the user's
// build wrote nothing outside its own directories.
func TestRootlessBuildMatchesRoot(t *testing.T) {
	uid, gid := rootlessAccount(t)
	h := newRootlessHome(t, uid, gid)
	ctxDir := filepath.Join(h.dir, "ctx")
	writeFiles(t, ctxDir, map[string]string{"Recipe": rootlessRecipe, "greet.txt": "hello\n"})
	bb, err := os.ReadFile(testutil.Busybox)
	if err != nil {
		t.Skip("busybox-static is not installed")
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	epoch := "SOURCE_DATE_EPOCH=1700000000"

	rootOut := filepath.Join(t.TempDir(), "root.tar")
	r := ladingEnv(t, []string{epoch}, "--root", t.TempDir(), "build", "--output", "type=oci,dest="+rootOut, ctxDir)
	if r.code != 0 {
		t.Fatalf("root build: %d\n%s", r.code, r.stderr)
	}

	userOut := filepath.Join(h.dir, "out", "user.tar")
	r = h.lading(t, []string{epoch}, "build", "--output", "type=oci,dest="+userOut, ctxDir)
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
	testutil.CheckNoMounts(t, h.dir)
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
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h.Name, "blobs/") {
			continue
		}
		for name, owner := range layerOwners(t, tr) {
			got[name] = owner
		}
	}
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

// writtenOutside fails the test for any file owned by the test user or
// its subordinate ids in the places a stray write would land (temp
// directories, /run, /dev/shm), outside the test user's own directory.
func writtenOutside(t *testing.T, h *rootlessHome) {
	t.Helper()
	ours := func(id uint32) bool {
		return int(id) == h.uid || (id >= rootlessSubStart && id < rootlessSubStart+rootlessSubCount)
	}
	for _, top := range []string{os.TempDir(), "/var/tmp", "/dev/shm", "/run"} {
		filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if p == h.dir {
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
