package depcheck

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/lading-build/lading/"

// allowed lists, for each package (by its directory), the lading
// packages it may import; internal/ helpers are open to every package.
// A new package must be added here, which decides where it sits.
var allowed = map[string][]string{
	"cmd/lading":  {"builder", "store", "image", "gc"},
	"builder":     {"parser", "runtime", "snapshot", "store", "image", "cache", "remotecache", "copier", "progress", "gc"},
	"gc":          {"cache", "image", "snapshot", "store"},
	"remotecache": {"cache", "image", "store"},
	"image":       {"store", "snapshot"},
	"cache":       {"store"},
	"runtime":     {"snapshot", "passwd", "runtime/initproc", "runtime/initbin"},
	"copier":      {"passwd"},
	"snapshot":    {},
	"store":       {},
	"parser":      {},
	"progress":    {},
	"passwd":      {},
	"bench":       {},

	// The container init program and what it runs, light on purpose
	// (cmd/lading-init's test checks everything it imports).
	"cmd/lading-init":  {"runtime/initproc"},
	"runtime/initproc": {"passwd"},
	"runtime/initbin":  {},
}

// forbidden lists modules outside lading a package must not import.
var forbidden = map[string][]string{
	"parser":     {"github.com/google/go-containerregistry"},
	"snapshot":   {"github.com/google/go-containerregistry"},
	"cmd/lading": {"github.com/moby/buildkit"},
	"builder":    {"github.com/moby/buildkit"}, // parser owns the step types
}

func TestLayering(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "internal/") {
			return nil
		}
		ok, known := allowed[rel]
		if !known {
			t.Errorf("package %s is not in the layering table of %s", rel, "internal/depcheck")
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden[rel] {
				if strings.HasPrefix(p, bad) {
					t.Errorf("%s/%s imports %s", rel, filepath.Base(path), p)
				}
			}
			dep, ours := strings.CutPrefix(p, module)
			if !ours || strings.HasPrefix(dep, "internal/") {
				continue
			}
			if !slices.Contains(ok, dep) {
				t.Errorf("%s/%s imports %s, which is not below it (allowed: %v)", rel, filepath.Base(path), dep, ok)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
