package builder_test

import (
	"archive/tar"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/snapshot"
)

// handshake is a RUN line that meets its partner through a fifo in a
// cache mount both share: the writer blocks until the reader opens it,
// so each of the two steps finishes only if the other ran at the same
// time. The timeout turns a schedule that never runs them together into
// a failure instead of a hang.
func handshake(id string, write bool) string {
	io := "cat /h/f >/got"
	if write {
		io = "echo go >/h/f"
	}
	return "RUN --mount=type=cache,id=" + id + ",target=/h,sharing=shared mkfifo /h/f 2>/dev/null; timeout 60 sh -c '" + io + "'"
}

// TestDependentStageOverlaps checks from the build's own events that a
// stage which copies from another starts its steps before that stage has
// finished: its RUN runs while the other stage's RUN is still running,
// and only its COPY --from waits for the other stage.
func TestDependentStageOverlaps(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	id := randName()
	recipe := "FROM busybox:test AS assets\n" + handshake(id, true) + "\nRUN echo a >/a\n\n" +
		"FROM busybox:test AS app\n" + handshake(id, false) + "\nCOPY --from=assets /a /a\n"
	e.opts = func(o *builder.Options) { o.Jobs, o.NoCache = 2, true }
	if _, err := e.build(ctxDir, recipe, nil); err != nil {
		t.Fatalf("build: %v", err)
	}
	rec := e.last
	_, assetsEnd := rec.interval(t, "assets", "RUN echo a")
	appRun, _ := rec.interval(t, "app", "RUN --mount")
	assetsRun, assetsRunEnd := rec.interval(t, "assets", "RUN --mount")
	if !appRun.Before(assetsRunEnd) || !assetsRun.Before(assetsEnd) {
		t.Errorf("app's RUN started at %v, after assets' RUN ended at %v", appRun, assetsRunEnd)
	}
	copyStart, _ := rec.interval(t, "app", "COPY --from=assets")
	if copyStart.Before(assetsEnd) {
		t.Errorf("COPY --from=assets started at %v, before assets ended at %v", copyStart, assetsEnd)
	}
}

// TestJobsBoundRunSteps checks from the build's events that two
// independent stages run their RUN steps at the same time with two jobs
// (they could not finish otherwise) and one after the other with one.
func TestJobsBoundRunSteps(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	id := randName()
	final := "\nFROM scratch\nCOPY --from=a /bin/busybox /a\nCOPY --from=b /bin/busybox /b\n"
	together := "FROM busybox:test AS a\n" + handshake(id, true) + "\n\nFROM busybox:test AS b\n" + handshake(id, false) +
		"\n\nFROM busybox:test AS unused\nRUN exit 1\n" + final
	e.opts = func(o *builder.Options) { o.Jobs, o.NoCache = 2, true }
	if _, err := e.build(ctxDir, together, nil); err != nil {
		t.Fatalf("jobs=2: %v", err)
	}
	e.last.mu.Lock()
	for _, s := range e.last.steps {
		if s.Stage == "unused" {
			t.Errorf("a stage the target does not need ran: %v", s)
		}
	}
	e.last.mu.Unlock()

	var runs strings.Builder
	for _, st := range []string{"a", "b", "c"} {
		runs.WriteString("FROM busybox:test AS " + st + "\nRUN echo " + st + " >/" + st + "\nRUN cat /" + st + "\n\n")
	}
	runs.WriteString("FROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCOPY --from=c /c /c\n")
	e.opts = func(o *builder.Options) { o.Jobs, o.NoCache = 1, true }
	if _, err := e.build(ctxDir, runs.String(), nil); err != nil {
		t.Fatalf("jobs=1: %v", err)
	}
	type span struct {
		name       string
		start, end time.Time
	}
	var spans []span
	for _, st := range []string{"a", "b", "c"} {
		for _, text := range []string{"RUN echo", "RUN cat"} {
			s, end := e.last.interval(t, st, text)
			spans = append(spans, span{st + " " + text, s, end})
		}
	}
	for i, x := range spans {
		for _, y := range spans[i+1:] {
			if x.start.Before(y.end) && y.start.Before(x.end) {
				t.Errorf("jobs=1: %s [%v, %v] and %s [%v, %v] overlapped", x.name, x.start, x.end, y.name, y.start, y.end)
			}
		}
	}
}

// TestUnneededLayersNotWritten checks that the layers of a stage that
// only feeds a COPY --from are never compressed into the store, with the
// cache off or on: every blob the build adds belongs to the image it
// returns. With the cache on, a later build whose output is that stage
// hits its records and gets its layer, made then from the snapshot.
func TestUnneededLayersNotWritten(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	tools := "FROM busybox:test AS tools\nRUN head -c 200000 /dev/urandom >/big && echo hi >/small\n"
	recipe := tools + "\nFROM busybox:test\nCOPY --from=tools /small /small\n"
	for _, noCache := range []bool{true, false} {
		before := e.blobs()
		e.opts = func(o *builder.Options) { o.NoCache = noCache }
		res, err := e.build(ctxDir, recipe, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := imageBlobs(t, res.Image)
		for b := range before {
			want[b] = true
		}
		for b := range e.blobs() {
			if !want[b] {
				t.Errorf("no-cache=%v: blob %s written that the image does not use", noCache, b)
			}
		}
	}
	e.opts = nil
	res, err := e.build(ctxDir, tools, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hits, misses := e.last.cachedSteps(); len(hits) != 1 || len(misses) != 0 {
		t.Fatalf("building the tools stage alone: hits %v, misses %v; want its RUN cached", hits, misses)
	}
	layers, err := res.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	names := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
	if !names["big"] || !names["small"] {
		t.Errorf("the cached RUN's layer holds %v, want big and small", names)
	}
}

// blobs lists the store's blobs.
func (e *env) blobs() map[string]bool {
	e.t.Helper()
	list, err := e.store.Blobs()
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, b := range list {
		out[b] = true
	}
	return out
}

// imageBlobs lists the blobs of an image: manifest, config and layers.
func imageBlobs(t *testing.T, img v1.Image) map[string]bool {
	t.Helper()
	dgst, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{dgst.String(): true, cfg.String(): true}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out[d.String()] = true
	}
	return out
}

// TestNoCacheLeavesNoSnapshots checks that a build without cache removes
// every snapshot it made, also where one stage is built FROM another's
// (whose snapshots it stands on).
func TestNoCacheLeavesNoSnapshots(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	list := func() map[string]bool {
		out := map[string]bool{}
		err := e.snaps.Walk(context.Background(), func(i snapshot.Info) error {
			out[i.Name] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := list()
	recipe := "FROM busybox:test AS a\nRUN echo 1 >/1\nRUN echo 2 >/2\n\n" +
		"FROM a AS b\nRUN echo 3 >/3\n\nFROM busybox:test AS c\nRUN echo 4 >/4\n\n" +
		"FROM busybox:test\nCOPY --from=b /3 /3\nCOPY --from=c /4 /4\n"
	e.opts = func(o *builder.Options) { o.NoCache = true }
	if _, err := e.build(ctxDir, recipe, nil); err != nil {
		t.Fatal(err)
	}
	for name := range list() {
		// layer-* are the base image's unpacked layers, kept for reuse.
		if !before[name] && !strings.HasPrefix(name, "layer-") {
			t.Errorf("snapshot %s left after the build", name)
		}
	}
}
