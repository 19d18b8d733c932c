package progress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// numbered returns n lines "line 1".."line n", their total size, and the
// last tailLines of them.
func numbered(n int) (data []byte, last []string) {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
		if i > n-tailLines {
			last = append(last, fmt.Sprintf("line %d", i))
		}
	}
	return b.Bytes(), last
}

// writeChunks writes data to step id in chunks of n bytes.
func writeChunks(r Reporter, id int, data []byte, n int) {
	w := r.Output(id)
	for b := data; len(b) > 0; {
		k := min(len(b), n)
		w.Write(b[:k])
		b = b[k:]
	}
}

// TestLogLimitPlain: past the limit, output is left out, one line says
// how many bytes, and the failure block still has the last lines.
func TestLogLimitPlain(t *testing.T) {
	const limit = 4 << 10
	data, last := numbered(50000)
	for _, chunk := range []int{1, 333, 32 << 10} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			got := run(t, "plain", Options{LogLimit: limit}, func(r Reporter, clk *clock) {
				r.Start(Step{ID: 1, Text: "RUN gen"})
				writeChunks(r, 1, data, chunk)
				if tail := Tail(r, 1); tail != strings.Join(last, "\n") {
					t.Errorf("running tail after the limit: %q", tail)
				}
				r.Done(1, false, errors.New("exit status 1"))
			})
			shown := 0
			var marker []string
			lines := strings.Split(got, "\n")
			for _, l := range lines {
				switch {
				case strings.HasPrefix(l, "#1 line "):
					shown += len(l) - len("#1 ") + 1
				case strings.HasPrefix(l, "#1 [output clipped"):
					marker = append(marker, l)
				}
			}
			if shown > limit || shown < limit-20 {
				t.Errorf("%d bytes of output shown, want about %d", shown, limit)
			}
			want := fmt.Sprintf("#1 [output clipped: %d bytes dropped past the log limit of 4 KiB per step]", len(data)-shown)
			if len(marker) != 1 || marker[0] != want {
				t.Errorf("markers %q, want [%q]", marker, want)
			}
			_, block, ok := strings.Cut(got, "(last 20 lines) ------\n")
			if !ok || !strings.HasPrefix(block, strings.Join(last, "\n")+"\n------\n") {
				t.Errorf("failure block lacks the last lines:\n%s", got[max(0, len(got)-600):])
			}
		})
	}
}

func TestLogLimitOff(t *testing.T) {
	data, _ := numbered(3000)
	got := run(t, "plain", Options{LogLimit: -1}, func(r Reporter, clk *clock) {
		r.Start(Step{ID: 1, Text: "RUN gen"})
		writeChunks(r, 1, data, 100)
		r.Done(1, false, nil)
	})
	if n := strings.Count(got, "#1 line "); n != 3000 || strings.Contains(got, "clipped") {
		t.Errorf("%d lines shown of 3000, or a marker:\n%s", n, got[len(got)-200:])
	}
}

func TestLogLimitJSON(t *testing.T) {
	data, last := numbered(1000)
	got := run(t, "json", Options{LogLimit: 1000}, func(r Reporter, clk *clock) {
		r.Start(Step{ID: 1, Text: "RUN gen"})
		writeChunks(r, 1, data, 64)
		r.Done(1, false, errors.New("exit status 1"))
	})
	shown, clipped := 0, 0
	for _, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		var e event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		switch e.Type {
		case "output":
			shown += len(*e.Data) + 1
		case "done":
			if strings.Join(e.Tail, "\n") != strings.Join(last, "\n") {
				t.Errorf("done event's tail %q, want the last lines", e.Tail)
			}
		case "clipped":
			clipped++
			if e.Dropped != int64(len(data)-shown) || !strings.Contains(e.Text, "bytes dropped") {
				t.Errorf("clipped event %+v after %d bytes shown of %d", e, shown, len(data))
			}
		}
	}
	if shown > 1000 || clipped != 1 {
		t.Errorf("%d bytes shown, %d clipped events", shown, clipped)
	}
}

// countingWriter counts the writes it gets.
type countingWriter struct {
	writes int
	bytes  int
}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.writes++
	c.bytes += len(b)
	return len(b), nil
}

