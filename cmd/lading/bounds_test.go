package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lading-build/lading/internal/testutil"
)

// TestStepOutputBounded: a step printing 1 GiB shows the log limit's
// worth and one line with the dropped count, and the build succeeds; a
// failing step's tail still shows its last lines.
func TestStepOutputBounded(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	dir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN yes | head -c 1073741824\n")
	r := lading(t, "", "build", "--root", root, "--progress", "plain", dir)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%.2000s", r.code, r.stderr)
	}
	shown := strings.Count(r.stderr, "#3 y\n") * 2
	if shown > 8<<20 || shown < 8<<20-16 {
		t.Errorf("%d bytes of output shown, want 8 MiB", shown)
	}
	marker := "#3 [output clipped: " + strconv.Itoa(1<<30-shown) + " bytes dropped past the log limit of 8 MiB per step]\n"
	if strings.Count(r.stderr, "[output clipped") != 1 || !strings.Contains(r.stderr, marker) {
		t.Errorf("no single marker %q in the output's end:\n%s", marker, r.stderr[max(0, len(r.stderr)-500):])
	}
	if !strings.Contains(r.stderr, "#3 DONE") || !regexp.MustCompile(`\nBuilt sha256:[0-9a-f]{64} in [0-9.]+s: 3 steps, 0 cached\n$`).MatchString(r.stderr) {
		t.Errorf("no DONE or summary:\n%s", r.stderr[max(0, len(r.stderr)-500):])
	}

	dir = busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN yes | head -c 50000000; echo the-last-line; exit 3\n")
	r = lading(t, "", "build", "--root", root, "--progress", "plain", "--log-limit", "1m", dir)
	if r.code != 1 {
		t.Fatalf("exit %d:\n%.2000s", r.code, r.stderr)
	}
	if n := strings.Count(r.stderr, "#3 y\n") * 2; n > 1<<20 {
		t.Errorf("%d bytes shown past --log-limit 1m", n)
	}
	if !strings.Contains(r.stderr, "y\nthe-last-line\n------\n") || !strings.Contains(r.stderr, "log limit of 1 MiB") {
		t.Errorf("failure block lacks the last lines:\n%s", r.stderr[max(0, len(r.stderr)-800):])
	}
}

// TestProgressJSONOnly: --progress json writes nothing but JSON lines,
// ending with a summary naming the image.
func TestProgressJSONOnly(t *testing.T) {
	root := t.TempDir()
	dir := writeRecipe(t, "FROM scratch\nLABEL a=b\n")
	r := lading(t, "", "build", "--root", root, "--progress", "json", "-t", "j:1", dir)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	var last map[string]any
	for _, l := range lines {
		last = nil
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
	}
	if last["type"] != "summary" || last["image"] != "j:1" || last["digest"] != strings.TrimSpace(r.stdout) {
		t.Errorf("last event %v, stdout %q", last, r.stdout)
	}
	// A failed build ends with its summary and an error event.
	r = lading(t, "", "build", "--root", root, "--progress", "json", writeRecipe(t, "FROM scratch\nCOPY nosuch /\n"))
	lines = strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	var types []string
	for _, l := range lines {
		var e struct{ Type, Error string }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		types = append(types, e.Type)
		if e.Type == "error" && !strings.HasPrefix(e.Error, "Recipe:2: ") {
			t.Errorf("error event %q", l)
		}
	}
	if r.code != 1 || strings.Join(types[len(types)-2:], " ") != "summary error" {
		t.Errorf("exit %d, events %v", r.code, types)
	}
}

