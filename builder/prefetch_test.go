package builder_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPrefetchedSelections: the COPY steps' sources are selected and
// hashed when the build starts, one result per distinct request. Steps
// whose requests differ only in what copier.Select reads (--exclude,
// --parents, the source) must each get their own selection, in one
// stage and across stages, and a rebuild after a change must see it.
func TestPrefetchedSelections(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(map[string]string{"src/x.txt": "x", "src/y.bin": "y", "src/sub/z.txt": "z"})
	recipe := `FROM busybox:test AS other
COPY src/ /b/
FROM busybox:test
COPY --exclude=x.txt src/ /a/
COPY src/ /b/
COPY --parents src/sub/z.txt /p/
COPY src/sub/z.txt /q/
COPY --from=other /b/ /o/
RUN test ! -e /a/x.txt && test -f /a/y.bin && test -f /a/sub/z.txt
RUN test -f /p/src/sub/z.txt && test -f /q/z.txt && test ! -e /q/src
`
	e.mustBuild(ctxDir, recipe+`RUN test "$(cat /b/x.txt /b/sub/z.txt /o/x.txt)" = xzx
`)
	if err := os.WriteFile(filepath.Join(ctxDir, "src/x.txt"), []byte("X"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustBuild(ctxDir, recipe+`RUN test "$(cat /b/x.txt /o/x.txt)" = XX && test ! -e /a/x.txt
`)
}

// TestPrefetchWithIgnore: the selections made when the build starts walk
// the context at the same time, each with a .dockerignore matcher of its
// own (a shared one compiles its patterns lazily, racing); run under
// -race by make test.
func TestPrefetchWithIgnore(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	files := map[string]string{".dockerignore": "**/*.tmp\n!keep.tmp\n**/secret*\n"}
	recipe := "FROM busybox:test\n"
	for _, d := range []string{"a", "b", "c", "d"} {
		files[d+"/x"], files[d+"/y.tmp"], files[d+"/secret1"] = "x", "tmp", "s"
		recipe += "COPY " + d + "/ /" + d + "/\n"
	}
	files["keep.tmp"] = "k"
	recipe += "COPY keep.tmp /\nRUN test -f /a/x && test -f /d/x && test ! -e /b/y.tmp && test ! -e /c/secret1 && test -f /keep.tmp\n"
	e.mustBuild(e.context(files), recipe)
}
