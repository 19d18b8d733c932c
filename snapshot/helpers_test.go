package snapshot

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/mountinfo"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts, mknod, chown and trusted.* xattrs")
	}
}

// testDir returns a temporary directory and checks, when the test ends,
// that nothing is left mounted below it.
func testDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { assertNoMounts(t, dir) })
	return dir
}

func assertNoMounts(t testing.TB, dir string) {
	t.Helper()
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	mps, err := mountinfo.Under(dir)
	if err != nil {
		t.Fatalf("reading mountinfo: %v", err)
	}
	if len(mps) > 0 {
		t.Errorf("mounts left under %s: %v", dir, mps)
		_ = UnmountAll(dir)
	}
}

// mountAt mounts mounts at a new directory under parent and unmounts it
// when the test ends.
func mountAt(t testing.TB, mounts []Mount, parent, name string) string {
	t.Helper()
	target := filepath.Join(parent, name)
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MountAll(mounts, target); err != nil {
		t.Fatalf("MountAll: %v", err)
	}
	t.Cleanup(func() {
		if err := UnmountAll(target); err != nil {
			t.Errorf("UnmountAll: %v", err)
		}
	})
	return target
}

func unmount(t testing.TB, target string) {
	t.Helper()
	if err := UnmountAll(target); err != nil {
		t.Fatalf("UnmountAll: %v", err)
	}
}

// node is what a tree comparison looks at for one path.
type node struct {
	Mode   uint32
	UID    uint32
	GID    uint32
	Rdev   uint64
	Mtime  int64 // seconds: layers keep no more
	Data   string
	Link   string
	Xattrs string
	Inode  uint64 `json:"-"`
}

func readTree(t testing.TB, root string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev, Mtime: st.Mtim.Sec, Inode: st.Ino}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			n.Data = hex.EncodeToString(sum[:8])
		case unix.S_IFLNK:
			n.Link, _ = os.Readlink(p)
		}
		xs, err := xattrs(p)
		if err != nil {
			return err
		}
		var parts []string
		for _, x := range xs {
			parts = append(parts, x.name+"="+hex.EncodeToString(x.value))
		}
		n.Xattrs = strings.Join(parts, ",")
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatalf("reading tree %s: %v", root, err)
	}
	return out
}

func compareTrees(t testing.TB, got, want map[string]node) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		switch {
		case !gok:
			t.Errorf("%s: missing", k)
		case !wok:
			t.Errorf("%s: unexpected", k)
		default:
			g.Inode, w.Inode = 0, 0
			if g != w {
				t.Errorf("%s:\n got %+v\nwant %+v", k, g, w)
			}
		}
	}
}

// tarEntry describes one entry of a hand-made layer.
type tarEntry struct {
	name, link string
	typ        byte
	data       string
	mode       int64
	xattrs     map[string]string
}

func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords[paxXattrPrefix+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarHeaders lists the headers of a tar.
func tarHeaders(t testing.TB, b []byte) []*tar.Header {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []*tar.Header
	for {
		h, err := tr.Next()
		if err != nil {
			if err != io.EOF {
				t.Fatalf("reading tar: %v", err)
			}
			return out
		}
		out = append(out, h)
	}
}

func tarNames(hs []*tar.Header) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

func writeFile(t testing.TB, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// listHost returns every path under host except those under skip.
func listHost(t testing.TB, host, skip string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		out = append(out, fmt.Sprintf("%s %v", p, d.Type()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// store gives tests the metadata store under a Snapshotter.
func (b *base) store() *store { return b.st }
