package builder_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/internal/testutil"
	"github.com/lading-build/lading/store"
)

// request returns a Request on a fresh store under a temporary directory
// that is checked for leftover mounts.
func request(t *testing.T) builder.Request {
	t.Helper()
	dir := t.TempDir()
	testutil.CheckNoMounts(t, dir)
	return builder.Request{Root: filepath.Join(dir, "root"), Settings: builder.Settings{Remote: image.RemoteOptions{Retries: -1}}}
}

// fileOf reads a file of a built image through a local output.
func fileOf(t *testing.T, req builder.Request, name string) string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "rootfs")
	req.Outputs = []builder.Output{{Type: "local", Dest: dest}}
	if _, err := builder.Build(context.Background(), req); err != nil {
		t.Fatalf("build: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dest, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// `lading build -` reads a tar context from stdin, with the recipe in it
// (default name or -f inside the archive).
func TestBuildContextArchive(t *testing.T) {
	archive := tarGz(t, map[string]string{
		"Dockerfile":    "FROM scratch\nCOPY data.txt /default.txt\n",
		"sub/Other":     "FROM scratch\nCOPY sub/more.txt /other.txt\n",
		"data.txt":      "from the archive\n",
		"sub/more.txt":  "more\n",
		"../escape.txt": "never outside\n",
	})
	req := request(t)
	req.ContextArchive = strings.NewReader(archive)
	if got := fileOf(t, req, "default.txt"); got != "from the archive\n" {
		t.Errorf("default recipe: /default.txt = %q", got)
	}
	req.ContextArchive, req.RecipeFile = strings.NewReader(archive), "sub/Other"
	if got := fileOf(t, req, "other.txt"); got != "more\n" {
		t.Errorf("-f inside the archive: /other.txt = %q", got)
	}
	tmp, err := os.ReadDir(filepath.Join(req.Root, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tmp {
		if strings.HasPrefix(e.Name(), "context-") {
			t.Errorf("unpacked context %s left behind", e.Name())
		}
	}
}

// Stdin that is not an archive is the recipe, with an empty context.
func TestBuildRecipeOnStdin(t *testing.T) {
	req := request(t)
	req.ContextArchive = strings.NewReader("FROM scratch\nLABEL from=stdin\n")
	res, err := builder.Build(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Config.Labels["from"]; got != "stdin" {
		t.Errorf("label from = %q, want stdin", got)
	}
	req.ContextArchive = strings.NewReader("FROM scratch\nCOPY missing.txt /\n")
	_, err = builder.Build(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "<stdin>:2:") {
		t.Errorf("COPY from an empty context: err = %v, want a <stdin>:2: error", err)
	}
}

// A short name that is neither stored nor pullable says both; a name
// with a registry host gets the pull error alone.
func TestFromNotFoundLocally(t *testing.T) {
	req := request(t)
	req.ContextDir = t.TempDir()
	req.Recipe = []byte("FROM lading-test-never-pulled\n")
	_, err := builder.Build(context.Background(), req)
	if err == nil {
		t.Fatal("build succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"Recipe:1: FROM lading-test-never-pulled: not found in the local store (see `lading images`)", "pulling lading-test-never-pulled from index.docker.io"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	req.Recipe = []byte("FROM registry.invalid/app\n")
	_, err = builder.Build(context.Background(), req)
	if err == nil || strings.Contains(err.Error(), "local store") || !strings.Contains(err.Error(), "registry.invalid") {
		t.Errorf("FROM registry.invalid/app: err = %v, want the pull error alone", err)
	}
}

// Build tags the image in the store and writes each output.
func TestBuildTagsAndOutputs(t *testing.T) {
	req := request(t)
	req.ContextDir = t.TempDir()
	req.Recipe = []byte("FROM scratch\nLABEL a=b\n")
	req.Tags = []string{"app:1", "app:2"}
	out := filepath.Join(t.TempDir(), "app.tar")
	req.Outputs = []builder.Output{{Type: "oci", Dest: out}}
	res, err := builder.Build(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(req.Root)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range req.Tags {
		img, err := image.Resolve(st, tag)
		if err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		if d, _ := img.Digest(); d != res.Digest {
			t.Errorf("%s = %s, want %s", tag, d, res.Digest)
		}
	}
	entries, err := image.ArchiveContents(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Names...)
	}
	if len(names) != len(req.Tags) {
		t.Errorf("OCI archive names %v, want one name per tag %v", names, req.Tags)
	}
}

// Bad requests fail before anything is built.
func TestBuildRequestErrors(t *testing.T) {
	ctxDir := t.TempDir()
	for _, tc := range []struct {
		name string
		req  builder.Request
		want string
	}{
		{"no context", builder.Request{}, "context"},
		{"context dir missing", builder.Request{ContextDir: filepath.Join(ctxDir, "nope")}, "is not a directory"},
		{"no recipe", builder.Request{ContextDir: ctxDir}, "no recipe"},
		{"bad pull", builder.Request{ContextDir: ctxDir, Settings: builder.Settings{Pull: "sometimes"}}, "pull policy"},
		{"push without tag", builder.Request{ContextDir: ctxDir, Outputs: []builder.Output{{Type: "registry"}}}, "needs at least one tag"},
		{"bad output", builder.Request{ContextDir: ctxDir, Outputs: []builder.Output{{Type: "zip", Dest: "x"}}}, "must be oci, docker, local or registry"},
		{"bad snapshotter", builder.Request{ContextDir: ctxDir, Recipe: []byte("FROM scratch\n"), Snapshotter: "zfs"}, "snapshotter must be"},
		{"both stdin", builder.Request{ContextArchive: strings.NewReader("FROM scratch\n"), RecipeFile: "-"}, "both come from stdin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.Root = filepath.Join(t.TempDir(), "root")
			_, err := builder.Build(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestParseOutput(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want builder.Output
		err  string
	}{
		{"type=oci,dest=a.tar", builder.Output{Type: "oci", Dest: "a.tar"}, ""},
		{"type=registry", builder.Output{Type: "registry"}, ""},
		{"type=local", builder.Output{}, "dest is required"},
		{"type=oci,dest=a,x=y", builder.Output{}, `unknown key "x"`},
		{"oci", builder.Output{}, "want type="},
	} {
		got, err := builder.ParseOutput(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"512", 512}, {"4k", 4 << 10}, {"64m", 64 << 20}, {"2G", 2 << 30}, {"2gb", 2 << 30},
		{"", -1}, {"0", -1}, {"-1m", -1}, {"m", -1}, {"99999999999g", -1},
	} {
		got, err := builder.ParseSize(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
