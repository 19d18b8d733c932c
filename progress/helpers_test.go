package progress

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock, safe for the tty's ticker to read.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// script drives a reporter through a build.
type script func(r Reporter, clk *clock)

// run plays s against a new reporter in mode and returns what it wrote.
func run(t *testing.T, mode string, opts Options, s script) string {
	t.Helper()
	var buf bytes.Buffer
	clk := newClock()
	opts.Now = clk.Now
	if opts.Interval == 0 {
		opts.Interval = -1
	}
	r, err := NewWithOptions(mode, &buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	s(r, clk)
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.String()
}

func write(r Reporter, id int, chunks ...string) {
	for _, c := range chunks {
		r.Output(id).Write([]byte(c))
	}
}

var escapes = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// screen strips escape sequences and carriage returns.
func screen(s string) string {
	return strings.ReplaceAll(escapes.ReplaceAllString(s, ""), "\r", "")
}
