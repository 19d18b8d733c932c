package copier

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// te is a tar entry for makeTar: typ is one of tar.Type*.
type te struct {
	name   string
	typ    byte
	body   string // content, or link target
	mode   int64
	uid    int
	xattrs map[string]string
}

func makeTar(t testing.TB, entries ...te) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: time.Unix(1e9, 0), Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		switch e.typ {
		case tar.TypeReg:
			h.Size = int64(len(e.body))
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = e.body
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			io.WriteString(tw, e.body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t *testing.T, kind string, b []byte) []byte {
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch kind {
	case "none":
		return b
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "zstd":
		w, err = zstd.NewWriter(&buf)
	case "xz":
		w, err = xz.NewWriter(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAddArchive(t *testing.T) {
	simple := makeTar(t,
		te{name: "top/", typ: tar.TypeDir, mode: 0o750, uid: 33},
		te{name: "top/f", typ: tar.TypeReg, body: "data", mode: 0o4711, uid: 33},
		te{name: "top/l", typ: tar.TypeSymlink, body: "f", uid: 33},
		te{name: "top/h", typ: tar.TypeLink, body: "top/f"},
		te{name: ".wh.gone", typ: tar.TypeReg, body: ""},
	)
	bz2, err := os.ReadFile("../testdata/copier/hello.tar.bz2")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"x d 0755 0:0", "x/top d 0750 33:33", `x/top/f f 4711 33:33 "data"`, "x/top/l l 33:33 ->f",
		`x/top/h f 4711 33:33 "data"`, `x/.wh.gone f 0644 0:0 ""`,
	}
	tests := []struct {
		name  string
		file  []byte
		req   Request
		want  []string
		check func(t *testing.T, dst string)
	}{
		{name: "tar", file: simple, req: Request{Add: true, Dest: "/x"}, want: want},
		{name: "gzip", file: compress(t, "gzip", simple), req: Request{Add: true, Dest: "/x/"}, want: want},
		{name: "zstd", file: compress(t, "zstd", simple), req: Request{Add: true, Dest: "/x"}, want: want},
		{name: "xz", file: compress(t, "xz", simple), req: Request{Add: true, Dest: "/x"}, want: want},
		{name: "bzip2", file: bz2, req: Request{Add: true, Dest: "/x"},
			want: []string{"x d 0755 0:0", "x/hello d 0755 0:0", `x/hello/a.txt f 0640 0:0 "from bz2"`}},
		{name: "chown and chmod", file: simple, req: Request{Add: true, Dest: "/x", Chown: "7:8", Chmod: "700"},
			want: []string{
				"x d 0755 7:8", "x/top d 0700 7:8", `x/top/f f 0700 7:8 "data"`, "x/top/l l 7:8 ->f",
				`x/top/h f 0700 7:8 "data"`, `x/.wh.gone f 0700 7:8 ""`,
			}},
		{name: "COPY does not extract", file: simple, req: Request{Dest: "/x"},
			check: func(t *testing.T, dst string) {
				b, _ := os.ReadFile(filepath.Join(dst, "x"))
				if !bytes.Equal(b, simple) {
					t.Error("content changed")
				}
			}},
		{name: "compressed non-tar copies as file", file: compress(t, "gzip", []byte("plain")), req: Request{Add: true, Dest: "/x"},
			check: func(t *testing.T, dst string) {
				b, _ := os.ReadFile(filepath.Join(dst, "x"))
				if !bytes.Equal(b, compress(t, "gzip", []byte("plain"))) {
					t.Error("not copied as is")
				}
			}},
		{name: "plain file", file: []byte("hello"), req: Request{Add: true, Dest: "/x/"}, want: []string{"x d 0755 0:0", `x/file.tar f 0644 0:0 "hello"`}},
		{name: "xattrs", file: makeTar(t, te{name: "f", typ: tar.TypeReg, body: "x", xattrs: map[string]string{"user.k": "v"}}),
			req: Request{Add: true, Dest: "/x"},
			check: func(t *testing.T, dst string) {
				buf := make([]byte, 8)
				n, err := unix.Getxattr(filepath.Join(dst, "x/f"), "user.k", buf)
				if err == nil && string(buf[:n]) != "v" {
					t.Errorf("xattr %q", buf[:n])
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(src, "file.tar"), tt.file, 0o644); err != nil {
				t.Fatal(err)
			}
			req := tt.req
			req.SrcRoot, req.DestRoot, req.Sources = src, dst, []string{"file.tar"}
			if err := Copy(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			if tt.want != nil {
				if d := diffLines(listTree(t, dst), normalize(tt.want)); d != "" {
					t.Errorf("tree differs:%s", d)
				}
			}
			if tt.check != nil {
				tt.check(t, dst)
			}
		})
	}
}

func TestAddArchiveMtime(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	b := makeTar(t, te{name: "d/", typ: tar.TypeDir, mode: 0o755}, te{name: "d/f", typ: tar.TypeReg, body: "x"})
	os.WriteFile(filepath.Join(src, "a.tar"), b, 0o644)
	if err := Copy(context.Background(), Request{SrcRoot: src, DestRoot: dst, Sources: []string{"a.tar"}, Dest: "/", Add: true}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d", "d/f"} {
		fi, err := os.Lstat(filepath.Join(dst, p))
		if err != nil || fi.ModTime().Unix() != 1e9 {
			t.Errorf("%s: mtime %v, %v", p, fi.ModTime(), err)
		}
	}
}

// escapeSetup makes tmp/root (the destination root, with symlinks in it
// pointing out) and tmp/outside with a sentinel, and returns both.
func escapeSetup(t *testing.T) (root, outside string) {
	tmp := t.TempDir()
	root, outside = filepath.Join(tmp, "root"), filepath.Join(tmp, "outside")
	build(t, outside, "f secret s")
	build(t, root,
		fx("l abs "+outside),
		"l up ../../../../../../..",
		"l app /etc",
		fx("f etc/passwd "+passwdFile),
	)
	return root, outside
}

func assertOutsideUntouched(t *testing.T, outside string) {
	t.Helper()
	got := listTree(t, outside)
	want := normalize([]string{`secret f 0644 0:0 "s"`})
	if d := diffLines(got, want); d != "" {
		t.Errorf("outside changed:%s", d)
	}
	b, err := os.ReadFile("/etc/passwd")
	if err != nil || strings.Contains(string(b), "pwned") {
		t.Errorf("host /etc/passwd touched")
	}
}

func TestEscapes(t *testing.T) {
	evil := makeTar(t,
		te{name: "../../../outside/evil1", typ: tar.TypeReg, body: "pwned"},
		te{name: "/../outside/evil2", typ: tar.TypeReg, body: "pwned"},
		te{name: "link", typ: tar.TypeSymlink, body: "/"},
		te{name: "link/evil3", typ: tar.TypeReg, body: "pwned"},
		te{name: "rel", typ: tar.TypeSymlink, body: "../../../../../../.."},
		te{name: "rel/evil4", typ: tar.TypeReg, body: "pwned"},
		te{name: "rel/etc/passwd", typ: tar.TypeReg, body: "pwned"},
		te{name: "secret", typ: tar.TypeSymlink, body: "../../outside/secret"},
		te{name: "secret", typ: tar.TypeReg, body: "pwned"},
	)
	tests := []struct {
		name    string
		ctx     []fx
		req     Request
		wantIn  map[string]string // file -> content expected inside root
		wantErr bool
	}{
		{name: "dest through absolute host symlink", ctx: []fx{"f a pwned"},
			req: Request{Sources: []string{"a"}, Dest: "/abs/"}},
		{name: "dest through dotdot symlink", ctx: []fx{"f a pwned"},
			req:    Request{Sources: []string{"a"}, Dest: "/up/a"},
			wantIn: map[string]string{"a": "pwned"}},
		{name: "dest dotdot", ctx: []fx{"f a x"},
			req:    Request{Sources: []string{"a"}, Dest: "../../../../x"},
			wantIn: map[string]string{"x": "x"}},
		{name: "image symlink to /etc", ctx: []fx{"f passwd pwned"},
			req:    Request{Sources: []string{"passwd"}, Dest: "/app/"},
			wantIn: map[string]string{"etc/passwd": "pwned"}},
		{name: "source symlink to host passwd", ctx: []fx{"l pw /etc/passwd"},
			req: Request{Sources: []string{"pw"}, Dest: "/got"}, wantErr: true},
		{name: "source symlink to host passwd, resolved in context", ctx: []fx{"l pw ../../../../etc/passwd", "f etc/passwd ctx"},
			req:    Request{Sources: []string{"pw"}, Dest: "/got"},
			wantIn: map[string]string{"got": "ctx"}},
		// The link resolves inside the context, where the wildcard matches
		// nothing: an empty wildcard copies nothing.
		{name: "wildcard through symlinked dir", ctx: []fx{"l d /etc"},
			req: Request{Sources: []string{"d/pass*"}, Dest: "/got/"}},
		{name: "archive", req: Request{Sources: []string{"evil.tar"}, Dest: "/dst", Add: true}},
		{name: "archive into symlinked dest", req: Request{Sources: []string{"evil.tar"}, Dest: "/abs", Add: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, outside := escapeSetup(t)
			src := t.TempDir()
			build(t, src, tt.ctx...)
			os.WriteFile(filepath.Join(src, "evil.tar"), evil, 0o644)
			req := tt.req
			req.SrcRoot, req.DestRoot = src, root
			err := Copy(context.Background(), req)
			if tt.wantErr != (err != nil) {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
			assertOutsideUntouched(t, outside)
			for p, want := range tt.wantIn {
				b, err := os.ReadFile(filepath.Join(root, p))
				if err != nil || string(b) != want {
					t.Errorf("%s = %q, %v; want %q", p, b, err, want)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); strings.Contains(string(b), "pwned") && tt.wantIn["etc/passwd"] == "" {
				t.Error("image /etc/passwd overwritten by the archive")
			}
		})
	}
}

// TestExtractStaysInDest checks the archive extraction root is the
// destination directory: symlinks from the archive cannot lead elsewhere in
// the image.
func TestExtractStaysInDest(t *testing.T) {
	root, outside := escapeSetup(t)
	src := t.TempDir()
	b := makeTar(t,
		te{name: "l", typ: tar.TypeSymlink, body: "/etc"},
		te{name: "l/passwd", typ: tar.TypeReg, body: "pwned"},
		te{name: "h", typ: tar.TypeLink, body: "../etc/passwd"},
	)
	os.WriteFile(filepath.Join(src, "a.tar"), b, 0o644)
	err := Copy(context.Background(), Request{SrcRoot: src, DestRoot: root, Sources: []string{"a.tar"}, Dest: "/dst/", Add: true})
	if err != nil {
		t.Fatal(err)
	}
	assertOutsideUntouched(t, outside)
	if b, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); string(b) != passwdFile {
		t.Errorf("image /etc/passwd = %q", b)
	}
	for _, p := range []string{"dst/etc/passwd", "dst/h"} {
		if b, _ := os.ReadFile(filepath.Join(root, p)); string(b) != "pwned" {
			t.Errorf("%s = %q, want the archive's file", p, b)
		}
	}
}

func FuzzExtract(f *testing.F) {
	f.Add(makeTar(f,
		te{name: "../../x", typ: tar.TypeReg, body: "a"},
		te{name: "l", typ: tar.TypeSymlink, body: "../.."},
		te{name: "l/y", typ: tar.TypeReg, body: "b"},
		te{name: "h", typ: tar.TypeLink, body: "../../outside/secret"},
		te{name: "d/", typ: tar.TypeDir, mode: 0o555},
		te{name: "d/z", typ: tar.TypeReg, body: "c"},
	))
	f.Add(makeTar(f, te{name: "a", typ: tar.TypeSymlink, body: "/"}, te{name: "a/b/c", typ: tar.TypeReg, body: "x"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		tmp := t.TempDir()
		root, outside := filepath.Join(tmp, "root"), filepath.Join(tmp, "outside")
		build(t, outside, "f secret s")
		build(t, root, "d dst", "l dst/up ../..", fx("l dst/abs "+outside))
		a, ok := openArchive(bytes.NewReader(data))
		if !ok {
			return
		}
		defer a.close()
		dst, err := openTree(filepath.Join(root, "dst"))
		if err != nil {
			t.Fatal(err)
		}
		defer dst.close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = extract(ctx, a, dst, extractOptions{maxSize: 1 << 20})
		if d := diffLines(listTree(t, outside), normalize([]string{`secret f 0644 0:0 "s"`})); d != "" {
			t.Fatalf("outside changed:%s", d)
		}
		ents, err := os.ReadDir(root)
		if err != nil || len(ents) != 1 || ents[0].Name() != "dst" {
			t.Fatalf("root holds %v", ents)
		}
		ents, _ = os.ReadDir(tmp)
		if len(ents) != 2 {
			t.Fatalf("tmp holds %v", ents)
		}
	})
}
