package progress

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// build is a small build with each kind of step end.
func build(r Reporter, clk *clock) {
	r.Start(Step{ID: 1, Stage: "builder", Index: 1, Total: 3, Text: "FROM alpine"})
	r.Done(1, true, nil)
	r.Start(Step{ID: 2, Stage: "builder", Index: 2, Total: 3, Text: "RUN make"})
	r.Start(Step{ID: 3, Stage: "web", Index: 1, Total: 1, Text: "RUN npm ci --no-audit --no-fund --loglevel=verbose"})
	write(r, 2, "cc -c a.c\ncc -c b.c\n")
	write(r, 3, "npm \x1b[31mERR!\x1b[0m\tcode 1\r\nnpm ERR! see log\n")
	clk.add(1200 * time.Millisecond)
	r.Done(2, false, nil)
	clk.add(300 * time.Millisecond)
	r.Done(3, false, errors.New("exit status 1"))
	r.Start(Step{ID: 4, Stage: "builder", Index: 3, Total: 3, Text: "COPY --from=web /app /app"})
	r.Log("warning: %s", "something")
	clk.add(100 * time.Millisecond)
}

func TestTTYFinal(t *testing.T) {
	got := run(t, "tty", Options{Width: 60, Height: 20, NoColor: true}, build)
	i := strings.LastIndex(got, "[+] Building")
	if i < 0 {
		t.Fatalf("no frame in %q", got)
	}
	want := `[+] Building 1.6s (4/4)
 => CACHED [builder 1/3] FROM alpine                   0.0s
 => [builder 2/3] RUN make                             1.2s
 => ERROR [web 1/1] RUN npm ci --no-audit --no-fund -… 1.5s
 => CANCELED [builder 3/3] COPY --from=web /app /app   0.1s
------ output of failed step #3 [web 1/1] RUN npm ci --no-audit --no-fund --loglevel=verbose (last 2 lines) ------
npm ERR!        code 1
npm ERR! see log
------
Build failed after 1.6s: 4 steps, 1 cached, 1 failed
`
	if s := screen(got[i:]); s != want {
		t.Errorf("final frame:\n%s\nwant:\n%s\nraw: %q", s, want, got[i:])
	}
	if !strings.Contains(screen(got), "warning: something\n") {
		t.Errorf("log line missing")
	}
}

func TestTTYFinished(t *testing.T) {
	got := run(t, "tty", Options{Width: 50, Height: 10}, func(r Reporter, clk *clock) {
		for i := 1; i <= 12; i++ {
			r.Start(Step{ID: i, Index: i, Total: 12, Text: fmt.Sprintf("RUN step %d", i)})
			clk.add(time.Second)
			r.Done(i, i%2 == 0, nil)
		}
		clk.add(200 * time.Millisecond)
	})
	s := screen(got[strings.LastIndex(got, "[+] Building"):])
	for i := 1; i <= 12; i++ {
		want := fmt.Sprintf(" => [%d/12] RUN step %d", i, i)
		if i%2 == 0 {
			want = fmt.Sprintf(" => CACHED [%d/12] RUN step %d", i, i)
		}
		if !strings.Contains(s, want) {
			t.Errorf("final frame lacks %q", want)
		}
	}
	if !strings.HasPrefix(s, "[+] Building 12.2s (12/12) FINISHED\n") {
		t.Errorf("header: %q", strings.SplitN(s, "\n", 2)[0])
	}
	if !strings.HasSuffix(s, "\nBuilt in 12.2s: 12 steps, 6 cached\n") {
		t.Errorf("summary missing:\n%s", s)
	}
	if !strings.Contains(got, "\x1b[34m") {
		t.Errorf("no colors")
	}
}

// TestTTYFrameFits checks that live frames fit the terminal.
func TestTTYFrameFits(t *testing.T) {
	tests := []struct {
		name          string
		running, done int
		width, height int
		wantRunning   int // step lines of running steps shown
	}{
		{"roomy", 2, 3, 80, 40, 2},
		{"finished steps dropped", 3, 30, 80, 24, 3},
		{"output dropped", 6, 10, 80, 12, 6},
		{"too many running", 30, 0, 40, 10, 7},
		{"tiny", 3, 3, 30, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewWithOptions("tty", &strings.Builder{}, Options{Width: tt.width, Height: tt.height, Interval: -1, NoColor: true})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			id := 0
			for range tt.done {
				id++
				r.Start(Step{ID: id, Text: "RUN done"})
				r.Done(id, false, nil)
			}
			for range tt.running {
				id++
				r.Start(Step{ID: id, Text: "RUN running, with a long text that is cut " + strings.Repeat("x", 80)})
				for j := range 10 {
					write(r, id, fmt.Sprintf("line %d %s\n", j, strings.Repeat("é", 100)))
				}
				write(r, id, "partial")
			}
			c := r.(*core)
			c.mu.Lock()
			frame := c.sink.(*tty).frame(false, tt.width, tt.height)
			c.mu.Unlock()
			if limit := max(tt.height-2, 2); len(frame) > limit {
				t.Errorf("%d lines, want at most %d", len(frame), limit)
			}
			shown := 0
			for _, l := range frame {
				if n := utf8.RuneCountInString(l); n > tt.width-1 && tt.width > 2 {
					t.Errorf("line of %d runes: %q", n, l)
				}
				if strings.HasPrefix(l, " => RUN running") {
					shown++
				}
			}
			if shown != tt.wantRunning {
				t.Errorf("%d running steps shown, want %d:\n%s", shown, tt.wantRunning, strings.Join(frame, "\n"))
			}
			if tt.name == "roomy" && !strings.Contains(strings.Join(frame, "\n"), " => => # partial") {
				t.Errorf("partial line not shown:\n%s", strings.Join(frame, "\n"))
			}
		})
	}
}

func TestTTYRedraw(t *testing.T) {
	got := run(t, "tty", Options{Width: 40, Height: 10, NoColor: true}, func(r Reporter, clk *clock) {
		r.Start(Step{ID: 1, Text: "RUN a"})
		r.Start(Step{ID: 2, Text: "RUN b"})
		r.Done(1, false, nil)
	})
	// Frames of 2, 3 and 3 lines, then the final frame.
	for _, up := range []string{"\x1b[2A", "\x1b[3A"} {
		if !strings.Contains(got, up) {
			t.Errorf("no %q in %q", up, got)
		}
	}
	if strings.Count(got, "\x1b[?7l") != strings.Count(got, "\x1b[?7h") {
		t.Errorf("autowrap left off: %q", got)
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a\tb", "a       b"},
		{"\x1b[1;31mred\x1b[0m", "red"},
		{"\x1b]0;title\a text", " text"},
		{" 10%\r 50%\r100%", "100%"},
		{"crlf\r", "crlf"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{"bell\a", "bell"},
	}
	for _, tt := range tests {
		if got := clean(tt.in); got != tt.want {
			t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestTTYCloseStopsTicker checks that no goroutine outlives Close.
func TestTTYCloseStopsTicker(t *testing.T) {
	base := runtime.NumGoroutine()
	for range 10 {
		r, err := NewWithOptions("tty", &strings.Builder{}, Options{Interval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		r.Start(Step{ID: 1, Text: "RUN x"})
		time.Sleep(3 * time.Millisecond)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), base)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
