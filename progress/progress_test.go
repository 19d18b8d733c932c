package progress

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestNew(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		mode    string
		w       any
		want    string // the sink's type
		wantErr bool
	}{
		{"plain", &bytes.Buffer{}, "*progress.plain", false},
		{"json", &bytes.Buffer{}, "*progress.jsonSink", false},
		{"quiet", &bytes.Buffer{}, "progress.quiet", false},
		{"tty", &bytes.Buffer{}, "*progress.tty", false},
		{"auto", &bytes.Buffer{}, "*progress.plain", false},
		{"auto", f, "*progress.plain", false}, // a file is no terminal
		{"", &bytes.Buffer{}, "*progress.plain", false},
		{"fancy", &bytes.Buffer{}, "", true},
	}
	for _, tt := range tests {
		r, err := New(tt.mode, tt.w.(interface{ Write([]byte) (int, error) }))
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%q): error %v, want error %v", tt.mode, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got := fmt.Sprintf("%T", r.(*core).sink); got != tt.want {
			t.Errorf("New(%q, %T) renders with %s, want %s", tt.mode, tt.w, got, tt.want)
		}
		r.Close()
	}
}

func TestQuiet(t *testing.T) {
	got := run(t, "quiet", Options{}, func(r Reporter, clk *clock) {
		build(r, clk)
		if tail := Tail(r, 3); tail != "npm \x1b[31mERR!\x1b[0m\tcode 1\r\nnpm ERR! see log" {
			t.Errorf("Tail = %q", tail)
		}
	})
	if got != "" {
		t.Errorf("quiet printed %q", got)
	}
}

func TestTailOf(t *testing.T) {
	for _, mode := range []string{"plain", "tty", "json", "quiet"} {
		t.Run(mode, func(t *testing.T) {
			run(t, mode, Options{}, func(r Reporter, clk *clock) {
				r.Start(Step{ID: 1, Text: "RUN a"})
				r.Start(Step{ID: 2, Text: "RUN b"})
				for i := range 30 {
					write(r, 1, fmt.Sprintf("a%d\n", i))
					write(r, 2, fmt.Sprintf("b%d\n", i))
				}
				write(r, 1, "part")
				lines := strings.Split(Tail(r, 1), "\n")
				if len(lines) != tailLines || lines[0] != "a11" || lines[19] != "part" {
					t.Errorf("running tail: %q", lines)
				}
				r.Done(1, false, errors.New("exit status 1"))
				r.Done(2, false, nil)
				lines = strings.Split(Tail(r, 1), "\n")
				if len(lines) != tailLines || lines[0] != "a11" || lines[19] != "part" {
					t.Errorf("failed tail: %q", lines)
				}
				if got := Tail(r, 2); got != "" {
					t.Errorf("tail of a successful step: %q", got)
				}
				if got := Tail(r, 99); got != "" {
					t.Errorf("tail of an unknown step: %q", got)
				}
			})
		})
	}
	if got := Tail(Discard(), 1); got != "" {
		t.Errorf("Discard tail: %q", got)
	}
	long := strings.Repeat("x", 3*maxTailLine)
	r := Discard()
	r.Start(Step{ID: 1})
	write(r, 1, long+"\n")
	if got := Tail(r, 1); len(got) > maxTailLine+3 || !strings.HasSuffix(got, "...") {
		t.Errorf("tail line of %d bytes", len(got))
	}
}

// lockedBuffer is a writer for the concurrency test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestConcurrent reports from many goroutines at once; run with -race.
// In plain mode, every line must come out whole.
func TestConcurrent(t *testing.T) {
	const steps, lines = 8, 200
	for _, mode := range []string{"plain", "tty", "json", "quiet"} {
		t.Run(mode, func(t *testing.T) {
			var out lockedBuffer
			r, err := NewWithOptions(mode, &out, Options{Width: 100, Height: 30})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for id := 1; id <= steps; id++ {
				wg.Go(func() {
					r.Start(Step{ID: id, Stage: "s", Index: 1, Total: 1, Text: "RUN x"})
					w := r.Output(id)
					for i := range lines {
						line := fmt.Sprintf("step %d line %d %s\n", id, i, strings.Repeat("y", i))
						// Three chunks, to interleave with the other steps.
						n := len(line) / 3
						w.Write([]byte(line[:n]))
						w.Write([]byte(line[n : 2*n]))
						w.Write([]byte(line[2*n:]))
						if i%50 == 0 {
							r.Log("log from %d", id)
							Tail(r, id)
						}
					}
					var err error
					if id == 1 {
						err = errors.New("exit status 1")
					}
					r.Done(id, id%2 == 0, err)
				})
			}
			wg.Wait()
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if mode != "plain" {
				return
			}
			valid := regexp.MustCompile(`^(#(\d+) (\[s 1/1\] RUN x|step (\d+) line \d+ y*|CACHED|DONE \d+\.\d\ds|ERROR: exit status 1)|log from \d+|------.*|step 1 line \d+ y*|Build failed after .*)$`)
			count := 0
			for _, l := range strings.Split(strings.TrimSuffix(out.b.String(), "\n"), "\n") {
				m := valid.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("torn line %q", l)
				}
				if m[4] != "" {
					count++
					if m[2] != m[4] {
						t.Fatalf("line of step %s under #%s", m[4], m[2])
					}
				}
			}
			if count != steps*lines {
				t.Errorf("%d output lines, want %d", count, steps*lines)
			}
		})
	}
}
