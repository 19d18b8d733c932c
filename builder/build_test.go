package builder_test

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/parser"
)

// TestMetadataInstructions builds a recipe with every config instruction
// and checks the config as skopeo reads it from the OCI archive.
func TestMetadataInstructions(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(map[string]string{"a.txt": "a"})
	recipe := `FROM busybox:test
MAINTAINER Jane <jane@example.com>
ARG VERSION=1.2
ENV APP_VERSION=${VERSION} EMPTY= SPACED="a b"
ENV PATH=/opt/bin:$PATH
LABEL org.opencontainers.image.version=$APP_VERSION "multi word"="yes"
EXPOSE 80 53/udp 8000-8002
WORKDIR /srv
WORKDIR data
USER app:staff
VOLUME ["/data", "/cache"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD wget -q -O- http://localhost/ || exit 1
SHELL ["/bin/sh", "-ec"]
CMD echo hello
ONBUILD COPY a.txt /onbuild.txt
`
	res := e.mustBuild(ctxDir, recipe)
	cfg := skopeoConfig(t, e.exportOCI(res.Image))
	c := cfg.Config

	if cfg.Author != "Jane <jane@example.com>" {
		t.Errorf("author = %q", cfg.Author)
	}
	wantEnv := []string{"PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP_VERSION=1.2", "EMPTY=", "SPACED=a b"}
	if !reflect.DeepEqual(c.Env, wantEnv) {
		t.Errorf("env = %q, want %q", c.Env, wantEnv)
	}
	for _, kv := range c.Env {
		if strings.HasPrefix(kv, "VERSION=") {
			t.Errorf("ARG leaked into the image env: %s", kv)
		}
	}
	if c.Labels["org.opencontainers.image.version"] != "1.2" || c.Labels["multi word"] != "yes" {
		t.Errorf("labels = %v", c.Labels)
	}
	var ports []string
	for p := range c.ExposedPorts {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	if want := []string{"53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp"}; !reflect.DeepEqual(ports, want) {
		t.Errorf("exposed ports = %v, want %v", ports, want)
	}
	if c.WorkingDir != "/srv/data" {
		t.Errorf("workdir = %q", c.WorkingDir)
	}
	if c.User != "app:staff" {
		t.Errorf("user = %q", c.User)
	}
	if _, ok := c.Volumes["/data"]; !ok || len(c.Volumes) != 2 {
		t.Errorf("volumes = %v", c.Volumes)
	}
	if c.StopSignal != "SIGQUIT" {
		t.Errorf("stop signal = %q", c.StopSignal)
	}
	if h := c.Healthcheck; h == nil || h.Interval != 5*time.Second || h.Timeout != 2*time.Second || h.Retries != 4 ||
		!reflect.DeepEqual(h.Test, []string{"CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"}) {
		t.Errorf("healthcheck = %+v", c.Healthcheck)
	}
	if !reflect.DeepEqual(c.Shell, []string{"/bin/sh", "-ec"}) {
		t.Errorf("shell = %q", c.Shell)
	}
	if want := []string{"/bin/sh", "-ec", "echo hello"}; !reflect.DeepEqual(c.Cmd, want) {
		t.Errorf("cmd = %q, want %q (shell form through SHELL)", c.Cmd, want)
	}
	if want := []string{"COPY a.txt /onbuild.txt"}; !reflect.DeepEqual(c.OnBuild, want) {
		t.Errorf("onbuild = %q", c.OnBuild)
	}
	// One history entry per step; the WORKDIR steps made layers, the
	// others are empty.
	if n := len(cfg.History); n < 16 {
		t.Errorf("history has %d entries, want one per step", n)
	}
	// WORKDIR created the directories, owned by the USER at that point
	// (root: USER comes after WORKDIR here).
	root := umociUnpack(t, e.exportOCI(res.Image))
	if en, ok := stat(t, root, "srv/data"); !ok || !en.mode.IsDir() {
		t.Errorf("WORKDIR did not create /srv/data")
	}
}

// TestEntrypointResetsInheritedCmd checks Docker's rule: ENTRYPOINT resets
// a CMD inherited from the base, but not one set in the same stage.
func TestEntrypointResetsInheritedCmd(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	res := e.mustBuild(ctxDir, "FROM busybox:test AS base\nCMD [\"inherited\"]\n\nFROM base\nENTRYPOINT [\"/bin/echo\"]\n")
	cfg := skopeoConfig(t, e.exportOCI(res.Image))
	if len(cfg.Config.Cmd) != 0 || !reflect.DeepEqual(cfg.Config.Entrypoint, []string{"/bin/echo"}) {
		t.Errorf("cmd = %q, entrypoint = %q; want no cmd", cfg.Config.Cmd, cfg.Config.Entrypoint)
	}
	res = e.mustBuild(ctxDir, "FROM busybox:test\nCMD [\"x\"]\nENTRYPOINT [\"/bin/echo\"]\n")
	cfg = skopeoConfig(t, e.exportOCI(res.Image))
	if !reflect.DeepEqual(cfg.Config.Cmd, []string{"x"}) {
		t.Errorf("cmd set in the stage was reset: %q", cfg.Config.Cmd)
	}
}

// TestCopySemantics checks COPY's rules in the unpacked image: directory
// contents, wildcards, trailing slashes, --chown by name, --chmod,
// .dockerignore, symlinks, COPY --from another stage.
func TestCopySemantics(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(map[string]string{
		"dir/one.txt":      "one",
		"dir/sub/two.txt":  "two",
		"dir/link":         "one.txt\x00link",
		"dir/secret.key":   "do not copy",
		"x1.conf":          "x1",
		"x2.conf":          "x2",
		"single":           "single",
		".dockerignore":    "**/*.key\n",
		"ignored/skip.txt": "no",
		"build/out.bin":    "binary",
	})
	recipe := `FROM scratch AS builder
COPY build/out.bin /artifacts/app

FROM busybox:test
COPY dir /copied/
COPY *.conf /confs/
COPY single /renamed
COPY single /intodir/
COPY --chown=app:staff single /owned
COPY --chown=1234:5678 --chmod=0750 single /numeric
WORKDIR /work
COPY single .
COPY --from=builder /artifacts/app /usr/local/bin/app
COPY --from=0 /artifacts /fromindex/
`
	res := e.mustBuild(ctxDir, recipe)
	root := umociUnpack(t, e.exportOCI(res.Image))
	tests := []struct {
		path     string
		mode     os.FileMode
		uid, gid int
		content  string
	}{
		{"copied/one.txt", 0o644, 0, 0, "one"},
		{"copied/sub/two.txt", 0o644, 0, 0, "two"},
		{"copied/link", os.ModeSymlink | 0o777, 0, 0, "one.txt"},
		{"confs/x1.conf", 0o644, 0, 0, "x1"},
		{"confs/x2.conf", 0o644, 0, 0, "x2"},
		{"renamed", 0o644, 0, 0, "single"},
		{"intodir/single", 0o644, 0, 0, "single"},
		{"owned", 0o644, 1000, 50, "single"},
		{"numeric", 0o750, 1234, 5678, "single"},
		{"work/single", 0o644, 0, 0, "single"},
		{"usr/local/bin/app", 0o644, 0, 0, "binary"},
		{"fromindex/app", 0o644, 0, 0, "binary"},
	}
	for _, tt := range tests {
		got, ok := stat(t, root, tt.path)
		if !ok {
			t.Errorf("%s: missing", tt.path)
			continue
		}
		want := entry{mode: tt.mode, uid: tt.uid, gid: tt.gid, content: tt.content}
		if got != want {
			t.Errorf("%s = %+v, want %+v", tt.path, got, want)
		}
	}
	for _, absent := range []string{"copied/secret.key", "copied/dir", "ignored"} {
		if _, ok := stat(t, root, absent); ok {
			t.Errorf("%s should not be in the image", absent)
		}
	}
}

// TestRecipeErrors checks that build-time recipe problems name the line.
func TestRecipeErrors(t *testing.T) {
	e := newEnv(t)
	ctxDir := e.context(map[string]string{"a": "a"})
	tests := []struct {
		recipe, want string
	}{
		{"FROM scratch\nCOPY missing /x\n", "Recipe:2: "},
		{"FROM scratch\nCOPY a b /x\n", "Recipe:2: "},
		{"FROM scratch\nEXPOSE 99999\n", "Recipe:2: "},
		{"FROM no-such-image:1\n", "Recipe:1: "},
		// (WORKDIR under a USER missing from /etc/passwd is not an error:
		// the directory belongs to 0:0 as in BuildKit, see the
		// conformance case fix-chown-unknown-name.)
		{"FROM scratch\nWORKDIR /x\nRUN true\n", "Recipe:3: "},
	}
	for _, tt := range tests {
		_, err := e.build(ctxDir, tt.recipe, nil)
		var se *builder.StepError
		var pe *parser.Error
		if err == nil || !(errors.As(err, &se) || errors.As(err, &pe)) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("recipe %q: error %v, want prefix %q", tt.recipe, err, tt.want)
		}
	}
}

