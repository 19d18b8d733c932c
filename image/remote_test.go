package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/lading-build/lading/store"
)

// anonymous is a keychain with no credentials, so tests never read the
// user's ~/.docker/config.json.
var anonymous = authn.NewMultiKeychain()

// testOpts are RemoteOptions for tests: anonymous, no retry delays.
func testOpts() RemoteOptions {
	return RemoteOptions{Keychain: anonymous, Retries: -1}
}

// startRegistry serves ggcr's in-memory registry on 127.0.0.1, wrapped by
// wrap when not nil, and returns its host:port.
func startRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(nopLogger()))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// writeRemote pushes img to ref with ggcr directly (not with Push).
func writeRemote(t *testing.T, ref string, img v1.Image, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatal(err)
	}
}

func randomImage(t testing.TB, size, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(size, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func blobCount(t testing.TB, s *store.Store) int {
	t.Helper()
	b, err := s.Blobs()
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// checkClean fails when tmp/ holds anything or a stored blob does not
// hash to its name.
func checkClean(t *testing.T, s *store.Store) {
	t.Helper()
	tmp, err := os.ReadDir(s.Path("tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tmp) > 0 {
		t.Errorf("temp files left: %v", tmp)
	}
	blobs, _ := s.Blobs()
	for _, d := range blobs {
		f, err := s.OpenBlob(d)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d {
			t.Errorf("blob %s holds content %s", d, got)
		}
	}
}

func TestPullByTagAndDigest(t *testing.T) {
	host := startRegistry(t, nil)
	img := randomImage(t, 2048, 3)
	want := digestOf(t, img)
	writeRemote(t, host+"/app:1", img)

	s := openStore(t)
	got, err := Pull(context.Background(), s, host+"/app:1", testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if d := digestOf(t, got); d != want {
		t.Fatalf("pulled %s, want %s", d, want)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("pulled image is invalid: %v", err)
	}
	if n := blobCount(t, s); n != 5 {
		t.Errorf("%d blobs stored, want 5 (3 layers, config, manifest)", n)
	}
	if d, err := s.Resolve(host + "/app:1"); err != nil || d != want.String() {
		t.Errorf("name %s/app:1 -> %q, %v; want %s", host, d, err, want)
	}

	// By digest, into another store: the name is the digest reference.
	s2 := openStore(t)
	byDigest := host + "/app@" + want.String()
	if _, err := Pull(context.Background(), s2, byDigest, testOpts()); err != nil {
		t.Fatal(err)
	}
	r, err := Resolve(s2, byDigest)
	if err != nil {
		t.Fatal(err)
	}
	if d := digestOf(t, r); d != want {
		t.Errorf("by digest: %s, want %s", d, want)
	}
	// Pulling again fetches nothing and keeps the image.
	var lines []string
	o := testOpts()
	o.Progress = func(l string) { lines = append(lines, l) }
	if _, err := Pull(context.Background(), s2, host+"/app:1", o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "already present") {
		t.Errorf("second pull progress %q, want 'already present'", lines)
	}
	checkClean(t, s)
	checkClean(t, s2)
}

// TestResolveNames: pulled images are found by the short names users
// type, locally built ones by their qualified names.
func TestResolveNames(t *testing.T) {
	s := openStore(t)
	img := randomImage(t, 512, 1)
	d, err := Save(context.Background(), s, img)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Tag("index.docker.io/library/debian:12", d.String()))
	must(s.Tag("app:1", d.String()))
	must(s.Tag("127.0.0.1:5000/team/tool:2", d.String()))
	tests := []struct {
		ref, want string
	}{
		{"debian:12", "index.docker.io/library/debian:12"},
		{"docker.io/library/debian:12", "index.docker.io/library/debian:12"},
		{"library/debian:12", "index.docker.io/library/debian:12"},
		{"index.docker.io/library/debian:12", "index.docker.io/library/debian:12"},
		{"app:1", "app:1"},
		{"docker.io/library/app:1", "app:1"},
		{"127.0.0.1:5000/team/tool:2", "127.0.0.1:5000/team/tool:2"},
		{"debian:11", ""},
		{"debian", ""},
		{"tool:2", ""},
	}
	for _, tt := range tests {
		got, _, err := LookupName(s, tt.ref)
		if tt.want == "" {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("LookupName(%q) = %q, %v; want not found", tt.ref, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("LookupName(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
		}
		if _, err := Resolve(s, tt.ref); err != nil {
			t.Errorf("Resolve(%q): %v", tt.ref, err)
		}
	}
	if c, _ := CanonicalName("debian"); c != "index.docker.io/library/debian:latest" {
		t.Errorf("CanonicalName(debian) = %q", c)
	}
}

func TestPullIndexPlatform(t *testing.T) {
	host := startRegistry(t, nil)
	platforms := []v1.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "arm", Variant: "v6"},
		{OS: "linux", Architecture: "arm", Variant: "v7"},
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	digests := map[string]v1.Hash{}
	for _, p := range platforms {
		img := randomImage(t, 256, 1)
		digests[p.String()] = digestOf(t, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	r, _ := name.ParseReference(host + "/multi:1")
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		platform string // "" = default
		want     string // key of digests; "" = error
	}{
		{"linux/arm64", "linux/arm64/v8"},
		{"linux/arm64/v8", "linux/arm64/v8"},
		{"linux/arm/v6", "linux/arm/v6"},
		{"linux/arm", "linux/arm/v7"},
		{"linux/amd64", "linux/amd64"},
		{"linux/s390x", ""},
		{"linux/arm/v5", ""},
	}
	for _, tt := range tests {
		o := testOpts()
		if tt.platform != "" {
			p, err := v1.ParsePlatform(tt.platform)
			if err != nil {
				t.Fatal(err)
			}
			o.Platform = p
		}
		s := openStore(t)
		img, err := Pull(context.Background(), s, host+"/multi:1", o)
		if tt.want == "" {
			if err == nil || !strings.Contains(err.Error(), "no image for "+tt.platform) {
				t.Errorf("%s: err %v, want 'no image for %s'", tt.platform, err, tt.platform)
			}
			if names, _ := s.Names(); len(names) != 0 {
				t.Errorf("%s: names %v after a failed pull", tt.platform, names)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.platform, err)
			continue
		}
		if d := digestOf(t, img); d != digests[tt.want] {
			t.Errorf("%s: pulled %s, want the %s image %s", tt.platform, d, tt.want, digests[tt.want])
		}
	}
	// The default platform is linux/GOARCH.
	if o := testOpts(); o.platform().String() != "linux/"+defaultArch() {
		t.Errorf("default platform %s", o.platform())
	}
}

// counter wraps a registry handler and counts the requests matching.
type counter struct {
	mu sync.Mutex
	n  map[string]int // "GET blob", "upload"
}

func (c *counter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		switch {
		case strings.Contains(r.URL.Path, "/blobs/uploads"):
			c.n["upload"]++
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:"):
			c.n["GET "+r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]]++
			c.n["GET blob"]++
		}
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (c *counter) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

func TestPullSharedLayer(t *testing.T) {
	c := &counter{n: map[string]int{}}
	host := startRegistry(t, c.wrap)
	shared, err := random.Layer(4096, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	var imgs []v1.Image
	for i := 0; i < 2; i++ {
		own, err := random.Layer(1024, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(empty.Image, shared, own)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	writeRemote(t, host+"/a:1", imgs[0])
	writeRemote(t, host+"/b:1", imgs[1])
	s := openStore(t)
	for _, ref := range []string{host + "/a:1", host + "/b:1"} {
		if _, err := Pull(context.Background(), s, ref, testOpts()); err != nil {
			t.Fatal(err)
		}
	}
	// shared + 2 own layers + 2 configs + 2 manifests
	if n := blobCount(t, s); n != 7 {
		t.Errorf("%d blobs stored, want 7", n)
	}
	sd, _ := shared.Digest()
	if n := c.get("GET " + sd.String()); n != 1 {
		t.Errorf("shared layer fetched %d times, want 1", n)
	}
	checkClean(t, s)
}

func TestPushSkipsExistingBlobs(t *testing.T) {
	c := &counter{n: map[string]int{}}
	host := startRegistry(t, c.wrap)
	s := openStore(t)
	d, err := Save(context.Background(), s, randomImage(t, 4096, 3))
	if err != nil {
		t.Fatal(err)
	}
	img, err := Load(s, d.String())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Push(context.Background(), s, img, host+"/app:1", testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if got != d {
		t.Fatalf("pushed %s, want %s", got, d)
	}
	r, _ := name.ParseReference(host + "/app:1")
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatalf("registry lacks the manifest: %v", err)
	}
	if desc.Digest != d {
		t.Errorf("registry has %s, want %s", desc.Digest, d)
	}
	first := c.get("upload")
	if first == 0 {
		t.Fatal("first push uploaded no blob")
	}
	if _, err := Push(context.Background(), s, img, host+"/app:2", testOpts()); err != nil {
		t.Fatal(err)
	}
	if n := c.get("upload") - first; n != 0 {
		t.Errorf("second push made %d upload requests, want 0", n)
	}
}

// basicAuth requires user:pass on every request, answering 401 with a
// Basic challenge like docker-registry's htpasswd auth.
func basicAuth(user, pass string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

// staticKeychain answers one registry with fixed credentials.
type staticKeychain struct{ host, user, pass string }

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.host {
		return &authn.Basic{Username: k.user, Password: k.pass}, nil
	}
	return authn.Anonymous, nil
}

func TestPullAuth(t *testing.T) {
	host := startRegistry(t, basicAuth("alice", "pw"))
	img := randomImage(t, 1024, 2)
	writeRemote(t, host+"/private:1", img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "pw"}))

	s := openStore(t)
	_, err := Pull(context.Background(), s, host+"/private:1", testOpts())
	want := "pulling " + host + "/private:1 from " + host + ": unauthorized: authentication required"
	if err == nil || err.Error() != want {
		t.Fatalf("anonymous pull: %v\nwant: %s", err, want)
	}
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Errorf("error %T is not a *RemoteError", err)
	}
	if names, _ := s.Names(); len(names) != 0 {
		t.Errorf("names after a failed pull: %v", names)
	}

	o := testOpts()
	o.Keychain = staticKeychain{host, "alice", "pw"}
	if _, err := Pull(context.Background(), s, host+"/private:1", o); err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}

	// The default keychain reads $DOCKER_CONFIG/config.json, the file
	// `lading login` writes.
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	cfg := `{"auths":{"` + host + `":{"auth":"YWxpY2U6cHc="}}}` // alice:pw
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	o = RemoteOptions{Retries: -1}
	s2 := openStore(t)
	got, err := Pull(context.Background(), s2, host+"/private:1", o)
	if err != nil {
		t.Fatalf("pull with the default keychain: %v", err)
	}
	if _, err := Push(context.Background(), s2, got, host+"/private:copy", o); err != nil {
		t.Fatalf("push with the default keychain: %v", err)
	}
}

func TestPullErrors(t *testing.T) {
	host := startRegistry(t, nil)
	writeRemote(t, host+"/app:1", randomImage(t, 256, 1))
	s := openStore(t)
	_, err := Pull(context.Background(), s, host+"/app:2", testOpts())
	if err == nil || !strings.HasPrefix(err.Error(), "pulling "+host+"/app:2 from "+host+": manifest unknown") {
		t.Errorf("missing image: %v", err)
	}
	// A port nothing listens on: grab one and close it.
	l := httptest.NewServer(http.NotFoundHandler())
	dead := strings.TrimPrefix(l.URL, "http://")
	l.Close()
	_, err = Pull(context.Background(), s, dead+"/x:1", testOpts())
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "\n") {
		t.Errorf("dead registry: %v", err)
	}
	if _, err := Pull(context.Background(), s, "UPPER/Case", testOpts()); err == nil {
		t.Error("invalid reference accepted")
	}
	checkClean(t, s)
}

// TestPullDigestMismatch: a registry serving corrupted layers fails the
// pull, stores no bad blob and no name.
func TestPullDigestMismatch(t *testing.T) {
	img := randomImage(t, 4096, 2)
	layers, _ := img.Layers()
	bad := map[string]bool{}
	for _, l := range layers {
		d, _ := l.Digest()
		bad[d.String()] = true
	}
	host := startRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !bad[r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]] {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			body[len(body)/2] ^= 0xff
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	})
	writeRemote(t, host+"/app:1", img)
	s := openStore(t)
	_, err := Pull(context.Background(), s, host+"/app:1", testOpts())
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("corrupted layer: %v", err)
	}
	for d := range bad {
		if s.HasBlob(d) {
			t.Errorf("corrupted layer %s stored", d)
		}
	}
	if names, _ := s.Names(); len(names) != 0 {
		t.Errorf("names after a failed pull: %v", names)
	}
	checkClean(t, s)
}

// TestPullCancel cancels a pull while layers are streaming: nothing
// half-written stays in the store and no name is tagged.
func TestPullCancel(t *testing.T) {
	img := randomImage(t, 256<<10, 3)
	layers, _ := img.Layers()
	slow := map[string]bool{}
	for _, l := range layers {
		d, _ := l.Digest()
		slow[d.String()] = true
	}
	started := make(chan struct{}, len(layers))
	host := startRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !slow[r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]] {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			w.Header().Set("Content-Length", rec.Header().Get("Content-Length"))
			w.WriteHeader(rec.Code)
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			started <- struct{}{}
			<-r.Context().Done() // the rest never comes
		})
	})
	writeRemote(t, host+"/app:1", img)
	s := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	var sawTemp atomic.Bool
	go func() {
		<-started
		// Wait until a layer is partly written to its temp file.
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && !sawTemp.Load(); time.Sleep(time.Millisecond) {
			tmp, _ := os.ReadDir(s.Path("tmp"))
			for _, e := range tmp {
				if info, err := e.Info(); err == nil && info.Size() > 0 {
					sawTemp.Store(true)
				}
			}
		}
		cancel()
	}()
	_, err := Pull(ctx, s, host+"/app:1", testOpts())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull: %v, want context.Canceled", err)
	}
	if !sawTemp.Load() {
		t.Error("no temp file while a layer was streaming; the test did not cancel mid-blob")
	}
	if names, _ := s.Names(); len(names) != 0 {
		t.Errorf("names after a cancelled pull: %v", names)
	}
	for d := range slow {
		if s.HasBlob(d) {
			t.Errorf("half-sent layer %s stored", d)
		}
	}
	checkClean(t, s)
}

