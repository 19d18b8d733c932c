package progress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPlain(t *testing.T) {
	builder := func(i int, text string) Step {
		return Step{ID: i, Stage: "builder", Index: i, Total: 3, Text: text}
	}
	tests := []struct {
		name string
		run  script
		want string
	}{{
		name: "interleaved steps",
		run: func(r Reporter, clk *clock) {
			r.Start(builder(1, "RUN make"))
			clk.add(100 * time.Millisecond)
			r.Start(Step{ID: 2, Stage: "web", Index: 1, Total: 1, Text: "RUN npm ci"})
			write(r, 1, "compil")
			write(r, 2, "added 3 packages\nwarn")
			write(r, 1, "ing\n")
			clk.add(1130 * time.Millisecond)
			r.Done(2, false, errors.New("exit status 1"))
			r.Start(builder(3, "COPY . /src"))
			r.Done(3, true, nil)
			clk.add(500 * time.Millisecond)
			r.Done(1, false, nil)
			r.Log("wrote oci output: %s", "/tmp/x")
		},
		want: `#1 [builder 1/3] RUN make
#2 [web 1/1] RUN npm ci
#2 added 3 packages
#1 compiling
#2 warn
#2 ERROR: exit status 1
#3 [builder 3/3] COPY . /src
#3 CACHED
#1 DONE 1.73s
wrote oci output: /tmp/x
------ output of failed step #2 [web 1/1] RUN npm ci (last 2 lines) ------
added 3 packages
warn
------
Build failed after 1.7s: 3 steps, 1 cached, 1 failed
`,
	}, {
		name: "partial line flushed at done",
		run: func(r Reporter, clk *clock) {
			r.Start(builder(1, "RUN printf"))
			write(r, 1, "a\nb", "c", "")
			clk.add(20 * time.Millisecond)
			r.Done(1, false, nil)
		},
		want: "#1 [builder 1/3] RUN printf\n#1 a\n#1 bc\n#1 DONE 0.02s\nBuilt in 0.0s: 1 steps, 0 cached\n",
	}, {
		name: "empty lines and CRLF kept",
		run: func(r Reporter, clk *clock) {
			r.Start(builder(1, "RUN x"))
			write(r, 1, "\n\r\nz\n")
			r.Done(1, false, nil)
		},
		want: "#1 [builder 1/3] RUN x\n#1 \n#1 \r\n#1 z\n#1 DONE 0.00s\nBuilt in 0.0s: 1 steps, 0 cached\n",
	}, {
		name: "labels",
		run: func(r Reporter, clk *clock) {
			r.Start(Step{ID: 1, Text: "resolve alpine"})
			r.Start(Step{ID: 2, Index: 1, Total: 2, Text: "FROM alpine"})
			r.Start(Step{ID: 3, Stage: "x", Text: "export"})
			r.Start(Step{ID: 4, Stage: "x", Index: 2, Total: 2, Text: "RUN <<EOF\necho hi\nEOF"})
			for i := 1; i <= 4; i++ {
				r.Done(i, true, nil)
			}
		},
		want: `#1 resolve alpine
#2 [1/2] FROM alpine
#3 [x] export
#4 [x 2/2] RUN <<EOF ...
#1 CACHED
#2 CACHED
#3 CACHED
#4 CACHED
Built in 0.0s: 4 steps, 4 cached
`,
	}, {
		name: "canceled steps are not failures",
		run: func(r Reporter, clk *clock) {
			r.Start(builder(1, "RUN sleep 9"))
			write(r, 1, "zz\n")
			r.Done(1, false, fmt.Errorf("running: %w", context.Canceled))
			r.Start(builder(2, "RUN sleep 8"))
			write(r, 2, "partial")
			// Close cancels steps that never ended.
		},
		want: "#1 [builder 1/3] RUN sleep 9\n#1 zz\n#1 CANCELED\n#2 [builder 2/3] RUN sleep 8\n#2 partial\n#2 CANCELED\nBuild canceled after 0.0s: 2 steps, 0 cached\n",
	}, {
		name: "output and done without start",
		run: func(r Reporter, clk *clock) {
			write(r, 7, "x\n")
			r.Done(7, false, errors.New("boom"))
		},
		want: "#7 x\n#7 ERROR: boom\n------ output of failed step #7 (last 1 line) ------\nx\n------\nBuild failed after 0.0s: 1 steps, 0 cached, 1 failed\n",
	}, {
		name: "failed step without output has no block",
		run: func(r Reporter, clk *clock) {
			r.Start(builder(1, "RUN false"))
			r.Done(1, false, errors.New("exit status 1"))
		},
		want: "#1 [builder 1/3] RUN false\n#1 ERROR: exit status 1\nBuild failed after 0.0s: 1 steps, 0 cached, 1 failed\n",
	}, {
		name: "events after close are ignored",
		run: func(r Reporter, clk *clock) {
			r.Close()
			r.Start(builder(1, "RUN x"))
			write(r, 1, "y\n")
			r.Done(1, false, nil)
			r.Log("z")
		},
		want: "",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(t, "plain", Options{}, tt.run); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestPlainFailureTailKeepsLastLines(t *testing.T) {
	got := run(t, "plain", Options{}, func(r Reporter, clk *clock) {
		r.Start(Step{ID: 1, Text: "RUN seq 50"})
		for i := 1; i <= 50; i++ {
			write(r, 1, fmt.Sprintf("%d\n", i))
		}
		r.Done(1, false, errors.New("exit status 1"))
	})
	_, block, ok := strings.Cut(got, "------ output of failed step #1 RUN seq 50 (last 20 lines) ------\n")
	if !ok {
		t.Fatalf("no failure block in:\n%s", got)
	}
	var want strings.Builder
	for i := 31; i <= 50; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	want.WriteString("------\nBuild failed after 0.0s: 1 steps, 0 cached, 1 failed\n")
	if block != want.String() {
		t.Errorf("block:\n%s\nwant:\n%s", block, want.String())
	}
}

// TestPlainNoClipping writes 2 MiB as many lines and as one line, in odd
// chunks, and expects every byte back.
func TestPlainNoClipping(t *testing.T) {
	const size = 2 << 20
	data := func(lineLen int) []byte {
		b := make([]byte, 0, size)
		for i := 0; len(b) < size; i++ {
			b = append(b, byte('a'+i%26))
			if lineLen > 0 && i%lineLen == lineLen-1 {
				b = append(b, '\n')
			}
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"short lines", data(100)},
		{"one line", data(0)},
		{"multibyte", bytes.Repeat([]byte("é€"), size/5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, "plain", Options{}, func(r Reporter, clk *clock) {
				r.Start(Step{ID: 1, Text: "RUN gen"})
				w := r.Output(1)
				for b := tt.data; len(b) > 0; {
					n := min(len(b), 7777)
					w.Write(b[:n])
					b = b[n:]
				}
				r.Done(1, false, nil)
			})
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			if last := lines[len(lines)-1]; last != "Built in 0.0s: 1 steps, 0 cached" {
				t.Fatalf("summary: %q", last)
			}
			lines = lines[:len(lines)-1]
			if lines[0] != "#1 RUN gen" || lines[len(lines)-1] != "#1 DONE 0.00s" {
				t.Fatalf("first and last lines: %q, %q", lines[0], lines[len(lines)-1])
			}
			var back bytes.Buffer
			for _, l := range lines[1 : len(lines)-1] {
				rest, ok := strings.CutPrefix(l, "#1 ")
				if !ok {
					t.Fatalf("line without prefix: %.40q", l)
				}
				if len(rest) > maxLine {
					t.Fatalf("line of %d bytes", len(rest))
				}
				back.WriteString(rest)
				if !bytes.Contains(tt.data, []byte("\n")) {
					continue // pieces of one line
				}
				back.WriteByte('\n')
			}
			want := tt.data
			if bytes.Contains(tt.data, []byte("\n")) && !bytes.HasSuffix(want, []byte("\n")) {
				want = append(want, '\n') // the partial last line ends at Done
			}
			if !bytes.Equal(back.Bytes(), want) {
				t.Errorf("got %d bytes back, want %d", back.Len(), len(want))
			}
			if tt.name == "multibyte" && !strings.Contains(got, "é") || strings.ContainsRune(got, '\uFFFD') {
				t.Errorf("pieces split a character")
			}
		})
	}
}
