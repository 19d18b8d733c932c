package builder_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lading-build/lading/builder"
)

// TestRunSteps checks what RUN steps leave in the image: their changes,
// the USER they ran as, and none of the files the runtime injected.
func TestRunSteps(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	recipe := `FROM busybox:test
ARG BUILD_ONLY=secret-arg
ENV KEPT=env-value
RUN echo hi > /hi && echo "$BUILD_ONLY $KEPT" > /vars
USER app
RUN id -u > /tmp/uid && id -G > /tmp/groups && echo $HOME > /tmp/home
WORKDIR /data
USER root
RUN test -f /etc/resolv.conf && test -f /etc/hosts && hostname > /hostname-seen && echo $$ > /pid
RUN ["/bin/sh", "-c", "echo exec-form > /exec"]
RUN --network=none cat /proc/net/dev | grep -c : > /netdevs
`
	res := e.mustBuild(ctxDir, recipe)
	archive := e.exportOCI(res.Image)
	root := umociUnpack(t, archive)
	want := map[string]string{
		"hi":            "hi\n",
		"vars":          "secret-arg env-value\n",
		"tmp/uid":       "1000\n",
		"tmp/groups":    "1000 50\n",
		"tmp/home":      "/home/app\n",
		"hostname-seen": "lading\n",
		"pid":           "1\n",
		"exec":          "exec-form\n",
		"netdevs":       "1\n",
	}
	for p, w := range want {
		got, ok := stat(t, root, p)
		if !ok || got.content != w {
			t.Errorf("/%s = %q (present %v), want %q", p, got.content, ok, w)
		}
	}
	for _, p := range []string{"etc/resolv.conf", "etc/hostname", "proc", "sys", "dev"} {
		if _, ok := stat(t, root, p); ok {
			t.Errorf("/%s was injected by the runtime and must not be in the image", p)
		}
	}
	if en, ok := stat(t, root, "data"); !ok || en.uid != 1000 || en.gid != 1000 {
		t.Errorf("WORKDIR /data under USER app = %+v, want owned by 1000:1000", en)
	}
	cfg := skopeoConfig(t, archive)
	for _, kv := range cfg.Config.Env {
		if strings.HasPrefix(kv, "BUILD_ONLY=") {
			t.Errorf("ARG persisted in the image env: %s", kv)
		}
	}
}

// TestRunFailure checks the error of a failing RUN: the recipe line, the
// command, the exit status and the tail of its output.
func TestRunFailure(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	_, err := e.build(ctxDir, "FROM busybox:test\nRUN true\nRUN echo about to fail; exit 3\n", nil)
	var se *builder.StepError
	if !errors.As(err, &se) {
		t.Fatalf("error %v, want a StepError", err)
	}
	if want := "Recipe:3: RUN echo about to fail; exit 3: exit status 3"; err.Error() != want {
		t.Errorf("error %q, want %q", err.Error(), want)
	}
	if !strings.Contains(se.Tail, "about to fail") {
		t.Errorf("tail %q does not hold the step's output", se.Tail)
	}
}
