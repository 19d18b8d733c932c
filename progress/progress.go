package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Step describes one step of a build, as shown at its start.
type Step struct {
	ID    int    // unique within a build; the key of Output and Done
	Stage string // the stage's name, e.g. "builder"; may be empty
	Index int    // 1-based position of the step in its stage
	Total int    // number of steps in the stage; 0 for steps outside stages
	Text  string // the instruction, e.g. "RUN make"
}

// String returns the step's label, "[builder 2/5] RUN make". Only the
// first line of a multi-line Text is kept.
func (s Step) String() string {
	text := s.Text
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		text = strings.TrimRight(text[:i], " \r") + " ..."
	}
	switch {
	case s.Total > 0 && s.Stage != "":
		return fmt.Sprintf("[%s %d/%d] %s", s.Stage, s.Index, s.Total, text)
	case s.Total > 0:
		return fmt.Sprintf("[%d/%d] %s", s.Index, s.Total, text)
	case s.Stage != "":
		return fmt.Sprintf("[%s] %s", s.Stage, text)
	}
	return text
}

// Reporter receives the events of a build and renders them. All methods
// are safe for concurrent use.
type Reporter interface {
	// Start reports that a step begins.
	Start(s Step)
	// Output returns the writer for the step's stdout and stderr. Writes
	// may come in chunks of any size and never fail.
	Output(id int) io.Writer
	// Done reports that a step ended: cached for a cache hit, err for a
	// failure. A context.Canceled error marks the step as canceled rather
	// than failed.
	Done(id int, cached bool, err error)
	// Log reports a free-form message, such as a warning.
	Log(format string, args ...any)
	// Close ends the build's report: it stops the live view, prints the
	// output of failed steps and, in tty mode, a summary. It returns the
	// first error writing the report. Events after Close are ignored.
	Close() error
}

// Outcome is how a build ended, for the summary that ends its report.
type Outcome struct {
	// Image names the built image (its tags, comma-separated); may be "".
	Image string
	// Digest is the built image's digest; "" when there is none.
	Digest string
	// Err is the build's error; one that is or wraps context.Canceled
	// marks the build as canceled rather than failed.
	Err error
}

// Finisher is implemented by every Reporter of this package.
type Finisher interface {
	// Finish is Close with the build's outcome: the summary names the
	// image and its digest, or says that the build failed or was
	// canceled.
	Finish(o Outcome) error
}

// Finish calls r.Finish(o) if r is a Finisher, and r.Close() otherwise.
func Finish(r Reporter, o Outcome) error {
	if f, ok := r.(Finisher); ok {
		return f.Finish(o)
	}
	return r.Close()
}

// Tailer is implemented by every Reporter of this package.
type Tailer interface {
	// TailOf returns the last lines of output of a step that is running
	// or has failed, joined by newlines; "" for other steps.
	TailOf(id int) string
}

// Tail returns TailOf(id) if r is a Tailer, and "" otherwise.
func Tail(r Reporter, id int) string {
	if t, ok := r.(Tailer); ok {
		return t.TailOf(id)
	}
	return ""
}

// Modes lists the modes New accepts.
var Modes = []string{"auto", "plain", "tty", "quiet", "json"}

// Options tune a Reporter; the zero value gives the defaults.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Width and Height fix the terminal size of the tty mode; zero asks
	// the terminal, falling back to 80 columns and 24 rows.
	Width, Height int
	// Interval is the tty mode's redraw period: zero means 100ms, a
	// negative value redraws on events only.
	Interval time.Duration
	// NoColor turns off the tty mode's colors.
	NoColor bool
	// LogLimit is how many bytes of each step's output the plain and json
	// modes print: past it, the rest is left out (the failed-step tail
	// still shows the last lines) and one line says how many bytes were
	// dropped. Zero means DefaultLogLimit, a negative value no limit.
	LogLimit int64
}

// New returns a Reporter writing to w in the given mode: auto, plain, tty,
// quiet or json. auto picks tty when w is a terminal and plain otherwise.
// Colors are off when the NO_COLOR environment variable is set.
func New(mode string, w io.Writer) (Reporter, error) {
	return NewWithOptions(mode, w, Options{NoColor: os.Getenv("NO_COLOR") != ""})
}

// NewWithOptions is New with options.
func NewWithOptions(mode string, w io.Writer, opts Options) (Reporter, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if mode == "auto" || mode == "" {
		mode = "plain"
		if _, ok := fd(w); ok && os.Getenv("TERM") != "dumb" {
			mode = "tty"
		}
	}
	c := newCore(w, opts)
	switch mode {
	case "plain":
		_, term := fd(w)
		c.sink = &plain{c: c, term: term}
	case "json":
		c.sink = &jsonSink{c: c}
	case "quiet":
		c.sink = quiet{}
	case "tty":
		c.sink = newTTY(c, w, opts)
	default:
		return nil, fmt.Errorf("unknown progress mode %q (want one of %s)", mode, strings.Join(Modes, ", "))
	}
	return c, nil
}

// Discard returns a Reporter that prints nothing. It still keeps the tails
// of running and failed steps for TailOf.
func Discard() Reporter {
	c := newCore(io.Discard, Options{Now: time.Now})
	c.sink = quiet{}
	return c
}

// fd returns w's file descriptor if w is a terminal.
func fd(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return 0, false
	}
	n := int(f.Fd())
	return n, isTerminal(n)
}
