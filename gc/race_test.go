package gc_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/gc"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/internal/testutil"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/progress"
	"github.com/lading-build/lading/runtime"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

func TestMain(m *testing.M) {
	runtime.Init()
	os.Exit(m.Run())
}

// pausing is a progress reporter that stops the build when the step
// whose text contains at starts: it signals reached and waits for go.
type pausing struct {
	progress.Reporter
	at      string
	reached chan<- string
	resume  <-chan struct{}
}

func (p *pausing) Start(s progress.Step) {
	if strings.Contains(s.Text, p.at) {
		p.reached <- s.Text
		<-p.resume
	}
}

// builds opens the snapshotter and cache of one gc.Part of st.
func openPart(t *testing.T, st *store.Store, part gc.Part) (snapshot.Snapshotter, *cache.Cache) {
	t.Helper()
	var sn snapshot.Snapshotter
	var err error
	if part.Name == "overlay" {
		sn, err = snapshot.NewOverlay(st.Path(part.Snapshots))
	} else {
		sn, err = snapshot.NewNative(st.Path(part.Snapshots))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	c, err := cache.Open(st.Path(part.Cache))
	if err != nil {
		t.Fatal(err)
	}
	return sn, c
}

func build(ctx context.Context, st *store.Store, sn snapshot.Snapshotter, c *cache.Cache, dir string, rep progress.Reporter) (*builder.Result, error) {
	plan, err := parser.Parse(strings.NewReader("FROM base:1\nCOPY a /a\nCOPY b /b\n"), parser.Options{File: "Recipe"})
	if err != nil {
		return nil, err
	}
	return builder.Run(ctx, plan, builder.Options{ContextDir: dir, Store: st, Snapshots: sn, Cache: c, Progress: rep, Settings: builder.Settings{Pull: builder.PullNever}})
}

// checkImage checks that every blob of the stored image d is there and
// matches its digest.
func checkImage(t *testing.T, st *store.Store, what, d string) {
	t.Helper()
	img, err := image.Load(st, d)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	m, _ := img.Manifest()
	for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if err := st.VerifyBlob(b.Digest.String()); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
}

// TestPruneRacesBuildsAndLoad runs a prune while a build of each
// snapshotter is half done (its base image unpacked into snapshots no
// record uses yet, its first step about to start) and a load has written
// its blobs but not its name: the
// prune waits for them, then removes only garbage; the builds, the loaded
// image and the cache are intact.
func TestPruneRacesBuildsAndLoad(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	testutil.CheckNoMounts(t, dir)
	st, err := store.Open(filepath.Join(dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	bd, err := image.Save(ctx, st, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Tag("base:1", bd.String()); err != nil {
		t.Fatal(err)
	}
	garbage, _, err := st.WriteBlob(strings.NewReader("nothing uses this"), "")
	if err != nil {
		t.Fatal(err)
	}
	loadImg, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "load.tar")
	if err := image.NewOCIArchive(archive, []string{"loaded:1"}).Export(ctx, loadImg); err != nil {
		t.Fatal(err)
	}
	ctxDir := filepath.Join(dir, "context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(ctxDir, f), bytes.Repeat([]byte(f), 10000), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	reached := make(chan string)
	resume := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]*builder.Result, len(gc.Parts()))
	errs := make([]error, len(gc.Parts())+2)
	for i, part := range gc.Parts() {
		sn, c := openPart(t, st, part)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := &pausing{Reporter: progress.Discard(), at: "COPY a", reached: reached, resume: resume}
			// What lading build does: hold the store until the image
			// is named.
			release, err := st.Hold(ctx)
			if err != nil {
				errs[i] = err
			} else {
				defer release()
				results[i], errs[i] = build(ctx, st, sn, c, ctxDir, rep)
			}
			if errs[i] == nil {
				errs[i] = st.Tag("built-"+part.Name, results[i].Digest.String())
			}
			if errs[i] != nil {
				// Never leave the test waiting for a build that failed
				// before its pause.
				select {
				case reached <- "failed " + part.Name:
				default:
				}
			}
		}()
	}
	var loaded string
	wg.Add(1)
	go func() {
		defer wg.Done()
		// What lading load does: hold the store from the first blob to
		// the last name.
		release, err := st.Hold(ctx)
		if err != nil {
			errs[2] = err
			reached <- "load failed"
			return
		}
		defer release()
		img, err := image.ImportArchive(ctx, st, "oci-archive:"+archive)
		reached <- "load"
		<-resume
		if err != nil {
			errs[2] = err
			return
		}
		d, _ := img.Digest()
		loaded = d.String()
		errs[2] = st.Tag("loaded:1", loaded)
	}()
	for range len(gc.Parts()) + 1 {
		t.Logf("paused: %s", <-reached)
	}

	waiting := make(chan struct{})
	pruned := make(chan error, 1)
	var stats gc.Stats
	go func() {
		var err error
		// Keep the records (they fit): sweep and collect the rest.
		stats, err = gc.Prune(ctx, st, gc.Options{KeepStorage: 1 << 40, Waiting: func() { close(waiting) }})
		pruned <- err
	}()
	select {
	case <-waiting:
	case err := <-pruned:
		t.Errorf("prune ran while builds and a load were writing (err %v)", err)
		pruned <- err
	}
	close(resume)
	wg.Wait()
	if err := <-pruned; err != nil {
		t.Fatalf("prune: %v", err)
	}
	for i, part := range gc.Parts() {
		if errs[i] != nil {
			t.Fatalf("%s build: %v", part.Name, errs[i])
		}
	}
	if errs[2] != nil {
		t.Fatalf("load: %v", errs[2])
	}
	if st.HasBlob(garbage) || stats.Blobs == 0 {
		t.Errorf("prune did not run after the others: garbage blob kept, stats %+v", stats)
	}
	checkImage(t, st, "loaded image", loaded)
	for i, part := range gc.Parts() {
		checkImage(t, st, part.Name+" build", results[i].Digest.String())
		// Everything the build cached survived: a rebuild runs nothing.
		sn, c := openPart(t, st, part)
		rec := &recorder{Reporter: progress.Discard()}
		res, err := build(ctx, st, sn, c, ctxDir, rec)
		if err != nil {
			t.Fatalf("%s rebuild: %v", part.Name, err)
		}
		if res.Digest != results[i].Digest || rec.ran != 0 {
			t.Errorf("%s rebuild: %s with %d steps run, want %s from cache", part.Name, res.Digest, rec.ran, results[i].Digest)
		}
	}
}

// recorder counts the COPY steps that ran rather than came from the
// cache.
type recorder struct {
	progress.Reporter
	mu    sync.Mutex
	texts map[int]string
	ran   int
}

func (r *recorder) Start(s progress.Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.texts == nil {
		r.texts = map[int]string{}
	}
	r.texts[s.ID] = s.Text
}

func (r *recorder) Done(id int, cached bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.HasPrefix(r.texts[id], "COPY") && !cached && err == nil {
		r.ran++
	}
}
