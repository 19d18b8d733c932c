package builder_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/copier"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/progress"
)

// conformanceDir holds the corpus; testdata/conformance/README.md
// describes the format of a case.
const conformanceDir = "../testdata/conformance"

// TestConformance builds every case of the conformance corpus on one
// shared store (with a busybox image named "busybox") and checks the
// result each case's "case" file expects. LADING_CASE=name runs one case.
func TestConformance(t *testing.T) {
	ents, err := os.ReadDir(conformanceDir)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.busybox()
	if err := e.store.Tag("busybox", mustResolve(t, e, "busybox:test")); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(conformanceDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Each case's http/ directory is served at HTTP_BASE, a build arg.
	srv := httptest.NewServer(http.FileServer(http.Dir(conformanceDir)))
	t.Cleanup(srv.Close)
	only := os.Getenv("LADING_CASE")
	t.Run("case", func(t *testing.T) {
		for _, ent := range ents {
			if !ent.IsDir() || (only != "" && ent.Name() != only) {
				continue
			}
			dir := filepath.Join(conformanceDir, ent.Name())
			if !bytes.Contains(readme, []byte("| "+ent.Name()+" |")) {
				t.Errorf("README.md has no row for case %s", ent.Name())
			}
			base := srv.URL + "/" + ent.Name() + "/http"
			t.Run(ent.Name(), func(t *testing.T) {
				t.Parallel()
				runCase(t, e, dir, base)
			})
		}
	})
}

func mustResolve(t *testing.T, e *env, name string) string {
	t.Helper()
	d, err := e.store.Resolve(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// caseSpec is a parsed "case" file.
type caseSpec struct {
	args       map[string]string
	target     string
	platform   string      // --platform
	allow      []string    // entitlements granted (--allow)
	prebuild   [][2]string // images built first: name, recipe file
	source     bool        // the case names the upstream test it comes from
	setup      [][]string  // ctx-* lines
	errs       []string    // the build fails with an error containing each
	warnings   []string    // the parser or linter warns with each
	nowarnings []string    // and with none of these
	checks     []check
}

// check is one expectation about the built image.
type check struct {
	line int
	kind string   // config, env, noenv, file, dir, symlink, absent
	args []string // tokens after the kind (for config: path, then raw JSON)
}

func readCase(t *testing.T, dir string) caseSpec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "case"))
	if err != nil {
		t.Fatal(err)
	}
	cs := caseSpec{args: map[string]string{}}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch kind {
		case "source", "note":
			cs.source = cs.source || kind == "source"
			continue
		case "error":
			cs.errs = append(cs.errs, rest)
			continue
		case "warning":
			cs.warnings = append(cs.warnings, rest)
			continue
		case "nowarning":
			cs.nowarnings = append(cs.nowarnings, rest)
			continue
		case "env", "noenv":
			cs.checks = append(cs.checks, check{line: i + 1, kind: kind, args: []string{rest}})
			continue
		case "config":
			p, raw, _ := strings.Cut(rest, " ")
			cs.checks = append(cs.checks, check{line: i + 1, kind: kind, args: []string{p, strings.TrimSpace(raw)}})
			continue
		}
		toks, err := tokens(rest)
		if err != nil {
			t.Fatalf("case:%d: %v", i+1, err)
		}
		switch {
		case kind == "arg":
			k, v, _ := strings.Cut(rest, "=")
			cs.args[k] = v
		case kind == "target":
			cs.target = rest
		case kind == "platform":
			cs.platform = rest
		case kind == "allow":
			cs.allow = append(cs.allow, rest)
		case kind == "prebuild" && len(toks) == 2:
			cs.prebuild = append(cs.prebuild, [2]string{toks[0], toks[1]})
		case strings.HasPrefix(kind, "ctx-"):
			cs.setup = append(cs.setup, append([]string{kind}, toks...))
		case slices.Contains([]string{"file", "dir", "symlink", "absent"}, kind):
			if len(toks) == 0 {
				t.Fatalf("case:%d: %s needs an argument", i+1, kind)
			}
			cs.checks = append(cs.checks, check{line: i + 1, kind: kind, args: toks})
		default:
			t.Fatalf("case:%d: unknown directive %q", i+1, kind)
		}
	}
	return cs
}

// tokens splits s at blanks; a double-quoted part is a Go string literal.
func tokens(s string) ([]string, error) {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return out, nil
		}
		var b strings.Builder
		for s != "" && s[0] != ' ' && s[0] != '\t' {
			if s[0] != '"' {
				b.WriteByte(s[0])
				s = s[1:]
				continue
			}
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("bad quoted string in %q", s)
			}
			v, _ := strconv.Unquote(q)
			b.WriteString(v)
			s = s[len(q):]
		}
		out = append(out, b.String())
	}
}

