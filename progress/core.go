package progress

import (
	"bufio"
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
	tailLines   = 20          // output lines kept per step for failure reports
	maxTailLine = 2048        // bytes kept of one such line
	maxLine     = 64 << 10    // a line longer than this is passed on in pieces
	outBuffer   = 2 * maxLine // bytes of rendered progress buffered between flushes
)

// DefaultLogLimit is how many bytes of each step's output a Reporter
// shows when Options.LogLimit is zero.
const DefaultLogLimit = 8 << 20

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
	// shown and dropped count the output bytes passed to the sink and
	// left out past the log limit; clipped is set once the limit is hit.
	shown, dropped int64
	clipped        bool
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
	clipped(st *step)           // st.dropped bytes of output were left out
	done(st *step)
	log(msg string)
	close() // the end of the build
}

// core is the Reporter of every mode: it keeps the steps' state, splits
// their output into lines and hands events to the mode's sink.
type core struct {
	now   func() time.Time
	t0    time.Time // when the reporter was made
	out   *errWriter
	sink  sink
	limit int64 // output bytes shown per step; negative: no limit

	mu     sync.Mutex
	steps  map[int]*step
	order  []*step // in the order they started
	failed []*step // in the order they failed
	closed bool
	// outcome is how the build ended, set by Finish; known is false
	// after a plain Close.
	outcome Outcome
	known   bool

	closeOnce sync.Once
}

func newCore(w io.Writer, opts Options) *core {
	limit := opts.LogLimit
	if limit == 0 {
		limit = DefaultLogLimit
	}
	return &core{
		now:   opts.Now,
		t0:    opts.Now(),
		out:   &errWriter{w: bufio.NewWriterSize(w, outBuffer)},
		steps: map[int]*step{},
		limit: limit,
	}
}

// lock takes c.mu; unlock flushes what the sink wrote while it was held
// and releases c.mu. Rendering is buffered so that many short lines cost
// one write, not one each.
func (c *core) lock() { c.mu.Lock() }

func (c *core) unlock() {
	c.out.flush()
	c.mu.Unlock()
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
	c.lock()
	defer c.unlock()
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
	c.lock()
	defer c.unlock()
	if c.closed {
		return
	}
	st := c.get(id)
	if st.clipped {
		b = c.skip(st, b)
	}
	st.part = append(st.part, b...)
	rest := st.part
	// Only the last lines can end up in the tail.
	for toTail := tailStart(rest); ; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		c.emit(st, rest[:i], i+1, toTail <= 0)
		toTail -= i + 1
		rest = rest[i+1:]
	}
	for len(rest) > maxLine {
		cut := maxLine
		for cut > maxLine-utf8.UTFMax && !utf8.RuneStart(rest[cut]) {
			cut--
		}
		c.emit(st, rest[:cut], cut, true)
		rest = rest[cut:]
	}
	// Move the partial line to the front so the buffer stays small.
	st.part = append(st.part[:0], rest...)
}

// skip drops the output of a clipped step that cannot reach its tail:
// everything before its last tailLines+1 lines. Past the log limit, a
// step that prints a gigabyte then costs a scan for newlines, not a tail
// update per line.
func (c *core) skip(st *step, b []byte) []byte {
	start := tailStart(b)
	if start == 0 {
		return b
	}
	st.dropped += int64(len(st.part) + start)
	st.part = st.part[:0]
	return b[start:]
}

// tailStart returns where the last tailLines complete lines of b start:
// after the newline before them, or 0 when b has no more lines.
func tailStart(b []byte) int {
	end := len(b)
	for range tailLines + 1 {
		i := bytes.LastIndexByte(b[:end], '\n')
		if i < 0 {
			return 0
		}
		end = i
	}
	return end + 1
}

// emit passes one output line on, n bytes of output with its newline,
// unless that goes past the log limit, and adds it to the step's tail if
// toTail; line is only valid during the call.
func (c *core) emit(st *step, line []byte, n int, toTail bool) {
	if toTail && st.tail != nil {
		st.tail.add(line)
	}
	if !st.clipped && c.limit >= 0 && st.shown+int64(n) > c.limit {
		st.clipped = true
	}
	if st.clipped {
		st.dropped += int64(n)
		return
	}
	st.shown += int64(n)
	c.sink.line(st, line)
}