// TestReproducible builds the same inputs on two roots with
// SOURCE_DATE_EPOCH and compares digests and tarballs byte for byte.
func TestReproducible(t *testing.T) {
	epoch := int64(1700000000)
	var digests []string
	var tars [][]byte
	for i := 0; i < 2; i++ {
		e := newEnv(t)
		e.epoch = &epoch
		e.busybox()
		ctxDir := e.context(map[string]string{"app/a.txt": "a", "app/b/c.txt": "c"})
		if i == 1 {
			// Different mtimes in the context must not matter.
			later := time.Now().Add(time.Hour)
			_ = os.Chtimes(ctxDir+"/app/a.txt", later, later)
		}
		res := e.mustBuild(ctxDir, "FROM busybox:test\nCOPY app /app\nWORKDIR /app/new\nENV X=1\n")
		digests = append(digests, res.Digest.String())
		b, err := os.ReadFile(e.exportOCI(res.Image))
		if err != nil {
			t.Fatal(err)
		}
		tars = append(tars, b)
	}
	if digests[0] != digests[1] {
		t.Errorf("digests differ: %s vs %s", digests[0], digests[1])
	}
	if !bytes.Equal(tars[0], tars[1]) {
		t.Errorf("OCI tarballs differ (%d vs %d bytes)", len(tars[0]), len(tars[1]))
	}
}