// runCase builds one case and checks what it expects.
func runCase(t *testing.T, e *env, dir, httpBase string) {
	cs := readCase(t, dir)
	if _, ok := cs.args["HTTP_BASE"]; !ok {
		cs.args["HTTP_BASE"] = httpBase
	}
	if !cs.source {
		t.Error(`the case file names no "source"`)
	}
	work := t.TempDir()
	ctxDir := filepath.Join(work, "context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "context")); err == nil {
		if err := os.CopyFS(ctxDir, os.DirFS(filepath.Join(dir, "context"))); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range cs.setup {
		setupContext(t, ctxDir, s)
	}
	recipePath := filepath.Join(work, "Dockerfile")
	for _, f := range []string{"Dockerfile", "Dockerfile.dockerignore"} {
		if data, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			if err := os.WriteFile(filepath.Join(work, f), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out bytes.Buffer
	for _, pb := range cs.prebuild {
		recipe, err := os.ReadFile(filepath.Join(dir, pb[1]))
		if err != nil {
			t.Fatal(err)
		}
		res, _, err := buildCase(e, recipe, recipePath, ctxDir, caseSpec{}, &out)
		if err != nil {
			t.Fatalf("building %s: %v\n%s", pb[1], err, out.String())
		}
		if err := e.store.Tag(pb[0], res.Digest.String()); err != nil {
			t.Fatal(err)
		}
	}
	recipe, err := os.ReadFile(recipePath)
	if err != nil {
		t.Fatal(err)
	}
	res, warnings, err := buildCase(e, recipe, recipePath, ctxDir, cs, &out)
	for _, w := range cs.warnings {
		if !slices.ContainsFunc(warnings, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no warning containing %q; warnings: %q", w, warnings)
		}
	}
	for _, w := range cs.nowarnings {
		if slices.ContainsFunc(warnings, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("a warning contains %q; warnings: %q", w, warnings)
		}
	}
	if len(cs.errs) > 0 {
		if err == nil {
			t.Fatalf("build succeeded; want an error containing %q", cs.errs)
		}
		for _, want := range cs.errs {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
		return
	}
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	raw, err := res.Image.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	var files map[string]fileEntry
	for _, c := range cs.checks {
		if files == nil && c.kind != "config" && c.kind != "env" && c.kind != "noenv" {
			files = imageFiles(t, res.Image)
		}
		if msg := c.run(cfg, files); msg != "" {
			t.Errorf("case:%d: %s %q: %s", c.line, c.kind, c.args, msg)
		}
	}
	if t.Failed() {
		t.Logf("config: %s\nbuild output:\n%s", raw, out.String())
	}
}

func buildCase(e *env, recipe []byte, recipePath, ctxDir string, cs caseSpec, out io.Writer) (*builder.Result, []string, error) {
	plan, err := parser.Parse(bytes.NewReader(recipe), parser.Options{File: "Dockerfile", BuildArgs: cs.args, Target: cs.target, Platform: cs.platform})
	if err != nil {
		return nil, nil, err
	}
	rep, err := progress.New("plain", out)
	if err != nil {
		return nil, nil, err
	}
	defer rep.Close()
	opts := builder.Options{
		ContextDir: ctxDir,
		RecipePath: recipePath,
		Store:      e.store,
		Snapshots:  e.snaps,
		Progress:   rep,
		Settings:   builder.Settings{Pull: builder.PullNever, Allow: cs.allow},
	}
	if bytes.Contains(recipe, []byte("HTTP_BASE")) && !slices.Contains(opts.Allow, builder.AllowNetworkHost) {
		// HTTP_BASE stands for a remote server but is on 127.0.0.1, which
		// only the network.host entitlement lets ADD read.
		opts.Allow = append(slices.Clone(opts.Allow), builder.AllowNetworkHost)
	}
	warnings := plan.Warnings
	for _, w := range builder.Lint(plan, opts) {
		warnings = append(warnings, w.String())
	}
	res, err := builder.Run(context.Background(), plan, opts)
	return res, warnings, err
}

// setupContext applies a ctx-* line to the context directory:
// "ctx-mode PATH MODE", "ctx-owner PATH UID:GID", "ctx-dir PATH [MODE]",
// "ctx-tar ARCHIVE DIR" (".gz" compresses) and "ctx-remove PATH".
func setupContext(t *testing.T, ctxDir string, s []string) {
	t.Helper()
	if len(s) < 2 {
		t.Fatalf("%s needs arguments", s[0])
	}
	p := filepath.Join(ctxDir, s[1])
	var err error
	switch s[0] {
	case "ctx-mode":
		err = os.Chmod(p, fileModeOf(t, s[2]))
	case "ctx-owner":
		var uid, gid int
		if _, err = fmt.Sscanf(s[2], "%d:%d", &uid, &gid); err == nil {
			err = os.Lchown(p, uid, gid)
		}
	case "ctx-dir":
		if err = os.MkdirAll(p, 0o755); err == nil && len(s) > 2 {
			err = os.Chmod(p, fileModeOf(t, s[2]))
		}
	case "ctx-tar":
		err = writeTar(p, filepath.Join(ctxDir, s[2]))
	case "ctx-remove":
		err = os.RemoveAll(p)
	default:
		t.Fatalf("unknown setup %q", s[0])
	}
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(s, " "), err)
	}
}

func fileModeOf(t *testing.T, s string) os.FileMode {
	t.Helper()
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		t.Fatalf("bad mode %q", s)
	}
	return copier.FileMode(uint32(m))
}

// writeTar archives the directory src (then removed) as archive, owned
// by 0:0 unless a file is owned otherwise.
func writeTar(archive, src string) error {
	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	var w io.Writer = f
	if strings.HasSuffix(archive, ".gz") {
		gz := gzip.NewWriter(f)
		defer gz.Close()
		w = gz
	}
	tw := tar.NewWriter(w)
	if err := tw.AddFS(os.DirFS(src)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.RemoveAll(src)
}

// fileEntry is one path of an image's flattened filesystem.
type fileEntry struct {
	typ      byte
	mode     int64
	uid, gid int
	content  string // file content or link target
}

func imageFiles(t *testing.T, img v1.Image) map[string]fileEntry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]fileEntry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		fe := fileEntry{typ: h.Typeflag, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, content: h.Linkname}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			fe.content = string(b)
		}
		files[path.Clean("/"+h.Name)] = fe
	}
}