// TestRecipeTooLarge: a recipe over the size limit is an error from a
// file and from stdin alike (stdin used to be cut short silently).
func TestRecipeTooLarge(t *testing.T) {
	root := t.TempDir()
	var b strings.Builder
	b.WriteString("FROM scratch\n")
	for b.Len() < 11<<20 {
		b.WriteString("LABEL padding=" + strings.Repeat("x", 1000) + "\n")
	}
	b.WriteString("LABEL last=1\n")
	r := lading(t, b.String(), "build", "--root", root, "-f", "-", t.TempDir())
	if r.code != 1 || lastLine(r.stderr) != "<stdin>: recipe is larger than 10 MiB" {
		t.Errorf("stdin: exit %d, stderr %q", r.code, lastLine(r.stderr))
	}
	dir := writeRecipe(t, b.String())
	r = lading(t, "", "build", "--root", root, dir)
	if r.code != 1 || lastLine(r.stderr) != "Recipe: recipe is larger than 10 MiB" {
		t.Errorf("file: exit %d, stderr %q", r.code, lastLine(r.stderr))
	}
}

// TestRecipeValidatedBeforeRun: a malformed flag anywhere in the recipe
// is reported with FILE:LINE before the first RUN starts.
func TestRecipeValidatedBeforeRun(t *testing.T) {
	root := t.TempDir()
	bad := []string{
		"COPY --chmod=999 a /b",
		"COPY --chmod=u+q a /b",
		"COPY --chown=a:b:c a /b",
		"ADD --checksum=sha256:zz a /b",
		"ADD --checksum=md5:abc a /b",
		"EXPOSE 99999999/tcp",
		"EXPOSE 80/bogus",
		"EXPOSE abc",
		"STOPSIGNAL SIGBOGUS",
		"STOPSIGNAL 99",
		"HEALTHCHECK --interval=-5s CMD true",
		"HEALTHCHECK --timeout=abc CMD true",
		"RUN --mount=type=cache true",
		"RUN --mount=type=tmpfs true",
		"RUN --mount=type=secret,id=nope,required true",
		"RUN --mount=type=bind,target=/x,bogus=1 true",
		"RUN --mount=type=cache,target=/c,mode=999 true",
		"RUN --network=bogus true",
		"RUN --bogus true",
		"COPY --bogus a /b",
		"COPY --from=0 <<EOF /f\nx\nEOF",
		"ENV MODE=999\nCOPY --chmod=$MODE a /b",
		"ARG PORT=99999999\nEXPOSE $PORT",
		"FROM scratch AS second\nEXPOSE 0\nCOPY --from=0 a /a",
		bomb("ENV A=12345678\n", 40),
	}
	for _, b := range bad {
		t.Run(strings.SplitN(b, "\n", 2)[0], func(t *testing.T) {
			recipe := "FROM scratch\nRUN echo side effect\n" + b + "\n"
			badLine := strings.Count(recipe, "\n")
			if strings.HasPrefix(b, "COPY --from=0") {
				badLine -= 2 // the heredoc's lines
			}
			if strings.HasPrefix(b, "FROM scratch AS second") {
				badLine-- // EXPOSE, in a stage that needs the first
			}
			if strings.HasPrefix(b, "ENV A=") {
				badLine = 21 // where the doubling passes 1 MiB
			}
			dir := writeRecipe(t, recipe)
			writeFiles(t, dir, map[string]string{"a": "a"})
			r := lading(t, "", "build", "--root", root, "--progress", "json", dir)
			if r.code != 1 {
				t.Fatalf("exit %d:\n%s", r.code, r.stderr)
			}
			var last struct{ Type, Text, Error string }
			for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
				if err := json.Unmarshal([]byte(l), &last); err != nil {
					t.Fatalf("not a JSON line: %q", l)
				}
				if last.Type == "start" && strings.HasPrefix(last.Text, "RUN") {
					t.Errorf("a RUN step started before the error: %s", l)
				}
			}
			if want := "Recipe:" + strconv.Itoa(badLine) + ": "; last.Type != "error" || !strings.HasPrefix(last.Error, want) {
				t.Errorf("last event %+v, want an error with prefix %q", last, want)
			}
		})
	}
}

// bomb doubles A n times after head.
func bomb(head string, n int) string {
	return head + strings.TrimSuffix(strings.Repeat("ENV A=$A$A\n", n), "\n")
}
