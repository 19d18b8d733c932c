package builder_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/progress"
)

// recorder is a progress.Reporter that remembers when each step started
// and ended.
type recorder struct {
	progress.Reporter
	mu    sync.Mutex
	steps map[int]progress.Step
	start map[int]time.Time
	end   map[int]time.Time
}

func newRecorder() *recorder {
	return &recorder{Reporter: progress.Discard(), steps: map[int]progress.Step{}, start: map[int]time.Time{}, end: map[int]time.Time{}}
}

func (r *recorder) Start(s progress.Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps[s.ID], r.start[s.ID] = s, time.Now()
}

func (r *recorder) Done(id int, cached bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.end[id] = time.Now()
}

// interval returns when the step of stage whose text starts with prefix ran.
func (r *recorder) interval(t *testing.T, stage, prefix string) (time.Time, time.Time) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, s := range r.steps {
		if s.Stage == stage && strings.HasPrefix(s.Text, prefix) {
			return r.start[id], r.end[id]
		}
	}
	t.Fatalf("no step %q in stage %s", prefix, stage)
	return time.Time{}, time.Time{}
}

// TestParallelStages checks from the build's own events that two
// independent stages run at the same time with two jobs, one after the
// other with one job, and that the final stage waits for both.
func TestParallelStages(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	recipe := `FROM busybox:test AS a
RUN sleep 1 && echo a > /a

FROM busybox:test AS b
RUN sleep 1 && echo b > /b

FROM busybox:test AS unused
RUN exit 1

FROM scratch
COPY --from=a /a /a
COPY --from=b /b /b
`
	for _, jobs := range []int{2, 1} {
		plan, err := parser.Parse(strings.NewReader(recipe), parser.Options{File: "Recipe"})
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		_, err = builder.Build(context.Background(), plan, builder.Options{
			ContextDir: ctxDir, Store: e.store, Snapshots: e.snaps, Progress: rec, Jobs: jobs,
		})
		if err != nil {
			t.Fatalf("jobs=%d: %v", jobs, err)
		}
		aStart, aEnd := rec.interval(t, "a", "RUN")
		bStart, bEnd := rec.interval(t, "b", "RUN")
		overlap := aStart.Before(bEnd) && bStart.Before(aEnd)
		if jobs == 2 && !overlap {
			t.Errorf("jobs=2: stages a [%v, %v] and b [%v, %v] did not overlap", aStart, aEnd, bStart, bEnd)
		}
		if jobs == 1 && overlap {
			t.Errorf("jobs=1: stages a and b overlapped")
		}
		copyStart, _ := rec.interval(t, "stage-3", "COPY --from=a")
		if copyStart.Before(aEnd) || copyStart.Before(bEnd) {
			t.Errorf("final stage started before its dependencies ended")
		}
		rec.mu.Lock()
		for _, s := range rec.steps {
			if s.Stage == "unused" {
				t.Errorf("stage not needed for the target ran: %v", s)
			}
		}
		rec.mu.Unlock()
	}
}

// TestFailureCancelsStages checks that a failing stage stops a parallel
// one and the build reports the failure, not the cancellation.
func TestFailureCancelsStages(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	recipe := "FROM busybox:test AS slow\nRUN sleep 30\n\nFROM busybox:test AS bad\nRUN exit 7\n\nFROM scratch\nCOPY --from=slow /bin/busybox /x\nCOPY --from=bad /bin/busybox /y\n"
	begin := time.Now()
	_, err := e.build(ctxDir, recipe, nil)
	if err == nil || !strings.Contains(err.Error(), "Recipe:5: RUN exit 7: exit status 7") {
		t.Fatalf("error %v, want the failing step's", err)
	}
	if d := time.Since(begin); d > 15*time.Second {
		t.Errorf("the parallel stage was not cancelled: build took %v", d)
	}
}
