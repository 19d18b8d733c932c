package copier

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"
)

const passwdFile = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
const groupFile = "root:x:0:\napp:x:1000:\nstaff:x:50:app\n"

// etcLines are what the passwd fixture adds to every destination listing.
var etcLines = []string{
	"etc d 0755 0:0",
	`etc/group f 0644 0:0 "root:x:0:\napp:x:1000:\nstaff:x:50:app\n"`,
	`etc/passwd f 0644 0:0 "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"`,
}

var context1 = []fx{
	"f a.txt hello",
	"f b.txt bye",
	"f c.log log",
	"f dir/one one",
	"f dir/sub/two two | mode=0600",
	"l dir/link one",
	"l direct a.txt",
	"l dirlink dir",
	"f suid x | mode=4755",
	"f owned o | owner=1234:5678",
	"f skip/drop d",
	"f skip/keep k",
	"f skip/deep/keep2 k2",
}

func TestCopy(t *testing.T) {
	tests := []struct {
		name    string
		dest    []fx // destination fixture besides /etc/passwd and /etc/group
		req     Request
		ignore  []string
		want    []string // destination listing without etcLines
		wantErr error    // matched with errors.Is
		errText string   // or matched as a substring
	}{
		{
			name: "file to new name",
			req:  Request{Sources: []string{"a.txt"}, Dest: "/x/b.txt"},
			want: []string{"x d 0755 0:0", `x/b.txt f 0644 0:0 "hello"`},
		},
		{
			name: "file into dir with slash",
			req:  Request{Sources: []string{"a.txt"}, Dest: "/x/"},
			want: []string{"x d 0755 0:0", `x/a.txt f 0644 0:0 "hello"`},
		},
		{
			name: "file into existing dir without slash",
			dest: []fx{"d app | mode=0700 owner=7:7"},
			req:  Request{Sources: []string{"a.txt"}, Dest: "/app"},
			want: []string{"app d 0700 7:7", `app/a.txt f 0644 0:0 "hello"`},
		},
		{
			name: "file into dir through a symlink",
			dest: []fx{"d srv", "l app /srv"},
			req:  Request{Sources: []string{"a.txt"}, Dest: "/app"},
			want: []string{"srv d 0755 0:0", "app l 0:0 ->/srv", `srv/a.txt f 0644 0:0 "hello"`},
		},
		{
			name: "directory copies its contents, symlinks kept",
			req:  Request{Sources: []string{"dir"}, Dest: "/app"},
			want: []string{
				"app d 0755 0:0", `app/one f 0644 0:0 "one"`, "app/link l 0:0 ->one",
				"app/sub d 0755 0:0", `app/sub/two f 0600 0:0 "two"`,
			},
		},
		{
			name: "directory merges into existing",
			dest: []fx{"f app/old old", "f app/sub/two stale | mode=0666", "d app/sub | mode=0700"},
			req:  Request{Sources: []string{"dir"}, Dest: "/app/"},
			want: []string{
				"app d 0755 0:0", `app/old f 0644 0:0 "old"`, `app/one f 0644 0:0 "one"`, "app/link l 0:0 ->one",
				"app/sub d 0755 0:0", `app/sub/two f 0600 0:0 "two"`,
			},
		},
		{
			name: "symlink named as source is followed",
			req:  Request{Sources: []string{"direct", "dirlink"}, Dest: "/x/"},
			want: []string{
				"x d 0755 0:0", `x/direct f 0644 0:0 "hello"`, `x/one f 0644 0:0 "one"`, "x/link l 0:0 ->one",
				"x/sub d 0755 0:0", `x/sub/two f 0600 0:0 "two"`,
			},
		},
		{
			name: "several sources onto a file: the last wins",
			req:  Request{Sources: []string{"a.txt", "b.txt"}, Dest: "/x"},
			want: []string{`x f 0644 0:0 "bye"`},
		},
		{
			name: "wildcard matching several onto a file: the last wins",
			req:  Request{Sources: []string{"*.txt"}, Dest: "/x"},
			want: []string{`x f 0644 0:0 "bye"`},
		},
		{
			name: "several sources into existing dir",
			dest: []fx{"d x"},
			req:  Request{Sources: []string{"a.txt", "b.txt"}, Dest: "/x"},
			want: []string{"x d 0755 0:0", `x/a.txt f 0644 0:0 "hello"`, `x/b.txt f 0644 0:0 "bye"`},
		},
		{
			name: "wildcard",
			req:  Request{Sources: []string{"*.txt", "d?r/s*"}, Dest: "/x/"},
			want: []string{
				"x d 0755 0:0", `x/a.txt f 0644 0:0 "hello"`, `x/b.txt f 0644 0:0 "bye"`,
				`x/two f 0600 0:0 "two"`,
			},
		},
		{
			name:    "url with COPY",
			req:     Request{Sources: []string{"https://example.com/x"}, Dest: "/x/"},
			errText: "only allowed with ADD",
		},
		{
			name: "wildcard matching nothing copies nothing",
			req:  Request{Sources: []string{"*.nope", "a.txt"}, Dest: "/x/"},
			want: []string{"x d 0755 0:0", `x/a.txt f 0644 0:0 "hello"`},
		},
		{
			name:    "missing source",
			req:     Request{Sources: []string{"missing.txt"}, Dest: "/x/"},
			wantErr: fs.ErrNotExist,
			errText: "missing.txt",
		},
		{
			name: "relative dest uses workdir",
			req:  Request{Sources: []string{"a.txt"}, Dest: "rel/", Workdir: "/work"},
			want: []string{"work d 0755 0:0", "work/rel d 0755 0:0", `work/rel/a.txt f 0644 0:0 "hello"`},
		},
		{
			name: "dot dest is the workdir",
			req:  Request{Sources: []string{"a.txt"}, Dest: ".", Workdir: "/work"},
			want: []string{"work d 0755 0:0", `work/a.txt f 0644 0:0 "hello"`},
		},
		{
			name: "source outside the context is cleaned inside",
			req:  Request{Sources: []string{"../../a.txt", "/../b.txt"}, Dest: "/x/"},
			want: []string{"x d 0755 0:0", `x/a.txt f 0644 0:0 "hello"`, `x/b.txt f 0644 0:0 "bye"`},
		},
		{
			name: "chown by name applies to created dirs too",
			dest: []fx{"d x"},
			req:  Request{Sources: []string{"dir"}, Dest: "/x/y/", Chown: "app"},
			want: []string{
				"x d 0755 0:0", "x/y d 0755 1000:1000", `x/y/one f 0644 1000:1000 "one"`,
				"x/y/link l 1000:1000 ->one", "x/y/sub d 0755 1000:1000", `x/y/sub/two f 0600 1000:1000 "two"`,
			},
		},
		{
			name: "chown numeric and name:group",
			req:  Request{Sources: []string{"a.txt"}, Dest: "/x", Chown: "1001:staff"},
			want: []string{"x f 0644 1001:50 \"hello\""},
		},
		{
			name: "chown unknown user is root",
			req:  Request{Sources: []string{"a.txt"}, Dest: "/x", Chown: "nobody"},
			want: []string{`x f 0644 0:0 "hello"`},
		},
		{
			name: "context files belong to root",
			req:  Request{Sources: []string{"owned"}, Dest: "/x"},
			want: []string{`x f 0644 0:0 "o"`},
		},
		{
			name: "KeepOwner keeps source owner",
			req:  Request{Sources: []string{"owned"}, Dest: "/x", KeepOwner: true},
			want: []string{`x f 0644 1234:5678 "o"`},
		},
		{
			name: "chown beats KeepOwner",
			req:  Request{Sources: []string{"owned"}, Dest: "/x", KeepOwner: true, Chown: "1:2"},
			want: []string{`x f 0644 1:2 "o"`},
		},
		{
			name: "octal chmod applies to copied files and dirs and created parents",
			req:  Request{Sources: []string{"dir"}, Dest: "/p/q", Chmod: "750"},
			want: []string{
				"p d 0750 0:0", "p/q d 0750 0:0", `p/q/one f 0750 0:0 "one"`, "p/q/link l 0:0 ->one",
				"p/q/sub d 0750 0:0", `p/q/sub/two f 0750 0:0 "two"`,
			},
		},
		{
			name: "symbolic chmod from the source modes",
			req:  Request{Sources: []string{"dir"}, Dest: "/p/", Chmod: "u=rwX,go=rX"},
			want: []string{
				"p d 0755 0:0", `p/one f 0644 0:0 "one"`, "p/link l 0:0 ->one",
				"p/sub d 0755 0:0", `p/sub/two f 0644 0:0 "two"`,
			},
		},
		{
			name:    "invalid chmod",
			req:     Request{Sources: []string{"a.txt"}, Dest: "/x", Chmod: "u+q"},
			errText: "invalid --chmod=u+q",
		},
		{
			name: "setuid bit kept",
			req:  Request{Sources: []string{"suid"}, Dest: "/bin/"},
			want: []string{"bin d 0755 0:0", `bin/suid f 4755 0:0 "x"`},
		},
		{
			name: "overwrite file",
			dest: []fx{"f x/a.txt old | mode=0777"},
			req:  Request{Sources: []string{"a.txt"}, Dest: "/x/"},
			want: []string{"x d 0755 0:0", `x/a.txt f 0644 0:0 "hello"`},
		},
		{
			name: "overwrite symlink replaces the link itself",
			dest: []fx{"f etc/target keep", "l x/a.txt /etc/target"},
			req:  Request{Sources: []string{"a.txt"}, Dest: "/x/"},
			want: []string{"x d 0755 0:0", `x/a.txt f 0644 0:0 "hello"`, `etc/target f 0644 0:0 "keep"`},
		},
		{
			name:    "file onto non-empty dir in a walk",
			dest:    []fx{"f x/one/inner i"},
			req:     Request{Sources: []string{"dir"}, Dest: "/x"},
			errText: "cannot replace directory",
		},
		{
			name:    "dir onto symlink in a walk",
			dest:    []fx{"d elsewhere", "l x/sub /elsewhere"},
			req:     Request{Sources: []string{"dir"}, Dest: "/x"},
			errText: "non-directory",
		},
		{
			name:   "dockerignore with exceptions",
			req:    Request{Sources: []string{"."}, Dest: "/x/"},
			ignore: []string{"*.log", "dir", "direct", "dirlink", "suid", "owned", "skip", "!skip/keep", "!skip/deep"},
			want: []string{
				"x d 0755 0:0", `x/a.txt f 0644 0:0 "hello"`, `x/b.txt f 0644 0:0 "bye"`,
				"x/skip d 0755 0:0", `x/skip/keep f 0644 0:0 "k"`,
				"x/skip/deep d 0755 0:0", `x/skip/deep/keep2 f 0644 0:0 "k2"`,
			},
		},
		{
			name:    "ignored source named directly",
			req:     Request{Sources: []string{"c.log"}, Dest: "/x/"},
			ignore:  []string{"*.log"},
			wantErr: fs.ErrNotExist,
			errText: ".dockerignore",
		},
		{
			name:   "ignored files are not matched by wildcards",
			req:    Request{Sources: []string{"c.*"}, Dest: "/x/"},
			ignore: []string{"*.log"},
			want:   []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			build(t, src, context1...)
			build(t, dst, fx("f etc/passwd "+passwdFile), fx("f etc/group "+groupFile))
			build(t, dst, tt.dest...)
			req := tt.req
			req.SrcRoot, req.DestRoot = src, dst
			if tt.ignore != nil {
				pm, err := patternmatcher.New(tt.ignore)
				if err != nil {
					t.Fatal(err)
				}
				req.Ignore = pm
			}
			err := Copy(context.Background(), req)
			if tt.wantErr != nil || tt.errText != "" {
				if err == nil {
					t.Fatal("no error")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not mention %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := listTree(t, dst)
			want := normalize(append(tt.want, etcLines...))
			if d := diffLines(got, want); d != "" {
				t.Errorf("tree differs:%s", d)
			}
		})
	}
}

func TestCopyMetadata(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	build(t, src,
		"f d/a x | mtime=978307200",
		"h d/b d/a",
		"l d/l a | mtime=978307201",
		"p d/fifo",
		"f d/e/f y | mtime=978307200",
		"d d/e | mtime=1009843200",
	)
	build(t, src, "d d | mtime=1041379200")
	if err := unix.Setxattr(filepath.Join(src, "d/a"), "user.test", []byte("v"), 0); err != nil {
		t.Logf("no user xattrs here: %v", err)
	}
	capBlob := []byte{1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // cap_net_bind_service, effective
	hasCap := isRoot && unix.Setxattr(filepath.Join(src, "d/e/f"), "security.capability", capBlob, 0) == nil
	if err := Copy(context.Background(), Request{SrcRoot: src, DestRoot: dst, Sources: []string{"d"}, Dest: "/out/"}); err != nil {
		t.Fatal(err)
	}
	mtime := func(p string) int64 {
		fi, err := os.Lstat(filepath.Join(dst, p))
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime().Unix()
	}
	for p, want := range map[string]int64{"out/a": 978307200, "out/l": 978307201, "out/e": 1009843200, "out/e/f": 978307200} {
		if got := mtime(p); got != want {
			t.Errorf("mtime of %s = %d, want %d", p, got, want)
		}
	}
	a, _ := os.Stat(filepath.Join(dst, "out/a"))
	b, _ := os.Stat(filepath.Join(dst, "out/b"))
	if !os.SameFile(a, b) {
		t.Error("hard link not preserved")
	}
	if fi, err := os.Lstat(filepath.Join(dst, "out/fifo")); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("fifo not copied: %v", err)
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(filepath.Join(src, "d/a"), "user.test", buf); err == nil {
		n2, err := unix.Getxattr(filepath.Join(dst, "out/a"), "user.test", buf)
		if err != nil || n2 != n || string(buf[:n2]) != "v" {
			t.Errorf("user.test xattr = %q, %v", buf[:n2], err)
		}
	}
	if hasCap {
		n, err := unix.Getxattr(filepath.Join(dst, "out/e/f"), "security.capability", buf)
		if err != nil || string(buf[:n]) != string(capBlob) {
			t.Errorf("security.capability = %x, %v", buf[:n], err)
		}
	}
}

func TestCopySocketSkipped(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	build(t, src, "f d/a x")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(src, "d/sock")}); err != nil {
		t.Fatal(err)
	}
	if err := Copy(context.Background(), Request{SrcRoot: src, DestRoot: dst, Sources: []string{"d"}, Dest: "/o"}); err != nil {
		t.Fatal(err)
	}
	want := normalize([]string{"o d 0755 0:0", `o/a f 0644 0:0 "x"`})
	if d := diffLines(listTree(t, dst), want); d != "" {
		t.Error(d)
	}
}

