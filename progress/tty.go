package progress

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	ttyOutLines = 6                      // output lines shown under a running step
	ttyInterval = 100 * time.Millisecond // default redraw period
)

// ANSI escape sequences.
const (
	clearLine  = "\x1b[2K"
	eraseRight = "\x1b[K"
	wrapOff    = "\x1b[?7l" // long lines are cut by the terminal, not wrapped
	wrapOn     = "\x1b[?7h"
	dim        = "\x1b[2m"
	red        = "\x1b[31m"
	yellow     = "\x1b[33m"
	blue       = "\x1b[34m"
	reset      = "\x1b[0m"
)

// tty is a live view, redrawn in place:
//
//	[+] Building 3.4s (3/4)
//	 => CACHED [builder 1/3] COPY . /src             0.0s
//	 => [builder 2/3] RUN make                        2.1s
//	 => => # cc -o app main.c
//	 => ERROR [web 1/2] RUN npm ci                    0.8s
//
// A frame is redrawn by moving the cursor up over the previous one.
// Frames fit the terminal: step lines are cut to its width and, when they
// outnumber its rows, finished steps and then output lines are left out.
type tty struct {
	c      *core
	size   func() (width, height int)
	color  bool
	lines  int // lines of the last frame, to move back over
	quit   chan struct{}
	exited chan struct{}
}

func newTTY(c *core, w io.Writer, opts Options) *tty {
	t := &tty{c: c, color: !opts.NoColor}
	t.size = func() (int, int) {
		width, height := opts.Width, opts.Height
		if width <= 0 || height <= 0 {
			var tw, th int
			if n, ok := fd(w); ok {
				tw, th = termSize(n)
			}
			width, height = pick(width, tw, 80), pick(height, th, 24)
		}
		return width, height
	}
	interval := opts.Interval
	if interval == 0 {
		interval = ttyInterval
	}
	if interval > 0 {
		t.quit, t.exited = make(chan struct{}), make(chan struct{})
		go t.tick(interval)
	}
	return t
}

// pick returns the first positive value.
func pick(vals ...int) int {
	for _, v := range vals {
		if v > 0 {
			return v
		}
	}
	return 0
}

// tick redraws the frame until stop is called, so running steps' timers
// and output move between events.
func (t *tty) tick(interval time.Duration) {
	defer close(t.exited)
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-t.quit:
			return
		case <-tk.C:
			t.c.lock()
			if len(t.c.order) > 0 {
				t.draw(false, nil)
			}
			t.c.unlock()
		}
	}
}

// stop ends the ticker and waits for it; Close calls it before taking c.mu.
func (t *tty) stop() {
	if t.quit != nil {
		close(t.quit)
		<-t.exited
	}
}

func (t *tty) start(*step)        { t.draw(false, nil) }
func (t *tty) line(*step, []byte) {} // shown by the next frame
func (t *tty) clipped(*step)      {} // frames show only the last lines
func (t *tty) done(*step) {
	if !t.c.closed {
		t.draw(false, nil)
	}
}
func (t *tty) log(msg string) { t.draw(false, strings.Split(msg, "\n")) }

func (t *tty) close() {
	t.draw(true, nil)
	t.c.writeFailures(t.c.out, clean)
	t.c.writeSummary(t.c.out)
}

// draw replaces the last frame with a new one, after printing logs above
// it. The whole update is one Write, so the terminal never shows half.
//
// Rows are cleared one by one: erasing the screen below the cursor from
// its top-left corner makes some terminals (tmux) push the screen into
// the scrollback, which fills it with old frames.
func (t *tty) draw(final bool, logs []string) {
	width, height := t.size()
	var b strings.Builder
	if t.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", t.lines)
	}
	b.WriteString("\r")
	for _, l := range logs {
		// Wrapped by the terminal: logs stay. Erasing after the text
		// clears the rest of the last row it takes.
		b.WriteString(clearLine + clean(l) + eraseRight + "\n")
	}
	frame := t.frame(final, width, height)
	b.WriteString(wrapOff)
	for _, l := range frame {
		b.WriteString(clearLine + l + "\n")
	}
	b.WriteString(wrapOn)
	if extra := t.lines - len(logs) - len(frame); extra > 0 {
		b.WriteString(strings.Repeat(clearLine+"\n", extra))
		fmt.Fprintf(&b, "\x1b[%dA", extra)
	}
	t.lines = len(frame)
	if final {
		t.lines = 0
	}
	io.WriteString(t.c.out, b.String())
}

