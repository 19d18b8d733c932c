package builder_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/builder"
)

// TestCopyReusesEarlierOutput checks that a COPY re-run only because an
// earlier step changed gives the very layer it gave before (the files of
// the earlier result are reused, and the compressed bytes of the earlier
// layer), that the changed COPY gets the new content, that an earlier
// layer whose bytes went bad is not reused, and that a rebuild over the
// reused files is still right when the source of the reused COPY
// changes afterwards.
func TestCopyReusesEarlierOutput(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	epoch := int64(1700000000)
	e.epoch = &epoch
	var reused []string
	e.opts = func(o *builder.Options) {
		o.PartReused = func(dest string) { reused = append(reused, dest) }
	}
	ctxDir := e.context(map[string]string{"a/x": "a1", "b/y": "b1", "b/sub/z": "z1", "b/link": "y\x00link"})
	recipe := "FROM busybox:test\nCOPY a/ /app/a/\nCOPY b/ /app/b/\nRUN cat /app/a/x /app/b/y /app/b/link /app/b/sub/z >/all && stat -c %h /app/b/y >/nlink\n"
	// nlink is the link count the RUN step saw on /app/b/y: 1 for a
	// fresh copy, more for a file hard-linked from an earlier result.
	nlink := func(res *builder.Result) string {
		b, err := os.ReadFile(filepath.Join(umociUnpack(t, e.exportOCI(res.Image)), "nlink"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	var last *builder.Result
	var digests []string
	layersOf := func() []string {
		reused = nil
		res := e.mustBuild(ctxDir, recipe)
		last = res
		ls, err := res.Image.Layers()
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		digests = nil
		for _, l := range ls {
			d, err := l.DiffID()
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, d.String())
			if d, err = l.Digest(); err != nil {
				t.Fatal(err)
			}
			digests = append(digests, d.String())
		}
		return ids
	}
	first := layersOf()
	firstDigests := digests
	if len(reused) != 0 {
		t.Errorf("first build reused layer parts for %q", reused)
	}
	if got := nlink(last); got != "1" {
		t.Errorf("first build: /app/b/y has %s links, want 1 (a fresh copy)", got)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "a/x"), []byte("a2"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := layersOf()
	if got := nlink(last); got == "1" {
		t.Error("COPY b/, re-run after COPY a/ changed, copied its files again instead of linking the earlier result's")
	}
	n := len(first)
	if len(second) != n || n < 3 {
		t.Fatalf("layers %d then %d", n, len(second))
	}
	if first[n-3] == second[n-3] {
		t.Error("the changed COPY a/ gave the same layer")
	}
	if first[n-2] != second[n-2] || firstDigests[n-2] != digests[n-2] {
		t.Errorf("COPY b/, re-run after COPY a/ changed, gave layer %s (blob %s), then %s (blob %s)",
			first[n-2], firstDigests[n-2], second[n-2], digests[n-2])
	}
	if strings.Join(reused, ",") != "/app/b" {
		t.Errorf("layer parts reused for %q, want only /app/b", reused)
	}
	// The blob the reused part came from goes bad: the next rebuild must
	// not copy it, and still give the same layer.
	blob, err := e.store.BlobPath(digests[n-2])
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[20] ^= 0xff // in the first gzip member, after its 10-byte header
	if err := os.WriteFile(blob, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "a/x"), []byte("a3"), 0o644); err != nil {
		t.Fatal(err)
	}
	third := layersOf()
	if len(reused) != 0 {
		t.Errorf("a layer part was reused from a corrupt blob for %q", reused)
	}
	if third[n-2] != first[n-2] || digests[n-2] != firstDigests[n-2] {
		t.Errorf("COPY b/ over a corrupt earlier blob gave layer %s (blob %s), want %s (blob %s)",
			third[n-2], digests[n-2], first[n-2], firstDigests[n-2])
	}
	if first[n-1] == second[n-1] {
		t.Error("the RUN reading a/x gave the same layer")
	}
	// Change b/ now: its COPY must copy, not reuse.
	if err := os.WriteFile(filepath.Join(ctxDir, "b/sub/z"), []byte("z2"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := e.mustBuild(ctxDir, recipe+"RUN test \"$(cat /all)\" = a3b1b1z2\n")
	if res == nil {
		t.Fatal("no result")
	}
}