func TestPullMirror(t *testing.T) {
	mirror := startRegistry(t, nil)
	img := randomImage(t, 1024, 1)
	writeRemote(t, mirror+"/team/app:1", img)
	l := httptest.NewServer(http.NotFoundHandler())
	origin := strings.TrimPrefix(l.URL, "http://")
	l.Close()
	o := testOpts()
	o.Mirrors = map[string][]string{origin: {"127.0.0.1:1", mirror}}
	var lines []string
	o.Progress = func(s string) { lines = append(lines, s) }
	s := openStore(t)
	got, err := Pull(context.Background(), s, origin+"/team/app:1", o)
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, got) != digestOf(t, img) {
		t.Error("mirror served another image")
	}
	if _, err := s.Resolve(origin + "/team/app:1"); err != nil {
		t.Errorf("not tagged under the origin name: %v (progress %q)", err, lines)
	}
}

func TestLoadRemoteConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "registries.json")
	o, err := LoadRemoteConfig(p)
	if err != nil || o.Insecure != nil || o.Mirrors != nil {
		t.Fatalf("missing file: %+v, %v", o, err)
	}
	b, _ := json.Marshal(map[string]any{"insecure": []string{"reg:5000"}, "mirrors": map[string][]string{"docker.io": {"mirror:5000"}}})
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	o, err = LoadRemoteConfig(filepath.Join(dir, "none.json"), p)
	if err != nil {
		t.Fatal(err)
	}
	if !o.insecure("reg:5000") || o.insecure("reg:5001") {
		t.Errorf("insecure: %v", o.Insecure)
	}
	if m := o.mirrors("index.docker.io"); len(m) != 1 || m[0] != "mirror:5000" {
		t.Errorf("mirrors of Docker Hub: %v", m)
	}
	if err := os.WriteFile(p, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRemoteConfig(p); err == nil {
		t.Error("bad JSON accepted")
	}
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func defaultArch() string { return goruntime.GOARCH }
