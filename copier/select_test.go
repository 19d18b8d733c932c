package copier

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/patternmatcher"
)

var context2 = []fx{
	"f a.tmp A",
	"f keep.tmp K",
	"f b.txt B",
	"f sub/c.tmp C",
	"f sub/d.txt D",
	"f sub/keep.tmp K2",
	"f cache/x.bin X",
	"f cache/keep/y.bin Y",
	"f dir/e.tmp E",
	"f dir/nested/f.tmp F",
	"f dir/nested/g.txt G | mode=0600",
	"f dir/deep/x/y.tmp Y",
	"d dir/nested | mode=0700",
	"d dir | mode=0750",
}

func TestCopyExcludeParents(t *testing.T) {
	tests := []struct {
		name    string
		req     Request
		ignore  []string
		want    []string // destination listing
		wantErr error
		errText string
	}{
		{
			name: "exclude top-level pattern",
			req:  Request{Sources: []string{"."}, Dest: "/x/", Exclude: []string{"*.tmp", "cache", "dir"}},
			want: []string{
				"x d 0755 0:0", `x/b.txt f 0644 0:0 "B"`, "x/sub d 0755 0:0",
				`x/sub/c.tmp f 0644 0:0 "C"`, `x/sub/d.txt f 0644 0:0 "D"`, `x/sub/keep.tmp f 0644 0:0 "K2"`,
			},
		},
		{
			name: "exclude nested with **",
			req:  Request{Sources: []string{"."}, Dest: "/x/", Exclude: []string{"**/*.tmp", "cache", "dir"}},
			want: []string{"x d 0755 0:0", `x/b.txt f 0644 0:0 "B"`, "x/sub d 0755 0:0", `x/sub/d.txt f 0644 0:0 "D"`},
		},
		{
			name: "exclude with exceptions",
			req:  Request{Sources: []string{"."}, Dest: "/x/", Exclude: []string{"**/*.tmp", "!keep.tmp", "cache", "!cache/keep", "dir"}},
			want: []string{
				"x d 0755 0:0", `x/b.txt f 0644 0:0 "B"`, `x/keep.tmp f 0644 0:0 "K"`,
				"x/sub d 0755 0:0", `x/sub/d.txt f 0644 0:0 "D"`,
				"x/cache d 0755 0:0", "x/cache/keep d 0755 0:0", `x/cache/keep/y.bin f 0644 0:0 "Y"`,
			},
		},
		{
			name: "exclude is relative to the source directory",
			req:  Request{Sources: []string{"dir/"}, Dest: "/x/", Exclude: []string{"*.tmp", "deep"}},
			want: []string{"x d 0755 0:0", "x/nested d 0700 0:0", `x/nested/f.tmp f 0644 0:0 "F"`, `x/nested/g.txt f 0600 0:0 "G"`},
		},
		{
			name: "exclude from another stage keeps owners",
			req:  Request{Sources: []string{"sub"}, Dest: "/x/", Exclude: []string{"*.tmp"}, KeepOwner: true},
			want: []string{"x d 0755 0:0", `x/d.txt f 0644 0:0 "D"`},
		},
		{
			name:   "exclude and dockerignore together",
			req:    Request{Sources: []string{"sub"}, Dest: "/x/", Exclude: []string{"c.tmp"}},
			ignore: []string{"sub/d.txt"},
			want:   []string{"x d 0755 0:0", `x/keep.tmp f 0644 0:0 "K2"`},
		},
		{
			name: "files matched by a wildcard are excluded by name, directories filtered",
			req:  Request{Sources: []string{"*"}, Dest: "/x/", Exclude: []string{"*.tmp", "*.bin", "keep", "deep", "nested"}},
			want: []string{"x d 0755 0:0", `x/b.txt f 0644 0:0 "B"`, `x/d.txt f 0644 0:0 "D"`},
		},
		{
			name: "everything a wildcard matched excluded",
			req:  Request{Sources: []string{"*.tmp"}, Dest: "/x/", Exclude: []string{"*"}},
		},
		{
			name: "a source named without wildcards is not excluded",
			req:  Request{Sources: []string{"a.tmp"}, Dest: "/x/", Exclude: []string{"*.tmp"}},
			want: []string{"x d 0755 0:0", `x/a.tmp f 0644 0:0 "A"`},
		},
		{
			name:    "invalid exclude pattern",
			req:     Request{Sources: []string{"."}, Dest: "/x/", Exclude: []string{"[z-a"}},
			errText: "invalid --exclude",
		},
		{
			name: "parents keeps paths",
			req:  Request{Sources: []string{"sub/c.tmp", "dir/nested/g.txt"}, Dest: "/dst/", Parents: true},
			want: []string{
				"dst d 0755 0:0", "dst/sub d 0755 0:0", `dst/sub/c.tmp f 0644 0:0 "C"`,
				"dst/dir d 0750 0:0", "dst/dir/nested d 0700 0:0", `dst/dir/nested/g.txt f 0600 0:0 "G"`,
			},
		},
		{
			name: "parents with a pivot",
			req:  Request{Sources: []string{"./dir/./nested/g.txt"}, Dest: "/dst", Parents: true},
			want: []string{"dst d 0755 0:0", "dst/nested d 0700 0:0", `dst/nested/g.txt f 0600 0:0 "G"`},
		},
		{
			name: "parents with wildcards",
			req:  Request{Sources: []string{"*/nested/*.txt", "s?b/c.*"}, Dest: "/dst/", Parents: true},
			want: []string{
				"dst d 0755 0:0", "dst/dir d 0750 0:0", "dst/dir/nested d 0700 0:0", `dst/dir/nested/g.txt f 0600 0:0 "G"`,
				"dst/sub d 0755 0:0", `dst/sub/c.tmp f 0644 0:0 "C"`,
			},
		},
		{
			name: "parents with **",
			req:  Request{Sources: []string{"dir/**/*.tmp"}, Dest: "/dst/", Parents: true},
			want: []string{
				"dst d 0755 0:0", "dst/dir d 0750 0:0", `dst/dir/e.tmp f 0644 0:0 "E"`,
				"dst/dir/nested d 0700 0:0", `dst/dir/nested/f.tmp f 0644 0:0 "F"`,
				"dst/dir/deep d 0755 0:0", "dst/dir/deep/x d 0755 0:0", `dst/dir/deep/x/y.tmp f 0644 0:0 "Y"`,
			},
		},
		{
			name: "parents of a directory, with exclude relative to the pivot",
			req:  Request{Sources: []string{"dir"}, Dest: "/dst/", Parents: true, Exclude: []string{"dir/nested", "**/*.tmp"}},
			want: []string{"dst d 0755 0:0", "dst/dir d 0750 0:0", "dst/dir/deep d 0755 0:0", "dst/dir/deep/x d 0755 0:0"},
		},
		{
			name: "parents and chmod",
			req:  Request{Sources: []string{"sub/d.txt"}, Dest: "/dst/", Parents: true, Chmod: "go-rx"},
			want: []string{"dst d 0755 0:0", "dst/sub d 0700 0:0", `dst/sub/d.txt f 0600 0:0 "D"`},
		},
		{
			name: "parents with a wildcard pivot",
			req:  Request{Sources: []string{"*/./nested/*.txt"}, Dest: "/dst/", Parents: true},
			want: []string{"dst d 0755 0:0", "dst/nested d 0700 0:0", `dst/nested/g.txt f 0600 0:0 "G"`},
		},
		{
			name:    "parents of a missing file",
			req:     Request{Sources: []string{"dir/none.txt"}, Dest: "/dst/", Parents: true},
			wantErr: ErrNoSources,
		},
		{
			name:    "parents with a file as pivot",
			req:     Request{Sources: []string{"b.txt/./x"}, Dest: "/dst/", Parents: true},
			errText: "not a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			build(t, src, context2...)
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
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want %v %q", err, tt.wantErr, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := diffLines(listTree(t, dst), normalize(tt.want)); d != "" {
				t.Errorf("tree differs:%s", d)
			}
		})
	}
}

