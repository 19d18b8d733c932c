package progress

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/lading-build/lading/internal/testutil"
)

func TestVisible(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text, tab\tkept, é", "plain text, tab\tkept, é"},
		{"\x1b]52;c;ZXZpbA==\a", "^[]52;c;ZXZpbA==^G"},
		{"\x1b]0;title\x1b\\", "^[]0;title^[\\"},
		{"\x1b[6n", "^[[6n"},
		{"a\rb\x7f\x00", "a^Mb^?^@"},
		{"\u009b31m \u009d0;t\u009c", "M-^[31m M-^]0;tM-^\\"},
		{"bad \xff\x9b byte", "bad \uFFFD\uFFFD byte"},
	}
	for _, tt := range tests {
		if got := visible(tt.in); got != tt.want {
			t.Errorf("visible(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPlainOnTerminal: plain output to a terminal carries no control
// character of a step's output, name, error or log; to a file it is kept.
func TestPlainOnTerminal(t *testing.T) {
	master, slave := testutil.OpenPty(t)
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(master) // ends with EIO once the slave is closed
		got <- string(b)
	}()
	hostile := "\x1b]52;c;ZXZpbA==\a\x1b]0;pwned\a\x1b[6n\u009b2J\r"
	r, err := New("plain", slave)
	if err != nil {
		t.Fatal(err)
	}
	r.Start(Step{ID: 1, Index: 1, Total: 1, Text: "RUN echo " + hostile})
	io.WriteString(r.Output(1), "out "+hostile+"\nlast "+hostile+"\n")
	r.Done(1, false, errors.New("failed "+hostile))
	r.Log("log %s\nsecond %s", hostile, hostile)
	r.Close()
	slave.Close()
	out := <-got
	if i := strings.IndexFunc(out, func(r rune) bool { return r != '\n' && needsEscape(r) }); i >= 0 {
		t.Errorf("control character %q reached the terminal in:\n%q", out[i:i+1], out)
	}
	for _, want := range []string{"#1 out ^[]52;c;ZXZpbA==^G^[]0;pwned^G^[[6nM-^[2J\n", "#1 ERROR: failed ^[]52", "second ^[]52"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	file := run(t, "plain", Options{}, func(r Reporter, _ *clock) {
		r.Start(Step{ID: 1, Text: "RUN x"})
		io.WriteString(r.Output(1), "\x1b[31mred\x1b[0m\n")
		r.Done(1, false, nil)
	})
	if !strings.Contains(file, "#1 \x1b[31mred\x1b[0m\n") {
		t.Errorf("plain output to a file changed: %q", file)
	}
}

// TestTTYNoC1: the tty mode drops escape sequences and shows C1 controls,
// which some terminals obey as 8-bit CSI and OSC.
func TestTTYNoC1(t *testing.T) {
	got := run(t, "tty", Options{Width: 60, Height: 20, NoColor: true}, func(r Reporter, _ *clock) {
		r.Start(Step{ID: 1, Index: 1, Total: 1, Text: "RUN \u009d0;title\a"})
		io.WriteString(r.Output(1), "x \u009b2J \x1b]52;c;ZXZpbA==\a\n")
		r.Done(1, false, errors.New("boom"))
		r.Log("log \u009b6n")
	})
	if strings.ContainsAny(got, "\u009b\u009d\a") || strings.Contains(got, "]52") {
		t.Errorf("control sequences reached the terminal: %q", got)
	}
	if !strings.Contains(got, "x M-^[2J ") || !strings.Contains(got, "log M-^[6n") {
		t.Errorf("C1 controls not shown: %q", got)
	}
}