// frame returns the lines of a frame. A final frame shows every step and
// no output; the others fit in height-2 rows.
func (t *tty) frame(final bool, width, height int) []string {
	now := t.c.now()
	finished, _, _ := t.c.counts()
	header := fmt.Sprintf("[+] Building %.1fs (%d/%d)", now.Sub(t.c.t0).Seconds(), finished, len(t.c.order))
	if final {
		switch t.c.result() {
		case built:
			header += " FINISHED"
		case buildCanceled:
			header += " CANCELED"
		}
	}
	steps := t.c.order
	show := make([]bool, len(steps))
	n := 1 // lines so far: the header
	out := ttyOutLines
	if final {
		out = 0
	}
	for i, st := range steps {
		show[i] = true
		n += 1 + t.outLines(st, out)
	}
	budget := max(height-2, 2)
	if !final {
		// Leave out finished steps, oldest first, then output lines.
		for i, st := range steps {
			if n <= budget {
				break
			}
			if st.status != running {
				show[i] = false
				n--
			}
		}
		for out > 0 && n > budget {
			out--
			for _, st := range steps {
				if t.outLines(st, out+1) > out {
					n--
				}
			}
		}
	}
	lines := []string{t.cut(header, width)}
	for i, st := range steps {
		if !show[i] {
			continue
		}
		lines = append(lines, t.stepLine(st, now, width))
		if st.status != running {
			continue
		}
		for _, l := range t.output(st, out) {
			l = t.cut(" => => # "+clean(l), width)
			if t.color {
				l = dim + l + reset
			}
			lines = append(lines, l)
		}
	}
	if !final && len(lines) > budget {
		// Still too many running steps: keep the header and the last ones.
		lines = append(lines[:1], lines[len(lines)-budget+1:]...)
	}
	return lines
}

// outLines returns how many output lines of st a frame shows with at
// most n per step.
func (t *tty) outLines(st *step, n int) int {
	if st.status != running {
		return 0
	}
	return len(t.output(st, n))
}

// output returns up to the last n lines of a running step's output,
// the partial line included.
func (t *tty) output(st *step, n int) []string {
	if n <= 0 || st.tail == nil {
		return nil
	}
	if len(st.part) == 0 || clean(string(st.part)) == "" {
		return st.tail.last(n)
	}
	return append(st.tail.last(n-1), clip(st.part))
}

// stepLine returns " => [builder 2/5] RUN make ... 1.2s", with the time
// at the right edge.
func (t *tty) stepLine(st *step, now time.Time, width int) string {
	var mark, color string
	d := st.duration()
	switch st.status {
	case running:
		color = blue
		if !st.start.IsZero() {
			d = now.Sub(st.start)
		}
	case cached:
		mark = "CACHED "
	case failed:
		mark, color = "ERROR ", red
	case canceled:
		mark, color = "CANCELED ", yellow
	}
	right := fmt.Sprintf("%.1fs", d.Seconds())
	left := t.cut(" => "+mark+clean(st.String()), width-len(right)-1)
	pad := width - 1 - utf8.RuneCountInString(left) - len(right)
	line := left + strings.Repeat(" ", max(pad, 1)) + right
	if t.color && color != "" {
		line = color + line + reset
	}
	return line
}

// cut shortens s to fit in width-1 columns, so the cursor never sits
// past the last column. It counts runes, not cells: wide characters may
// make a line longer, and the terminal then cuts it (autowrap is off).
func (t *tty) cut(s string, width int) string {
	n := width - 1
	if n < 1 {
		n = 1
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// clean makes a line of output printable in one terminal row: it keeps
// what follows the last carriage return (progress bars redraw with \r),
// expands tabs, drops escape sequences and other C0 control characters
// and shows C1 ones as visible does (a terminal may obey U+009B as CSI).
func clean(s string) string {
	s = strings.TrimRight(s, "\r")
	if i := strings.LastIndexByte(s, '\r'); i >= 0 {
		s = s[i+1:]
	}
	if !strings.ContainsFunc(s, func(r rune) bool { return r == '\t' || needsEscape(r) }) {
		return s
	}
	var b strings.Builder
	col := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\x1b':
			size = escapeLen(s[i:])
		case r == '\t':
			pad := 8 - col%8
			b.WriteString(strings.Repeat(" ", pad))
			col += pad
		case r < ' ' || r == 0x7f:
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
			col++
		case r >= 0x80 && r <= 0x9f:
			v := visible(string(r))
			b.WriteString(v)
			col += len(v)
		default:
			b.WriteRune(r)
			col++
		}
		i += size
	}
	return b.String()
}

// escapeLen returns the length of the escape sequence at the start of s.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[': // CSI: parameters, then a final byte in @..~
		for i := 2; i < len(s); i++ {
			if s[i] >= 0x40 && s[i] <= 0x7e {
				return i + 1
			}
		}
		return len(s)
	case ']': // OSC: ends with BEL or ESC \
		for i := 2; i < len(s); i++ {
			if s[i] == '\a' {
				return i + 1
			}
			if s[i] == '\x1b' && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return len(s)
	}
	return 2
}