// TestSelectPrunes checks which directories the walk reads: an excluded
// directory only when an exception may keep something inside it, and
// with --parents only those the pattern leads into.
func TestSelectPrunes(t *testing.T) {
	src := t.TempDir()
	build(t, src, context2...)
	tests := []struct {
		name string
		req  Request
		want []string // directories read, relative to src
	}{
		{"excluded dir", Request{Sources: []string{"."}, Exclude: []string{"cache", "dir/nested"}}, []string{".", "dir", "dir/deep", "dir/deep/x", "sub"}},
		{"exception inside", Request{Sources: []string{"."}, Exclude: []string{"cache", "!cache/keep", "dir", "sub"}}, []string{".", "cache", "cache/keep", "dir", "dir/deep", "dir/deep/x", "dir/nested", "sub"}},
		{"parents", Request{Sources: []string{"dir/nested/g.txt"}, Parents: true}, []string{".", "dir", "dir/nested"}},
		{"parents wildcard", Request{Sources: []string{"*/keep/*"}, Parents: true}, []string{".", "cache", "cache/keep", "dir", "sub"}},
		{"parents **", Request{Sources: []string{"dir/**/y.tmp"}, Parents: true}, []string{".", "dir", "dir/deep", "dir/deep/x", "dir/nested"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.SrcRoot = src
			s, err := newSelector(req)
			if err != nil {
				t.Fatal(err)
			}
			var (
				mu   sync.Mutex
				read []string
			)
			s.onRead = func(dir string) {
				rel, _ := filepath.Rel(src, dir)
				mu.Lock()
				read = append(read, rel)
				mu.Unlock()
			}
			if req.Parents {
				_, err = s.parents(req.Sources[0], 0)
			} else {
				_, err = s.source(req.Sources[0], 0)
			}
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(read)
			if !slices.Equal(read, tt.want) {
				t.Errorf("read %q, want %q", read, tt.want)
			}
		})
	}
}
