package parser

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error is an *Error
// naming the recipe, and that every step of a Plan can be expanded.
func FuzzParse(f *testing.F) {
	recipes, _ := filepath.Glob(filepath.Join(testdataDir, "*.recipe"))
	for _, path := range recipes {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "FROM", "FROM a AS", "ONBUILD", "ONBUILD ONBUILD", "FROM a\nRUN <<", "FROM a\nCOPY <<EOF\n",
		"FROM a\nRUN --mount=type=bind,from=0 x", "# escape=`\nFROM a `\n", "FROM a\nHEALTHCHECK CMD",
		"FROM a\nCOPY --from=9 a b", "ARG A=${B:?}\nFROM a", "\xef\xbb\xbfFROM a", "FROM a\nENV A",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(bytes.NewReader(data), Options{File: "F", Platform: "linux/amd64"})
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "F") {
				t.Fatalf("error %q (%T) is not an *Error naming the recipe", err, err)
			}
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("parser panicked: %v", err)
			}
			return
		}
		if len(p.Stages) == 0 || p.Target < 0 || p.Target >= len(p.Stages) || !p.Needed[p.Target] {
			t.Fatalf("inconsistent plan: %d stages, target %d", len(p.Stages), p.Target)
		}
		for _, st := range p.Stages {
			for _, d := range st.Deps {
				if d >= st.Index {
					t.Fatalf("stage %d depends on stage %d", st.Index, d)
				}
			}
			for _, s := range st.Steps {
				if s.Loc.Line <= 0 {
					t.Fatalf("step %q has no line", s.Text)
				}
				// Expansion may fail (${X:?}), but must not panic.
				_, _ = p.Expand(s, []string{"A=1"})
			}
		}
	})
}
