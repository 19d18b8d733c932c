package progress

import (
	"bufio"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestJSON(t *testing.T) {
	got := run(t, "json", Options{}, func(r Reporter, clk *clock) {
		r.Start(Step{ID: 1, Stage: "builder", Index: 2, Total: 5, Text: "RUN make"})
		write(r, 1, "a <b>\n", "\n", "tail")
		clk.add(1500 * time.Millisecond)
		r.Done(1, false, errors.New("exit status 2"))
		r.Start(Step{ID: 0, Text: "COPY x y"})
		r.Done(0, true, nil)
		r.Log("warning: %d", 7)
	})
	type ev struct {
		Time       string  `json:"time"`
		Type       string  `json:"type"`
		ID         *int    `json:"id"`
		Stage      string  `json:"stage"`
		Index      int     `json:"index"`
		Total      int     `json:"total"`
		Text       string  `json:"text"`
		Cached     *bool   `json:"cached"`
		Error      string  `json:"error"`
		DurationMS *int64  `json:"duration_ms"`
		Data       *string `json:"data"`
	}
	var evs []ev
	sc := bufio.NewScanner(strings.NewReader(got))
	for sc.Scan() {
		var e ev
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
			t.Errorf("time %q: %v", e.Time, err)
		}
		evs = append(evs, e)
	}
	// summary is one event as a short string.
	summary := func(e ev) string {
		s := e.Type
		if e.ID != nil {
			s += " #" + strconv.Itoa(*e.ID)
		}
		if e.Stage != "" {
			s += " " + e.Stage + " " + strconv.Itoa(e.Index) + "/" + strconv.Itoa(e.Total)
		}
		if e.Text != "" {
			s += " text=" + e.Text
		}
		if e.Data != nil {
			s += " data=" + *e.Data
		}
		if e.Cached != nil && *e.Cached {
			s += " cached"
		}
		if e.DurationMS != nil {
			s += " ms=" + strconv.FormatInt(*e.DurationMS, 10)
		}
		if e.Error != "" {
			s += " error=" + e.Error
		}
		return s
	}
	want := []string{
		"start #1 builder 2/5 text=RUN make",
		"output #1 data=a <b>",
		"output #1 data=",
		"output #1 data=tail",
		"done #1 builder 2/5 text=RUN make ms=1500 error=exit status 2",
		"start #0 text=COPY x y",
		"done #0 text=COPY x y cached ms=0",
		"log text=warning: 7",
	}
	if len(evs) != len(want) {
		t.Fatalf("got %d events, want %d:\n%s", len(evs), len(want), got)
	}
	for i, e := range evs {
		if s := summary(e); s != want[i] {
			t.Errorf("event %d: got %q, want %q", i, s, want[i])
		}
	}
	if !strings.Contains(got, `"a <b>"`) {
		t.Errorf("HTML escaped: %s", got)
	}
	if strings.Contains(got, "------") {
		t.Errorf("json printed a failure block:\n%s", got)
	}
}
