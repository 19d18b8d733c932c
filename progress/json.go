package progress

import (
	"bytes"
	"encoding/json"
	"io"
	"time"
)

// event is one line of the json mode. Fields that do not apply to the
// event's type are left out.
type event struct {
	Time       string   `json:"time"` // RFC 3339 with nanoseconds
	Type       string   `json:"type"` // start, output, clipped, done, log, summary or error
	ID         *int     `json:"id,omitempty"`
	Stage      string   `json:"stage,omitempty"`
	Index      int      `json:"index,omitempty"`
	Total      int      `json:"total,omitempty"`
	Text       string   `json:"text,omitempty"` // the step's text, or the log message
	Cached     *bool    `json:"cached,omitempty"`
	Canceled   bool     `json:"canceled,omitempty"`
	Error      string   `json:"error,omitempty"`
	DurationMS *int64   `json:"duration_ms,omitempty"`
	Data       *string  `json:"data,omitempty"` // one line of output, without its newline
	Dropped    int64    `json:"dropped_bytes,omitempty"`
	Tail       []string `json:"tail,omitempty"` // a failed step's last lines, when its output was clipped
	Image      string   `json:"image,omitempty"`
	Digest     string   `json:"digest,omitempty"`
}

// jsonSink prints one JSON object per event and per output line.
type jsonSink struct {
	c   *core
	buf bytes.Buffer
}

func (j *jsonSink) emit(e *event) {
	e.Time = j.c.now().Format(time.RFC3339Nano)
	j.buf.Reset()
	enc := json.NewEncoder(&j.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return // cannot happen: every field encodes
	}
	j.c.out.Write(j.buf.Bytes())
}

func stepEvent(typ string, st *step) *event {
	id := st.ID
	return &event{Type: typ, ID: &id, Stage: st.Stage, Index: st.Index, Total: st.Total, Text: st.Text}
}

func (j *jsonSink) start(st *step) { j.emit(stepEvent("start", st)) }

func (j *jsonSink) line(st *step, line []byte) {
	id, data := st.ID, string(line)
	j.emit(&event{Type: "output", ID: &id, Data: &data})
}

func (j *jsonSink) clipped(st *step) {
	id := st.ID
	j.emit(&event{Type: "clipped", ID: &id, Dropped: st.dropped, Text: clippedText(st, j.c.limit)})
}

func (j *jsonSink) done(st *step) {
	e := stepEvent("done", st)
	hit, ms := st.status == cached, st.duration().Milliseconds()
	e.Cached, e.DurationMS = &hit, &ms
	e.Canceled = st.status == canceled
	if st.err != nil {
		e.Error = st.err.Error()
	}
	if st.status == failed && st.dropped > 0 && st.tail != nil {
		// The output events stopped at the log limit.
		e.Tail = st.tail.lines
	}
	j.emit(e)
}

func (j *jsonSink) log(msg string) { j.emit(&event{Type: "log", Text: msg}) }

// close ends a report made by Finish with a summary event.
func (j *jsonSink) close() {
	if !j.c.known {
		return
	}
	o := j.c.outcome
	ms := j.c.now().Sub(j.c.t0).Milliseconds()
	e := &event{Type: "summary", Image: o.Image, Digest: o.Digest, DurationMS: &ms}
	switch j.c.result() {
	case buildCanceled:
		e.Canceled = true
	case buildFailed:
		e.Error = "build failed"
	}
	if o.Err != nil {
		e.Error = o.Err.Error()
	}
	j.emit(e)
}

// WriteError writes msg as an "error" event of the json mode, for a
// program whose --progress json stream must end in JSON even when it
// fails before or after its Reporter.
func WriteError(w io.Writer, msg string) error {
	b, err := json.Marshal(&event{Time: time.Now().Format(time.RFC3339Nano), Type: "error", Error: msg})
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
