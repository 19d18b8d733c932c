package cache

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func fds(kv ...string) []FileDigest {
	var out []FileDigest
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, FileDigest{Path: kv[i], Digest: kv[i+1]})
	}
	return out
}

func TestExplain(t *testing.T) {
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	parent := testKey("parent", 0)
	copyStep := func(files []FileDigest, env, arg string) *KeyBuilder {
		return NewKey(parent).Add(FieldKind, "COPY").Add(FieldInstruction, "COPY src/ /app/").
			Add(FieldArg, arg).Add(FieldEnv, env).Add("user", "app").AddFiles(FieldFiles, files)
	}
	stored := copyStep(fds("src/main.go", "a", "src/util.go", "b", "src/old.go", "c"), "PATH=/bin\x00HOME=/root", "VERSION=1\x00DEBUG=0")
	cases := []struct {
		name string
		want *KeyBuilder
		out  []string
	}{
		{"content changed", copyStep(fds("src/main.go", "A", "src/util.go", "b", "src/old.go", "c"), "PATH=/bin\x00HOME=/root", "VERSION=1\x00DEBUG=0"),
			[]string{"file src/main.go changed"}},
		{"added and removed", copyStep(fds("src/main.go", "a", "src/util.go", "b", "src/new.go", "d"), "PATH=/bin\x00HOME=/root", "VERSION=1\x00DEBUG=0"),
			[]string{"file src/new.go added", "file src/old.go removed"}},
		{"arg value", copyStep(fds("src/main.go", "a", "src/util.go", "b", "src/old.go", "c"), "PATH=/bin\x00HOME=/root", "VERSION=2\x00DEBUG=0"),
			[]string{`ARG VERSION: "1" -> "2"`}},
		{"arg unset", copyStep(fds("src/main.go", "a", "src/util.go", "b", "src/old.go", "c"), "PATH=/bin\x00HOME=/root", "VERSION=1"),
			[]string{`ARG DEBUG: "0" -> (unset)`}},
		{"env", copyStep(fds("src/main.go", "a", "src/util.go", "b", "src/old.go", "c"), "PATH=/usr/bin\x00HOME=/root\x00NEW=1", "VERSION=1\x00DEBUG=0"),
			[]string{"ENV NEW added", "ENV PATH differs"}},
		{"user", NewKey(parent).Add(FieldKind, "COPY").Add(FieldInstruction, "COPY src/ /app/").
			Add(FieldArg, "VERSION=1\x00DEBUG=0").Add(FieldEnv, "PATH=/bin\x00HOME=/root").Add("user", "root").
			AddFiles(FieldFiles, fds("src/main.go", "a", "src/util.go", "b", "src/old.go", "c")),
			[]string{`user changed: "app" -> "root"`}},
		{"workdir added", copyStep(fds("src/main.go", "a", "src/util.go", "b", "src/old.go", "c"), "PATH=/bin\x00HOME=/root", "VERSION=1\x00DEBUG=0").Add("workdir", "/src"),
			[]string{`workdir added: "/src"`}},
		{"instruction", NewKey(parent).Add(FieldKind, "COPY").Add(FieldInstruction, "COPY src/ /srv/").
			Add(FieldArg, "VERSION=1\x00DEBUG=0").Add(FieldEnv, "PATH=/bin\x00HOME=/root").Add("user", "app").
			AddFiles(FieldFiles, fds("src/main.go", "a", "src/util.go", "b", "src/old.go", "c")),
			[]string{`instruction changed: "COPY src/ /app/" -> "COPY src/ /srv/"`}},
	}
	c := openTest(t)
	if err := c.Put(&Record{Key: stored.Sum(), Parent: parent, Snapshot: "s", Inputs: stored.Inputs()}); err != nil {
		t.Fatal(err)
	}
	// A RUN sibling, newer, must not be picked for COPY steps.
	run := NewKey(parent).Add(FieldKind, "RUN").Add(FieldInstruction, "RUN make")
	if err := c.Put(&Record{Key: run.Sum(), Parent: parent, Snapshot: "r", Inputs: run.Inputs(), Created: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.Explain(parent, tc.want.Inputs()); !slices.Equal(got, tc.out) {
				t.Errorf("Explain =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.out, "\n"))
			}
		})
	}
	t.Run("run instruction", func(t *testing.T) {
		want := NewKey(parent).Add(FieldKind, "RUN").Add(FieldInstruction, "RUN make all")
		if got, out := c.Explain(parent, want.Inputs()), []string{`instruction changed: "RUN make" -> "RUN make all"`}; !slices.Equal(got, out) {
			t.Errorf("Explain = %q, want %q", got, out)
		}
	})
	t.Run("parent new", func(t *testing.T) {
		got := c.Explain(testKey("unknown", 0), stored.Inputs())
		if len(got) != 1 || !strings.Contains(got[0], "previous step is not cached") {
			t.Errorf("Explain = %q", got)
		}
	})
	t.Run("base moved", func(t *testing.T) {
		base := func(d string) *KeyBuilder { return NewKey("").Add(FieldBase, d).Add(FieldInstruction, "FROM alpine") }
		if got := c.Explain("", base(d1).Inputs()); len(got) != 1 || !strings.Contains(got[0], "no cached stage base") {
			t.Errorf("Explain with no bases = %q", got)
		}
		if err := c.Put(&Record{Key: base(d1).Sum(), Snapshot: "b", Inputs: base(d1).Inputs()}); err != nil {
			t.Fatal(err)
		}
		want := []string{"base image digest moved: sha256:111111111111 -> sha256:222222222222"}
		if got := c.Explain("", base(d2).Inputs()); !slices.Equal(got, want) {
			t.Errorf("Explain = %q, want %q", got, want)
		}
	})
	t.Run("same inputs", func(t *testing.T) {
		if got := c.Explain(parent, stored.Inputs()); len(got) != 1 || !strings.Contains(got[0], "same inputs") {
			t.Errorf("Explain = %q", got)
		}
	})
}

// TestExplainPicksClosest: among several records with the parent, the
// one with the fewest differences is explained.
func TestExplainPicksClosest(t *testing.T) {
	c := openTest(t)
	parent := testKey("parent", 0)
	step := func(arg string) *KeyBuilder {
		return NewKey(parent).Add(FieldInstruction, "RUN make").Add(FieldArg, arg)
	}
	for i, arg := range []string{"A=1\x00B=1\x00C=1", "A=1\x00B=2\x00C=2", "A=9\x00B=9\x00C=9"} {
		k := step(arg)
		r := &Record{Key: k.Sum(), Parent: parent, Snapshot: fmt.Sprint(i), Inputs: k.Inputs(), Created: time.Now().Add(time.Duration(i) * time.Minute)}
		if err := c.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{`ARG C: "1" -> "3"`}
	if got := c.Explain(parent, step("A=1\x00B=1\x00C=3").Inputs()); !slices.Equal(got, want) {
		t.Errorf("Explain = %q, want %q", got, want)
	}
}

func TestExplainManyFiles(t *testing.T) {
	var old, cur []FileDigest
	for i := range 25 {
		old = append(old, FileDigest{Path: fmt.Sprintf("f%02d", i), Digest: "a"})
		cur = append(cur, FileDigest{Path: fmt.Sprintf("f%02d", i), Digest: "b"})
	}
	got := diffFiles(FieldFiles, old, cur)
	if len(got) != maxFileLines+1 || got[maxFileLines] != "... and 15 more file changes" {
		t.Errorf("diffFiles = %q", got)
	}
}