// run returns "" when the check holds, else what is wrong.
func (c check) run(cfg map[string]any, files map[string]fileEntry) string {
	switch c.kind {
	case "config":
		var want any
		if err := json.Unmarshal([]byte(c.args[1]), &want); err != nil {
			return "bad JSON: " + err.Error()
		}
		got := lookupJSON(cfg, c.args[0])
		if !reflect.DeepEqual(got, want) {
			b, _ := json.Marshal(got)
			return "got " + string(b)
		}
	case "env", "noenv":
		env, _ := lookupJSON(cfg, "config.Env").([]any)
		k, _, _ := strings.Cut(c.args[0], "=")
		found := ""
		for _, kv := range env {
			if s, _ := kv.(string); strings.HasPrefix(s, k+"=") {
				found = s
			}
		}
		switch {
		case c.kind == "noenv" && found != "":
			return "set: " + found
		case c.kind == "env" && found != c.args[0]:
			return fmt.Sprintf("got %q", found)
		}
	case "absent":
		if _, ok := files[c.args[0]]; ok {
			return "exists"
		}
	default:
		return c.file(files)
	}
	return ""
}

func (c check) file(files map[string]fileEntry) string {
	fe, ok := files[c.args[0]]
	if !ok {
		return "missing"
	}
	want := map[string]byte{"file": tar.TypeReg, "dir": tar.TypeDir, "symlink": tar.TypeSymlink}[c.kind]
	if fe.typ != want && !(c.kind == "file" && fe.typ == tar.TypeLink) {
		return fmt.Sprintf("type %q", fe.typ)
	}
	for _, a := range c.args[1:] {
		k, v, _ := strings.Cut(a, "=")
		var got string
		switch k {
		case "mode":
			got = fmt.Sprintf("%04o", fe.mode)
			v = fmt.Sprintf("%04s", v)
		case "owner":
			got = fmt.Sprintf("%d:%d", fe.uid, fe.gid)
		case "content", "target":
			got = fe.content
		case "contains":
			if !strings.Contains(fe.content, v) {
				return fmt.Sprintf("content %q lacks %q", fe.content, v)
			}
			continue
		default:
			return "unknown attribute " + k
		}
		if got != v {
			return fmt.Sprintf("%s is %q, want %q", k, got, v)
		}
	}
	return ""
}

// lookupJSON follows a dotted path ("config.Env", "history.0.created_by")
// into decoded JSON; nil when absent.
func lookupJSON(v any, p string) any {
	for _, k := range strings.Split(p, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}
