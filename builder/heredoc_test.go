package builder_test

import (
	"testing"
)

// TestHeredocs checks RUN and COPY heredocs against what Docker produces.
func TestHeredocs(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(map[string]string{"plain.txt": "plain"})
	recipe := "FROM busybox:test\n" +
		"ARG NAME=world\n" +
		"ENV X=ex\n" +
		"RUN <<EOF\necho one > /one\necho two >> /one\nEOF\n" +
		"RUN <<-EOT\n\techo tabbed > /tabbed\n\tEOT\n" +
		"RUN cat <<A > /a && cat <<\"B\" > /b\n$X a\nA\n$X b\nB\n" +
		"COPY <<EOF /greeting\nhello $NAME\nEOF\n" +
		"COPY <<'EOF' <<EOF2 /dir/\nraw $NAME\nEOF\nsecond\nEOF2\n" +
		"COPY plain.txt <<EOF /mixed/\nfrom heredoc\nEOF\n"
	res := e.mustBuild(ctxDir, recipe)
	root := umociUnpack(t, e.exportOCI(res.Image))
	want := map[string]string{
		"one":             "one\ntwo\n",
		"tabbed":          "tabbed\n",
		"a":               "ex a\n",
		"b":               "$X b\n",
		"greeting":        "hello world\n",
		"dir/EOF":         "raw $NAME\n",
		"dir/EOF2":        "second\n",
		"mixed/plain.txt": "plain",
		"mixed/EOF":       "from heredoc\n",
	}
	for p, w := range want {
		got, ok := stat(t, root, p)
		if !ok || got.content != w {
			t.Errorf("/%s = %q (present %v), want %q", p, got.content, ok, w)
		}
	}
	if got, _ := stat(t, root, "greeting"); got.mode.Perm() != 0o644 {
		t.Errorf("heredoc file mode %v, want 0644", got.mode)
	}
	// A changed heredoc body is a cache miss.
	e.mustBuild(ctxDir, recipe)
	changed := e.mustBuild(ctxDir, recipe[:len(recipe)-len("from heredoc\nEOF\n")]+"changed\nEOF\n")
	if changed.Digest == res.Digest {
		t.Error("changing a heredoc body did not change the image")
	}
}
