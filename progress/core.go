package progress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

const (
	tailLines   = 20       // output lines kept per step for failure reports
	maxTailLine = 2048     // bytes kept of one such line
	maxLine     = 64 << 10 // a line longer than this is passed on in pieces
)

// status is where a step is in its life.
type status int

const (
	running status = iota
	succeeded
	cached
	failed
	canceled
)

// step is the state of one step.
type step struct {
	Step
	status     status
	start, end time.Time
	err        error
	part       []byte // output after the last newline
	tail       *ring  // last output lines; nil once the step succeeded
}

func (st *step) duration() time.Duration {
	if st.start.IsZero() || st.end.Before(st.start) {
		return 0
	}
	return st.end.Sub(st.start)
}

// sink renders events for one mode. Its methods are called with core.mu
// held, in the order of the events, so they may write without locking.
type sink interface {
	start(st *step)
	line(st *step, line []byte) // one output line, without its newline
	done(st *step)
	log(msg string)
	close() // the end of the build
}

// core is the Reporter of every mode: it keeps the steps' state, splits
// their output into lines and hands events to the mode's sink.
type core struct {
	now  func() time.Time
	t0   time.Time // when the reporter was made
	out  *errWriter
	sink sink

	mu     sync.Mutex
	steps  map[int]*step
	order  []*step // in the order they started
	failed []*step // in the order they failed
	closed bool

	closeOnce sync.Once
}

func newCore(w io.Writer, now func() time.Time) *core {
	return &core{now: now, t0: now(), out: &errWriter{w: w}, steps: map[int]*step{}}
}

// get returns the step with the given id, made up if it never started.
func (c *core) get(id int) *step {
	st, ok := c.steps[id]
	if !ok {
		st = &step{Step: Step{ID: id}, tail: &ring{}}
		c.steps[id] = st
		c.order = append(c.order, st)
	}
	return st
}

func (c *core) Start(s Step) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	st, ok := c.steps[s.ID]
	if !ok {
		st = &step{}
		c.steps[s.ID] = st
		c.order = append(c.order, st)
	}
	*st = step{Step: s, start: c.now(), tail: &ring{}}
	c.sink.start(st)
}

func (c *core) Output(id int) io.Writer { return &output{c: c, id: id} }

// output is the writer of one step's output.
type output struct {
	c  *core
	id int
}

func (o *output) Write(b []byte) (int, error) {
	o.c.write(o.id, b)
	return len(b), nil
}

func (c *core) write(id int, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	st := c.get(id)
	st.part = append(st.part, b...)
	rest := st.part
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		c.emit(st, rest[:i])
		rest = rest[i+1:]
	}
	for len(rest) > maxLine {
		cut := maxLine
		for cut > maxLine-utf8.UTFMax && !utf8.RuneStart(rest[cut]) {
			cut--
		}
		c.emit(st, rest[:cut])
		rest = rest[cut:]
	}
	// Move the partial line to the front so the buffer stays small.
	st.part = append(st.part[:0], rest...)
}

// emit passes one output line on; line is only valid during the call.
func (c *core) emit(st *step, line []byte) {
	if st.tail != nil {
		st.tail.add(line)
	}
	c.sink.line(st, line)
}

// flush emits the step's partial line.
func (c *core) flush(st *step) {
	if len(st.part) > 0 {
		c.emit(st, st.part)
		st.part = nil
	}
}

func (c *core) Done(id int, hit bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.finish(c.get(id), hit, err)
}

func (c *core) finish(st *step, hit bool, err error) {
	c.flush(st)
	st.end = c.now()
	st.err = err
	switch {
	case errors.Is(err, context.Canceled):
		st.status = canceled
		st.tail = nil
	case err != nil:
		st.status = failed
		c.failed = append(c.failed, st)
	case hit:
		st.status = cached
		st.tail = nil
	default:
		st.status = succeeded
		st.tail = nil
	}
	c.sink.done(st)
}

func (c *core) Log(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.sink.log(msg)
}

// Close marks steps that are still running as canceled and ends the sink.
func (c *core) Close() error {
	c.closeOnce.Do(func() {
		// Stop the tty's ticker first: it takes c.mu.
		if s, ok := c.sink.(interface{ stop() }); ok {
			s.stop()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.closed = true // from here on, events are ignored
		for _, st := range c.order {
			if st.status == running {
				c.finish(st, false, context.Canceled)
			}
		}
		c.sink.close()
	})
	return c.out.err
}

func (c *core) TailOf(id int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.steps[id]
	if !ok || st.tail == nil {
		return ""
	}
	lines := st.tail.lines
	if len(st.part) > 0 {
		lines = append(st.tail.last(tailLines-1), clip(st.part))
	}
	return strings.Join(lines, "\n")
}

// counts returns how many steps finished, were cached and failed.
func (c *core) counts() (finished, hits, fails int) {
	for _, st := range c.order {
		switch st.status {
		case running:
			continue
		case cached:
			hits++
		case failed:
			fails++
		}
		finished++
	}
	return finished, hits, fails
}

// writeFailures writes the tails of the failed steps, each line passed
// through fix.
func (c *core) writeFailures(w io.Writer, fix func(string) string) {
	for _, st := range c.failed {
		if st.tail == nil || len(st.tail.lines) == 0 {
			continue
		}
		var b strings.Builder
		label, plural := "", "s"
		if s := fix(st.String()); s != "" {
			label = " " + s
		}
		if len(st.tail.lines) == 1 {
			plural = ""
		}
		fmt.Fprintf(&b, "------ output of failed step #%d%s (last %d line%s) ------\n",
			st.ID, label, len(st.tail.lines), plural)
		for _, l := range st.tail.lines {
			b.WriteString(fix(l))
			b.WriteByte('\n')
		}
		b.WriteString("------\n")
		io.WriteString(w, b.String())
	}
}

// ring keeps the last tailLines lines written to it.
type ring struct {
	lines []string
}

func (r *ring) add(line []byte) {
	s := clip(line)
	if len(r.lines) < tailLines {
		r.lines = append(r.lines, s)
		return
	}
	copy(r.lines, r.lines[1:])
	r.lines[len(r.lines)-1] = s
}

// last returns up to n of the last lines.
func (r *ring) last(n int) []string {
	if n > len(r.lines) {
		n = len(r.lines)
	}
	return r.lines[len(r.lines)-n : len(r.lines) : len(r.lines)]
}

// clip returns line as a string of at most about maxTailLine bytes.
func clip(line []byte) string {
	if len(line) <= maxTailLine {
		return string(line)
	}
	cut := maxTailLine
	for cut > maxTailLine-utf8.UTFMax && !utf8.RuneStart(line[cut]) {
		cut--
	}
	return string(line[:cut]) + "..."
}

// errWriter remembers the first write error and drops all later writes:
// a broken terminal must not fail the build.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return len(b), nil
	}
	if _, err := e.w.Write(b); err != nil {
		e.err = fmt.Errorf("writing progress: %w", err)
	}
	return len(b), nil
}

// quiet is the sink that prints nothing.
type quiet struct{}

func (quiet) start(*step)        {}
func (quiet) line(*step, []byte) {}
func (quiet) done(*step)         {}
func (quiet) log(string)         {}
func (quiet) close()             {}
