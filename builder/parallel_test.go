package builder_test

import (
	"context"
	"fmt"
	"sort"
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
	mu     sync.Mutex
	steps  map[int]progress.Step
	start  map[int]time.Time
	end    map[int]time.Time
	cached map[int]bool
	logs   []string
}

// newRecorder records events and passes them on to next.
func newRecorder(next progress.Reporter) *recorder {
	return &recorder{Reporter: next, steps: map[int]progress.Step{}, start: map[int]time.Time{}, end: map[int]time.Time{}, cached: map[int]bool{}}
}

func (r *recorder) Start(s progress.Step) {
	r.mu.Lock()
	r.steps[s.ID], r.start[s.ID] = s, time.Now()
	r.mu.Unlock()
	r.Reporter.Start(s)
}

func (r *recorder) Done(id int, cached bool, err error) {
	r.mu.Lock()
	r.end[id], r.cached[id] = time.Now(), cached
	r.mu.Unlock()
	r.Reporter.Done(id, cached, err)
}

func (r *recorder) Log(format string, args ...any) {
	r.mu.Lock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	r.Reporter.Log(format, args...)
}

// TailOf passes the failed step's output tail through.
func (r *recorder) TailOf(id int) string { return progress.Tail(r.Reporter, id) }

// cachedSteps returns, in order, the texts of the steps that were and
// were not cache hits (FROM lines left out).
func (r *recorder) cachedSteps() (hits, misses []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]int, 0, len(r.steps))
	for id := range r.steps {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		s := r.steps[id]
		if strings.HasPrefix(s.Text, "FROM ") {
			continue
		}
		if r.cached[id] {
			hits = append(hits, s.Text)
		} else {
			misses = append(misses, s.Text)
		}
	}
	return hits, misses
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

// rendezvousStep is a RUN of stage X that meets stage Y through a shared
// cache mount: it marks its start, waits (at most WAIT tenths of a
// second) for Y's start, and writes "together" to /X when Y had started
// and not yet ended, "alone" otherwise; then it marks its end. Markers are
// named by the build arg T, one value per build.
const rendezvousStep = `ARG T
ARG WAIT
RUN --mount=type=cache,id=rendezvous,target=/r touch /r/$T-X-start && i=0 && ` +
	`while [ ! -f /r/$T-Y-start ] && [ $i -lt $WAIT ]; do sleep 0.1; i=$((i+1)); done && ` +
	`if [ -f /r/$T-Y-start ] && [ ! -f /r/$T-Y-end ]; then echo together; else echo alone; fi > /X && touch /r/$T-X-end
`

// TestParallelStages checks that two independent stages run at the same
// time with two jobs (they meet), one after the other with one job (they
// never do, however long the first waits), and that each COPY --from of
// the final stage waits for the stage it reads.
func TestParallelStages(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	stage := func(x, y string) string {
		return "FROM busybox:test AS " + x + "\n" + strings.NewReplacer("X", x, "Y", y).Replace(rendezvousStep)
	}
	recipe := stage("a", "b") + stage("b", "a") + `
FROM busybox:test AS unused
RUN exit 1

FROM scratch
COPY --from=a /a /a
COPY --from=b /b /b
`
	for _, tc := range []struct {
		jobs int
		wait string // tenths of a second a stage waits for the other
	}{
		{2, "600"}, // they meet as soon as both run, however busy the machine
		{1, "20"},  // the first gives up; the second starts after it ended
	} {
		args := map[string]string{"T": fmt.Sprint("jobs", tc.jobs), "WAIT": tc.wait}
		plan, err := parser.Parse(strings.NewReader(recipe), parser.Options{File: "Recipe", BuildArgs: args})
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder(progress.Discard())
		res, err := builder.Run(context.Background(), plan, builder.Options{
			ContextDir: ctxDir, Store: e.store, Snapshots: e.snaps, Progress: rec, Cache: e.cache,
			Settings: builder.Settings{Jobs: tc.jobs, NoCache: true},
		})
		if err != nil {
			t.Fatalf("jobs=%d: %v", tc.jobs, err)
		}
		root := umociUnpack(t, e.exportOCI(res.Image))
		a, _ := stat(t, root, "a")
		b, _ := stat(t, root, "b")
		overlap := a.content == "together\n" || b.content == "together\n"
		if tc.jobs == 2 && !overlap {
			t.Errorf("jobs=2: stages a (%q) and b (%q) did not run at the same time", a.content, b.content)
		}
		if tc.jobs == 1 && overlap {
			t.Errorf("jobs=1: stages a (%q) and b (%q) ran at the same time", a.content, b.content)
		}
		_, aEnd := rec.interval(t, "a", "RUN")
		_, bEnd := rec.interval(t, "b", "RUN")
		// Each COPY --from waits for the stage it reads, and only for it.
		copyA, _ := rec.interval(t, "stage-3", "COPY --from=a")
		copyB, _ := rec.interval(t, "stage-3", "COPY --from=b")
		if copyA.Before(aEnd) || copyB.Before(bEnd) {
			t.Errorf("a COPY --from started before the stage it reads ended")
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