// TestPlainBuffersOutput: many short lines arriving in one chunk are
// written out in few writes, not one per line.
func TestPlainBuffersOutput(t *testing.T) {
	var w countingWriter
	r, err := NewWithOptions("plain", &w, Options{LogLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	r.Start(Step{ID: 1, Text: "RUN yes"})
	chunk := bytes.Repeat([]byte("y\n"), 16<<10)
	const chunks = 64
	for range chunks {
		r.Output(1).Write(chunk)
	}
	r.Done(1, false, nil)
	r.Close()
	lines := chunks * 16 << 10
	if w.bytes < lines*len("#1 y\n") {
		t.Fatalf("%d bytes written for %d lines", w.bytes, lines)
	}
	if w.writes > 4*chunks {
		t.Errorf("%d writes for %d lines in %d chunks", w.writes, lines, chunks)
	}
}

func TestFinishSummary(t *testing.T) {
	steps := func(r Reporter, clk *clock) {
		r.Start(Step{ID: 1, Index: 1, Total: 2, Text: "FROM scratch"})
		r.Done(1, false, nil)
		r.Start(Step{ID: 2, Index: 2, Total: 2, Text: "COPY a /"})
		r.Done(2, true, nil)
		clk.add(1500e6)
	}
	tests := []struct {
		mode string
		o    Outcome
		want []string
	}{
		{"plain", Outcome{Image: "app:1", Digest: "sha256:abc"}, []string{"\nBuilt app:1 (sha256:abc) in 1.5s: 2 steps, 1 cached\n"}},
		{"plain", Outcome{Digest: "sha256:abc"}, []string{"\nBuilt sha256:abc in 1.5s: 2 steps, 1 cached\n"}},
		{"plain", Outcome{Err: fmt.Errorf("exporting: %w", context.Canceled)}, []string{"\nBuild canceled after 1.5s: 2 steps, 1 cached\n"}},
		{"plain", Outcome{Err: errors.New("saving image: disk full")}, []string{"\nBuild failed after 1.5s: 2 steps, 1 cached, 0 failed\n"}},
		{"tty", Outcome{Image: "app:1", Digest: "sha256:abc"}, []string{"(2/2) FINISHED\n", "\nBuilt app:1 (sha256:abc) in 1.5s: 2 steps, 1 cached\n"}},
		// Ctrl-C between steps: every step done, the build canceled.
		{"tty", Outcome{Err: context.Canceled}, []string{"(2/2) CANCELED\n", "\nBuild canceled after 1.5s: 2 steps, 1 cached\n"}},
		{"json", Outcome{Image: "app:1", Digest: "sha256:abc"}, []string{`"type":"summary","duration_ms":1500,"image":"app:1","digest":"sha256:abc"}`}},
		{"json", Outcome{Err: context.Canceled}, []string{`"type":"summary","canceled":true,"error":"context canceled","duration_ms":1500}`}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			var buf bytes.Buffer
			clk := newClock()
			r, err := NewWithOptions(tt.mode, &buf, Options{Now: clk.Now, Interval: -1, NoColor: true})
			if err != nil {
				t.Fatal(err)
			}
			steps(r, clk)
			if err := Finish(r, tt.o); err != nil {
				t.Fatal(err)
			}
			got := screen(buf.String())
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			if strings.Contains(got, "FINISHED") && tt.o.Err != nil {
				t.Errorf("FINISHED in a build that did not finish:\n%s", got)
			}
		})
	}
}

// TestTTYCanceledByClose: Close while steps run (Ctrl-C) shows CANCELED,
// not FINISHED and a success summary.
func TestTTYCanceledByClose(t *testing.T) {
	got := screen(run(t, "tty", Options{Width: 60, Height: 20, NoColor: true}, func(r Reporter, clk *clock) {
		r.Start(Step{ID: 1, Index: 1, Total: 2, Text: "FROM scratch"})
		r.Done(1, false, nil)
		r.Start(Step{ID: 2, Index: 2, Total: 2, Text: "RUN sleep 100"})
		clk.add(2e9)
	}))
	if !strings.Contains(got, "(2/2) CANCELED\n") || !strings.HasSuffix(got, "\nBuild canceled after 2.0s: 2 steps, 0 cached\n") || strings.Contains(got, "FINISHED") {
		t.Errorf("output:\n%s", got)
	}
}

// BenchmarkPlainShortLines prints 20 million two-byte lines, arriving
// in 32 KiB chunks as a pipe delivers them, to /dev/null.
func BenchmarkPlainShortLines(b *testing.B) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	chunk := bytes.Repeat([]byte("y\n"), 16<<10)
	const lines = 20_000_000
	for b.Loop() {
		r, err := NewWithOptions("plain", devNull, Options{LogLimit: -1})
		if err != nil {
			b.Fatal(err)
		}
		r.Start(Step{ID: 1, Text: "RUN yes"})
		w := r.Output(1)
		for n := 0; n < lines; n += 16 << 10 {
			w.Write(chunk)
		}
		r.Done(1, false, nil)
		r.Close()
	}
}
