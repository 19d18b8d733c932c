package parser

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// bomb returns a recipe that doubles a variable n times with the given
// instruction, after the lines in head.
func bomb(head, instr string, n int) string {
	var b strings.Builder
	b.WriteString(head)
	for range n {
		fmt.Fprintf(&b, "%s A=$A$A\n", instr)
	}
	return b.String()
}

// TestExpansionBombs: doubling a variable forty times fails at the line
// where it passes the limit, quickly, in every place variables expand.
func TestExpansionBombs(t *testing.T) {
	const word = "Recipe:%d: expansion exceeds 1048576 bytes"
	tests := []struct {
		name, recipe string
		step         bool // the error comes from Expand, not Parse
		want         string
	}{
		// 8 bytes doubled 17 times is 1 MiB; the 18th doubling is too much.
		{"global ARG", bomb("ARG A=12345678\n", "ARG", 40) + "FROM scratch\n", false, fmt.Sprintf(word, 19)},
		{"stage ARG", bomb("FROM scratch\nARG A=12345678\n", "ARG", 40), false, fmt.Sprintf(word, 20)},
		{"ENV", bomb("FROM scratch\nENV A=12345678\n", "ENV", 40), true, fmt.Sprintf(word, 20)},
		{"LABEL", "FROM scratch\nLABEL a=" + strings.Repeat("$A", 1000) + "\n", true, "Recipe:2: expansion exceeds 4194304 bytes"},
		{"replace", "FROM scratch\nENV B=${A//x/$A}\n", true, fmt.Sprintf(word, 2)},
		{"replace in replace", "FROM scratch\nENV B=${A//x/${A//x/$A}}\n", true, fmt.Sprintf(word, 2)},
		// 16 doublings make 512 KiB: three of them are too much.
		{"FROM", bomb("ARG A=12345678\n", "ARG", 16) + "FROM $A$A$A\n", false, fmt.Sprintf(word, 18)},
		{"COPY --from", bomb("FROM scratch\nARG A=12345678\n", "ARG", 16) + "COPY --from=$A$A$A / /\n", false, fmt.Sprintf(word, 19)},
		{"heredoc", "FROM scratch\nCOPY <<EOF /f\n" + strings.Repeat("$A", 3000) + "\nEOF\n", true, "Recipe:2: expansion exceeds 4194304 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			p, err := Parse(strings.NewReader(tt.recipe), Options{File: "Recipe"})
			if tt.step {
				if err != nil {
					t.Fatal(err)
				}
				env := []string{"A=" + strings.Repeat("x", 1000)}
				if tt.name == "LABEL" || tt.name == "heredoc" {
					env = []string{"A=" + strings.Repeat("x", 10000)}
				}
				for _, s := range p.Stages[0].Steps {
					var cmd Command
					if cmd, err = p.Expand(s, env); err != nil {
						break
					}
					// As the builder does: ENV values are the next steps' env.
					if e, ok := cmd.(*Env); ok {
						for _, kv := range e.Vars {
							env = append(env, kv.Key+"="+kv.Value)
						}
					}
				}
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %s", err, tt.want)
			}
			if !errors.Is(err, ErrExpansionTooLarge) {
				t.Errorf("%v is not ErrExpansionTooLarge", err)
			}
			// Far above what a bounded expansion takes even under -race on
			// a busy machine, far below what an unbounded one would.
			if d := time.Since(start); d > time.Minute {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestExpansionWithinLimits: replacements and large values below the
// limits still expand.
func TestExpansionWithinLimits(t *testing.T) {
	big := strings.Repeat("x", 900<<10)
	p, err := Parse(strings.NewReader("ARG BIG\nFROM scratch\nENV V=${VERSION//./-} P=\"${PATH//:/ }\" B=$BIG\n"),
		Options{File: "Recipe", BuildArgs: map[string]string{"BIG": big}})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := p.Expand(p.Stages[0].Steps[0], []string{"VERSION=1.2.3", "PATH=/bin:/usr/bin", "BIG=" + big})
	if err != nil {
		t.Fatal(err)
	}
	env := cmd.(*Env).Vars
	if env[0].Value != "1-2-3" || env[1].Value != "/bin /usr/bin" || env[2].Value != big {
		t.Errorf("expanded to %.60v", env)
	}
}

// TestManyArgsLinear: a stage with many ARGs and COPY --from steps parses
// in linear time (each used to copy every ARG so far).
func TestManyArgsLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString("FROM scratch AS a\nFROM scratch\n")
	for i := range 30000 {
		fmt.Fprintf(&b, "ARG A%d=${A0}x\n", i)
	}
	b.WriteString("COPY --from=$A0 / /\n")
	start := time.Now()
	if _, err := Parse(strings.NewReader(b.String()), Options{File: "Recipe"}); err != nil {
		t.Fatal(err)
	}
	// Linear parsing takes well under a second (a few under -race on a
	// busy machine); the quadratic copies took minutes.
	if d := time.Since(start); d > time.Minute {
		t.Errorf("parsing took %v", d)
	}
}
