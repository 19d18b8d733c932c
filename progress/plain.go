package progress

import (
	"fmt"
	"strconv"
	"strings"
)

// plain prints one line per event, prefixed with the step's number:
//
//	#3 [builder 2/5] RUN make
//	#3 cc -o app main.c
//	#3 DONE 1.23s
//
// On a terminal, control characters in what it prints are made visible
// (see visible); elsewhere lines go out as written.
type plain struct {
	c    *core
	buf  []byte // reused for each output line
	term bool   // the output is a terminal
}

// fix makes s safe for the output.
func (p *plain) fix(s string) string {
	if p.term {
		return visible(s)
	}
	return s
}

func (p *plain) start(st *step) {
	fmt.Fprintf(p.c.out, "#%d %s\n", st.ID, p.fix(st.String()))
}

func (p *plain) line(st *step, line []byte) {
	// One Write per line: a line is never torn, even by a writer
	// shared with someone else.
	b := append(p.buf[:0], '#')
	b = strconv.AppendInt(b, int64(st.ID), 10)
	b = append(b, ' ')
	if p.term {
		b = append(b, visible(strings.TrimSuffix(string(line), "\r"))...)
	} else {
		b = append(b, line...)
	}
	b = append(b, '\n')
	p.c.out.Write(b)
	if cap(b) <= 2*maxLine {
		p.buf = b
	}
}

func (p *plain) clipped(st *step) {
	fmt.Fprintf(p.c.out, "#%d %s\n", st.ID, clippedText(st, p.c.limit))
}

func (p *plain) done(st *step) {
	switch st.status {
	case cached:
		fmt.Fprintf(p.c.out, "#%d CACHED\n", st.ID)
	case failed:
		fmt.Fprintf(p.c.out, "#%d ERROR: %s\n", st.ID, p.fix(st.err.Error()))
	case canceled:
		fmt.Fprintf(p.c.out, "#%d CANCELED\n", st.ID)
	default:
		fmt.Fprintf(p.c.out, "#%d DONE %.2fs\n", st.ID, st.duration().Seconds())
	}
}

func (p *plain) log(msg string) {
	for _, l := range strings.Split(msg, "\n") {
		fmt.Fprintf(p.c.out, "%s\n", p.fix(l))
	}
}

func (p *plain) close() {
	p.c.writeFailures(p.c.out, func(s string) string { return p.fix(strings.TrimSuffix(s, "\r")) })
	p.c.writeSummary(p.c.out)
}

// clippedText is the line that replaces the output of st past limit.
func clippedText(st *step, limit int64) string {
	return fmt.Sprintf("[output clipped: %d bytes dropped past the log limit of %s per step]", st.dropped, size(limit))
}

// size formats a byte count in the largest binary unit that divides it.
func size(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
