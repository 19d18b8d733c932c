package copier

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/patternmatcher"
)

// describe renders what Select returned, one line per entry.
func describe(srcs []Source) []string {
	var out []string
	for _, s := range srcs {
		out = append(out, fmt.Sprintf("%d %s %q %q %q %v %d", s.Match, s.Name, s.Sub, s.Rel, s.Path, s.Info.Mode(), s.Info.Size()))
	}
	return out
}

// The walk reads directories on several goroutines; what it returns must
// not depend on that: the same entries, in the same order, as a walk on
// one goroutine, with .dockerignore exceptions, --exclude and --parents.
func TestWalkParallelSameAsSerial(t *testing.T) {
	src := t.TempDir()
	var entries []fx
	for i := range 6 {
		for j := range 9 {
			for k := range 4 {
				entries = append(entries, fx(fmt.Sprintf("f p%d/q%d/f%d.txt %d", i, j, k, i*100+j*10+k)))
			}
			entries = append(entries, fx(fmt.Sprintf("f p%d/q%d/build.log L", i, j)))
			entries = append(entries, fx(fmt.Sprintf("f p%d/q%d/r/deep.tmp T", i, j)))
			entries = append(entries, fx(fmt.Sprintf("l p%d/q%d/link f0.txt", i, j)))
		}
		entries = append(entries, fx(fmt.Sprintf("f skip%d/keep.me K", i)), fx(fmt.Sprintf("f skip%d/drop.me D", i)))
	}
	entries = append(entries, "d empty", "f p0/q0/r/s/t/u/v.txt V")
	build(t, src, entries...)
	reqs := map[string]Request{
		"all":      {Sources: []string{"."}},
		"exclude":  {Sources: []string{"p1", "p2/"}, Exclude: []string{"*.tmp", "q3", "!q3/f1.txt"}},
		"wildcard": {Sources: []string{"p*", "skip1"}},
		"parents":  {Sources: []string{"p*/q2/**/*.tmp"}, Parents: true},
	}
	for name, req := range reqs {
		t.Run(name, func(t *testing.T) {
			req.SrcRoot = src
			selectWith := func(procs int) []string {
				t.Helper()
				defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(procs))
				// A new matcher each time: patterns compile on first use.
				ignore, err := patternmatcher.New([]string{"**/*.log", "skip*", "!skip*/keep.me", "p3/q1", "p5"})
				if err != nil {
					t.Fatal(err)
				}
				req.Ignore = ignore
				got, err := Select(req)
				if err != nil {
					t.Fatal(err)
				}
				for i := 1; i < len(got); i++ {
					a, b := got[i-1], got[i]
					if a.Match == b.Match && !pathBefore(a.Sub, b.Sub) {
						t.Fatalf("%q comes before %q", a.Rel, b.Rel)
					}
				}
				return describe(got)
			}
			want := selectWith(1)
			if len(want) < 5 {
				t.Fatalf("selected only %q", want)
			}
			for range 20 {
				if d := diffLines(selectWith(4), want); d != "" {
					t.Fatalf("parallel walk differs from the serial one:\n%s", d)
				}
			}
		})
	}
}

// pathBefore reports whether slash path a comes before b in a walk: by
// component, a directory before what is in it.
func pathBefore(a, b string) bool {
	if a == "" {
		return b != ""
	}
	ac, bc := strings.Split(a, "/"), strings.Split(b, "/")
	for i := range min(len(ac), len(bc)) {
		if ac[i] != bc[i] {
			return ac[i] < bc[i]
		}
	}
	return len(ac) < len(bc)
}

// The walk's FileInfo says what os.Lstat says, Sys included, for every
// kind of entry.
func TestWalkInfoSameAsLstat(t *testing.T) {
	src := t.TempDir()
	build(t, src, "f a/file x | mode=0640", "f a/setuid y | mode=04755", "d a/sticky | mode=01777",
		"d a/setgid | mode=02750", "l a/link file")
	if err := syscall.Mkfifo(filepath.Join(src, "a/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := syscall.Mknod(filepath.Join(src, "a/null"), syscall.S_IFCHR|0o666, 0x103); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Select(Request{SrcRoot: src, Sources: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 7 {
		t.Fatalf("selected %q", describe(got))
	}
	for _, s := range got[1:] {
		want, err := os.Lstat(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		fi := s.Info
		if fi.Name() != want.Name() || fi.Mode() != want.Mode() || fi.Size() != want.Size() ||
			!fi.ModTime().Equal(want.ModTime()) || fi.IsDir() != want.IsDir() {
			t.Errorf("%s: walk says %s %v %d %v %v, lstat %s %v %d %v %v", s.Rel, fi.Name(), fi.Mode(), fi.Size(), fi.ModTime(), fi.IsDir(),
				want.Name(), want.Mode(), want.Size(), want.ModTime(), want.IsDir())
		}
		// The atime only: reading a directory may set it after the walk's stat.
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			t.Fatalf("%s: Sys is %T", s.Rel, fi.Sys())
		}
		a, b := *st, *want.Sys().(*syscall.Stat_t)
		a.Atim, b.Atim = syscall.Timespec{}, syscall.Timespec{}
		if a != b {
			t.Errorf("%s: walk's stat %+v, lstat's %+v", s.Rel, a, b)
		}
	}
}
