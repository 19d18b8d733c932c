package parser

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/parser")

const testdataDir = "../testdata/parser"

// goldenOptions reads test options from "# test: key=value" comment lines
// of a recipe: file, target, platform and build-arg (repeatable).
func goldenOptions(t *testing.T, name string, data []byte) Options {
	t.Helper()
	opts := Options{File: name, Platform: "linux/amd64"}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "# test: ")
		if !ok {
			continue
		}
		key, value, _ := strings.Cut(rest, "=")
		switch key {
		case "target":
			opts.Target = value
		case "platform":
			opts.Platform = value
		case "build-arg":
			k, v, _ := strings.Cut(value, "=")
			if opts.BuildArgs == nil {
				opts.BuildArgs = map[string]string{}
			}
			opts.BuildArgs[k] = v
		default:
			t.Fatalf("%s: unknown test option %q", name, key)
		}
	}
	return opts
}

// TestGolden parses every testdata/parser/*.recipe and compares a dump of
// the Plan (or the error) with the .golden file beside it. Run
// `go test ./parser -update` to rewrite the golden files.
func TestGolden(t *testing.T) {
	recipes, err := filepath.Glob(filepath.Join(testdataDir, "*.recipe"))
	if err != nil {
		t.Fatal(err)
	}
	if len(recipes) == 0 {
		t.Fatal("no recipes in " + testdataDir)
	}
	for _, path := range recipes {
		name := strings.TrimSuffix(filepath.Base(path), ".recipe")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := Parse(bytes.NewReader(data), goldenOptions(t, filepath.Base(path), data))
			var got string
			if err != nil {
				got = "error: " + err.Error() + "\n"
			} else {
				got = dump(plan)
			}
			golden := strings.TrimSuffix(path, ".recipe") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("plan of %s differs from %s\n--- got\n%s--- want\n%s", path, golden, got, want)
			}
		})
	}
}
