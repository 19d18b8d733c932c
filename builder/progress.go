package builder

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress writes plain, line-oriented progress: "#N label", the step's
// output lines prefixed with "#N ", and "#N DONE 0.12s".
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	next int
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

func (p *progress) start(label string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	fmt.Fprintf(p.w, "#%d %s\n", p.next, label)
	return p.next
}

func (p *progress) done(id int, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "#%d DONE %.2fs\n", id, d.Seconds())
}

// output returns a writer that prefixes each line of a step's output.
func (p *progress) output(id int) io.Writer {
	return &prefixWriter{p: p, prefix: fmt.Sprintf("#%d ", id)}
}

type prefixWriter struct {
	p      *progress
	prefix string
	buf    []byte
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(w.p.w, "%s%s\n", w.prefix, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	// Flush very long partial lines rather than holding them.
	if len(w.buf) > 64*1024 {
		fmt.Fprintf(w.p.w, "%s%s\n", w.prefix, w.buf)
		w.buf = w.buf[:0]
	}
	return len(b), nil
}

// tail keeps the last n lines written to it.
type tail struct {
	mu    sync.Mutex
	n     int
	lines []string
	part  []byte
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, b...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.add(string(t.part[:i]))
		t.part = t.part[i+1:]
	}
	if len(t.part) > 4096 {
		t.add(string(t.part))
		t.part = t.part[:0]
	}
	return len(b), nil
}

func (t *tail) add(line string) {
	if len(line) > 512 {
		line = line[:512] + "..."
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > t.n {
		t.lines = t.lines[len(t.lines)-t.n:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.part) > 0 {
		lines = append(append([]string{}, lines...), string(t.part))
	}
	return strings.Join(lines, "\n")
}