func TestCopyCanceled(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	build(t, src, "f d/a x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Copy(ctx, Request{SrcRoot: src, DestRoot: dst, Sources: []string{"d"}, Dest: "/o"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
}

func TestSelect(t *testing.T) {
	src := t.TempDir()
	build(t, src, context1...)
	pm, err := patternmatcher.New([]string{"dir/sub"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Select(Request{SrcRoot: src, Sources: []string{"dir", "*.txt", "direct"}, Ignore: pm})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, s := range got {
		lines = append(lines, strings.Join([]string{strconv.Itoa(s.Match), s.Name, s.Sub, s.Rel, typeOf(s.Info)}, "|"))
		if want := filepath.Join(src, s.Rel); s.Path != want {
			t.Errorf("Path %s, want %s", s.Path, want)
		}
	}
	want := []string{
		"0|dir||dir|d", "0|dir|link|dir/link|l", "0|dir|one|dir/one|f",
		"1|a.txt||a.txt|f", "2|b.txt||b.txt|f",
		"3|direct||a.txt|f",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("Select:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func typeOf(fi fs.FileInfo) string {
	switch {
	case fi.IsDir():
		return "d"
	case fi.Mode()&fs.ModeSymlink != 0:
		return "l"
	}
	return "f"
}

func TestLookupOwner(t *testing.T) {
	root := t.TempDir()
	build(t, root, fx("f real/etc/passwd "+passwdFile), fx("f real/etc/group "+groupFile), "l etc /real/etc")
	for spec, want := range map[string][2]int{"app": {1000, 1000}, "app:staff": {1000, 50}, "nosuch:staff": {0, 50}, "42": {42, 42}} {
		uid, gid, err := LookupOwner(root, spec)
		if err != nil || uid != want[0] || gid != want[1] {
			t.Errorf("%s: got %d:%d, %v; want %d:%d", spec, uid, gid, err, want[0], want[1])
		}
	}
	empty := t.TempDir()
	if uid, gid, err := LookupOwner(empty, "5:6"); err != nil || uid != 5 || gid != 6 {
		t.Errorf("numeric without files: %d:%d, %v", uid, gid, err)
	}
	if uid, gid, err := LookupOwner(empty, "app"); err != nil || uid != 0 || gid != 0 {
		t.Errorf("name without passwd: %d:%d, %v; want 0:0 as BuildKit", uid, gid, err)
	}
	// An /etc pointing out of the root resolves inside it (to itself, a
	// loop): the host's "daemon" (uid 1 on Debian) is never seen.
	escape := t.TempDir()
	build(t, escape, "l etc /etc")
	if uid, _, err := LookupOwner(escape, "daemon"); err == nil && uid != 0 {
		t.Errorf("read the host /etc/passwd: uid %d, %v", uid, err)
	}
}
