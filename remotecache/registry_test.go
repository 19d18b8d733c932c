package remotecache

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/internal/testutil"
)

func registrySpec(ref string) Spec { return Spec{Type: TypeRegistry, Ref: ref} }

// uploads records the digests of the blobs a registry received.
type uploads struct {
	mu        sync.Mutex
	blobs     []string
	manifests int
}

func (u *uploads) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		switch {
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/"):
			u.blobs = append(u.blobs, r.URL.Query().Get("digest"))
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/"):
			u.manifests++
		}
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (u *uploads) take() (blobs []string, manifests int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	blobs, manifests = u.blobs, u.manifests
	u.blobs, u.manifests = nil, 0
	return blobs, manifests
}

// roundTrip exports entries to ref, checks the pushed manifest is a
// valid image whose config carries them, and reads them back.
func roundTrip(t *testing.T, ref string, opts image.RemoteOptions) {
	ctx := context.Background()
	st := openStore(t)
	entries := testEntries(t, st)
	sink, err := OpenSink(registrySpec(ref), opts)
	must(t, err)
	must(t, sink.Export(ctx, st, entries))

	r, err := parseRef(ref, opts)
	must(t, err)
	img, err := remote.Image(r, readOptions(ctx, opts)...)
	must(t, err)
	if err := validate.Image(img); err != nil {
		t.Errorf("pushed cache is not a valid image: %v", err)
	}
	raw, err := img.RawConfigFile()
	must(t, err)
	var cfg struct {
		OS     string `json:"os"`
		Arch   string `json:"architecture"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
		Cache *index `json:"lading.cache.v1"`
	}
	must(t, json.Unmarshal(raw, &cfg))
	if cfg.OS != "linux" || cfg.Arch == "" || len(cfg.RootFS.DiffIDs) != 2 || cfg.Cache == nil || len(cfg.Cache.Entries) != 3 {
		t.Errorf("config: %s", raw)
	}

	src, err := OpenSource(ctx, registrySpec(ref), opts)
	must(t, err)
	checkSource(t, src, st, entries)
}

func TestRegistryRoundTrip(t *testing.T) {
	host := startRegistry(t, nil)
	roundTrip(t, host+"/app:cache", testOpts())
}

func TestDockerRegistryRoundTrip(t *testing.T) {
	reg := testutil.StartRegistry(t, false)
	opts := testOpts(reg.Host)
	roundTrip(t, reg.Host+"/team/app:cache", opts)

	// A second machine adds a step; the first ones stay.
	ctx := context.Background()
	st := openStore(t)
	extra := Entry{Key: key("d"), Parent: key("c"), Layer: writeLayer(t, st, 3), Created: time.Now(), Step: "RUN test"}
	sink, err := OpenSink(registrySpec(reg.Host+"/team/app:cache"), opts)
	must(t, err)
	must(t, sink.Export(ctx, st, []Entry{extra}))
	src, err := OpenSource(ctx, registrySpec(reg.Host+"/team/app:cache"), opts)
	must(t, err)
	checkSource(t, src, st, []Entry{extra})
	for _, k := range []string{"a", "b", "c"} {
		if _, ok := src.Lookup(key(k)); !ok {
			t.Errorf("step %s lost by the second export", k)
		}
	}
	// Missing repository and missing tag are empty caches.
	for _, ref := range []string{reg.Host + "/none:cache", reg.Host + "/team/app:other"} {
		src, err := OpenSource(ctx, registrySpec(ref), opts)
		if err != nil {
			t.Fatalf("missing cache %s: %v", ref, err)
		}
		if _, ok := src.Lookup(key("a")); ok {
			t.Errorf("missing cache %s hit", ref)
		}
	}
}

// TestRegistryMerge exports from two stores (two machines) and checks
// that the second export uploads only the new layer and config, even
// though its store lacks the first machine's layers.
func TestRegistryMerge(t *testing.T) {
	ctx := context.Background()
	var up uploads
	host := startRegistry(t, up.wrap)
	ref := host + "/app:cache"
	st := openStore(t)
	entries := testEntries(t, st)
	sink, err := OpenSink(registrySpec(ref), testOpts())
	must(t, err)
	must(t, sink.Export(ctx, st, entries[:2]))
	blobs, manifests := up.take()
	if len(blobs) != 2 || manifests != 1 { // layer of a, config
		t.Errorf("first export uploaded %d blobs %v and %d manifests", len(blobs), blobs, manifests)
	}

	st2 := openStore(t)
	third := entries[2]
	third.Layer = writeLayer(t, st2, 2)
	newer := entries[1]
	newer.Created = newer.Created.Add(time.Hour)
	newer.Step = "ENV A=2"
	must(t, sink.Export(ctx, st2, []Entry{newer, third}))
	blobs, manifests = up.take()
	for _, b := range blobs {
		if b == entries[0].Layer.Digest {
			t.Errorf("second export uploaded the layer of a again")
		}
	}
	if len(blobs) != 2 || manifests != 1 { // layer of c, config
		t.Errorf("second export uploaded %d blobs %v and %d manifests", len(blobs), blobs, manifests)
	}

	// Nothing new: nothing is uploaded.
	must(t, sink.Export(ctx, st, entries[:1]))
	if blobs, manifests := up.take(); len(blobs) != 0 || manifests != 0 {
		t.Errorf("unchanged export uploaded %d blobs %v and %d manifests", len(blobs), blobs, manifests)
	}

	src, err := OpenSource(ctx, registrySpec(ref), testOpts())
	must(t, err)
	checkSource(t, src, st, []Entry{entries[0], newer, third})
}

func TestRegistryMissingAndErrors(t *testing.T) {
	ctx := context.Background()
	host := startRegistry(t, nil)
	src, err := OpenSource(ctx, registrySpec(host+"/none:cache"), testOpts())
	must(t, err)
	if _, ok := src.Lookup(key("a")); ok {
		t.Error("missing cache hit")
	}

	// Exporting nothing creates nothing.
	var up uploads
	host2 := startRegistry(t, up.wrap)
	sink, err := OpenSink(registrySpec(host2+"/app:cache"), testOpts())
	must(t, err)
	must(t, sink.Export(ctx, openStore(t), nil))
	if blobs, manifests := up.take(); len(blobs) != 0 || manifests != 0 {
		t.Errorf("empty export uploaded %v and %d manifests", blobs, manifests)
	}

	// An image that is not a cache is neither read nor overwritten.
	ref := host + "/app:1"
	r, err := name.ParseReference(ref)
	must(t, err)
	must(t, remote.Write(r, empty.Image))
	if _, err := OpenSource(ctx, registrySpec(ref), testOpts()); !errors.Is(err, ErrNotCache) || !strings.Contains(err.Error(), ref) {
		t.Errorf("OpenSource of an image: %v", err)
	}
	st := openStore(t)
	sink, err = OpenSink(registrySpec(ref), testOpts())
	must(t, err)
	if err := sink.Export(ctx, st, testEntries(t, st)); !errors.Is(err, ErrNotCache) {
		t.Errorf("Export over an image: %v", err)
	}

	// A registry that is not there is an error naming the ref.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadHost := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	_, err = OpenSource(ctx, registrySpec(deadHost+"/app:cache"), testOpts())
	if err == nil || !strings.Contains(err.Error(), deadHost+"/app:cache") || strings.Contains(err.Error(), "\n") {
		t.Errorf("dead registry: %v", err)
	}
	// A layer the registry lacks.
	src, err = OpenSource(ctx, registrySpec(host+"/none:cache"), testOpts())
	must(t, err)
	l := writeLayer(t, openStore(t), 9)
	if err := src.FetchLayer(ctx, openStore(t), *l); err == nil || !strings.Contains(err.Error(), l.Digest) {
		t.Errorf("FetchLayer of a missing blob: %v", err)
	}
}

// TestRegistryHugeConfig: a cache manifest whose config is larger than
// lading reads for pulls is refused before the config is fetched.
func TestRegistryHugeConfig(t *testing.T) {
	var fetched atomic.Int32
	var cfgPath atomic.Value
	host := startRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p, _ := cfgPath.Load().(string); p != "" && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, p) {
				fetched.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{Config: v1.Config{Labels: map[string]string{"pad": strings.Repeat("x", image.MaxConfigSize)}}})
	must(t, err)
	cfg, err := img.ConfigName()
	must(t, err)
	ref := host + "/huge:cache"
	r, err := name.ParseReference(ref)
	must(t, err)
	must(t, remote.Write(r, img))
	cfgPath.Store("/blobs/" + cfg.String())
	_, err = OpenSource(context.Background(), registrySpec(ref), testOpts())
	if !errors.Is(err, image.ErrBadImage) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("OpenSource of a cache with a huge config: %v", err)
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the config was fetched %d times", n)
	}
}
