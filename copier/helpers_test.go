package copier

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var isRoot = os.Geteuid() == 0

// fx is a fixture entry: "f path [content]", "d path", "l path target",
// "h path existing" (hard link), "p path" (fifo). Options after a "|":
// "mode=0755", "owner=1:2", "mtime=<unix seconds>".
type fx string

// build creates fixture entries under dir, in order.
func build(t *testing.T, dir string, entries ...fx) {
	t.Helper()
	for _, e := range entries {
		spec, opts, _ := strings.Cut(string(e), "|")
		f := strings.SplitN(strings.TrimRight(spec, " "), " ", 3)
		p := filepath.Join(dir, f[1])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		arg := ""
		if len(f) > 2 {
			arg = f[2]
		}
		var err error
		switch f[0] {
		case "f":
			err = os.WriteFile(p, []byte(arg), 0o644)
		case "d":
			err = os.MkdirAll(p, 0o755)
		case "l":
			err = os.Symlink(arg, p)
		case "h":
			err = os.Link(filepath.Join(dir, arg), p)
		case "p":
			err = unix.Mkfifo(p, 0o644)
		default:
			t.Fatalf("bad fixture %q", e)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range strings.Fields(opts) {
			k, v, _ := strings.Cut(o, "=")
			switch k {
			case "mode":
				var m uint32
				fmt.Sscanf(v, "%o", &m)
				err = os.Chmod(p, FileMode(m))
			case "owner":
				var uid, gid int
				fmt.Sscanf(v, "%d:%d", &uid, &gid)
				err = os.Lchown(p, uid, gid)
				if !isRoot {
					err = nil
				}
			case "mtime":
				var sec int64
				fmt.Sscanf(v, "%d", &sec)
				ts := unix.NsecToTimespec(time.Unix(sec, 0).UnixNano())
				err = unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// tree lists everything below root as sorted lines:
// "path d 0755 0:0", "path f 0644 0:0 content", "path l 0:0 ->target",
// "path p 0644 0:0". Ownership shows as "-" when not root.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		own := fmt.Sprintf("%d:%d", st.Uid, st.Gid)
		if !isRoot {
			own = "-"
		}
		mode := fmt.Sprintf("%04o", st.Mode&0o7777)
		switch {
		case fi.IsDir():
			out = append(out, fmt.Sprintf("%s d %s %s", rel, mode, own))
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("%s f %s %s %q", rel, mode, own, b))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, fmt.Sprintf("%s l %s ->%s", rel, own, target))
		case fi.Mode()&fs.ModeNamedPipe != 0:
			out = append(out, fmt.Sprintf("%s p %s %s", rel, mode, own))
		default:
			out = append(out, fmt.Sprintf("%s ? %v", rel, fi.Mode()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// normalize sorts want lines and blanks ownership when not root.
func normalize(want []string) []string {
	out := make([]string, len(want))
	for i, w := range want {
		f := strings.Fields(w)
		if !isRoot && len(f) >= 3 {
			idx := 3
			if f[1] == "l" {
				idx = 2
			}
			if idx < len(f) {
				f[idx] = "-"
			}
		}
		out[i] = strings.Join(f, " ")
	}
	sort.Strings(out)
	return out
}

func diffLines(got, want []string) string {
	g := map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	w := map[string]bool{}
	for _, l := range want {
		w[l] = true
	}
	var b strings.Builder
	for _, l := range want {
		if !g[l] {
			fmt.Fprintf(&b, "\n  missing: %s", l)
		}
	}
	for _, l := range got {
		if !w[l] {
			fmt.Fprintf(&b, "\n  unexpected: %s", l)
		}
	}
	return b.String()
}