// flush emits the step's partial line, and says how much output was
// left out.
func (c *core) flush(st *step) {
	if len(st.part) > 0 {
		c.emit(st, st.part, len(st.part), true)
		st.part = nil
	}
	if st.dropped > 0 {
		c.sink.clipped(st)
	}
}

func (c *core) Done(id int, hit bool, err error) {
	c.lock()
	defer c.unlock()
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
	c.lock()
	defer c.unlock()
	if c.closed {
		return
	}
	c.sink.log(msg)
}

// Close marks steps that are still running as canceled and ends the sink.
func (c *core) Close() error { return c.end(Outcome{}, false) }

// Finish is Close with the build's outcome.
func (c *core) Finish(o Outcome) error { return c.end(o, true) }

func (c *core) end(o Outcome, known bool) error {
	c.closeOnce.Do(func() {
		// Stop the tty's ticker first: it takes c.mu.
		if s, ok := c.sink.(interface{ stop() }); ok {
			s.stop()
		}
		c.lock()
		defer c.unlock()
		c.closed = true // from here on, events are ignored
		c.outcome, c.known = o, known
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
	c.lock()
	defer c.unlock()
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

// result is how the build ended, as the summary tells it.
type result int

const (
	built result = iota
	buildFailed
	buildCanceled
)

// result returns how the build ended: canceled when its error says so
// or, without an outcome, when steps were canceled and none failed.
func (c *core) result() result {
	_, _, fails := c.counts()
	switch err := c.outcome.Err; {
	case errors.Is(err, context.Canceled):
		return buildCanceled
	case err != nil || fails > 0:
		return buildFailed
	}
	if !c.known {
		for _, st := range c.order {
			if st.status == canceled {
				return buildCanceled
			}
		}
	}
	return built
}

// writeSummary writes the line that ends a plain or tty report:
//
//	Built app:1 (sha256:...) in 3.4s: 5 steps, 2 cached
//	Build failed after 3.4s: 5 steps, 2 cached, 1 failed
//	Build canceled after 3.4s: 5 steps, 2 cached
func (c *core) writeSummary(w io.Writer) {
	if !c.known && len(c.order) == 0 {
		return // nothing to sum up
	}
	finished, hits, fails := c.counts()
	took := c.now().Sub(c.t0).Seconds()
	switch c.result() {
	case buildCanceled:
		fmt.Fprintf(w, "Build canceled after %.1fs: %d steps, %d cached\n", took, finished, hits)
	case buildFailed:
		fmt.Fprintf(w, "Build failed after %.1fs: %d steps, %d cached, %d failed\n", took, finished, hits, fails)
	default:
		what := ""
		switch o := c.outcome; {
		case o.Image != "" && o.Digest != "":
			what = " " + o.Image + " (" + o.Digest + ")"
		case o.Image != "" || o.Digest != "":
			what = " " + o.Image + o.Digest
		}
		fmt.Fprintf(w, "Built%s in %.1fs: %d steps, %d cached\n", what, took, finished, hits)
	}
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

// errWriter buffers the rendered progress, remembers the first write
// error and drops all later writes: a broken terminal must not fail the
// build.
type errWriter struct {
	w   *bufio.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return len(b), nil
	}
	if len(b) > e.w.Available() {
		// Flush first so that one Write reaches w in one piece.
		e.flush()
	}
	if _, err := e.w.Write(b); err != nil {
		e.err = fmt.Errorf("writing progress: %w", err)
	}
	return len(b), nil
}

// flush writes out what is buffered.
func (e *errWriter) flush() {
	if e.err != nil {
		return
	}
	if err := e.w.Flush(); err != nil {
		e.err = fmt.Errorf("writing progress: %w", err)
	}
}

// quiet is the sink that prints nothing.
type quiet struct{}

func (quiet) start(*step)        {}
func (quiet) line(*step, []byte) {}
func (quiet) clipped(*step)      {}
func (quiet) done(*step)         {}
func (quiet) log(string)         {}
func (quiet) close()             {}
