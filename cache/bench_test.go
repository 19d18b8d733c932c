package cache

import (
	"fmt"
	"testing"
)

// BenchmarkGetLargeRecord: the record of a COPY of a 20,000-file context,
// which carries every file's digest for Explain.
func BenchmarkGetLargeRecord(b *testing.B) {
	c := openTest(b)
	files := make([]FileDigest, 20000)
	for i := range files {
		files[i] = FileDigest{Path: fmt.Sprintf("src/pkg%02d/file%05d.go", i%100, i), Digest: testKey("f", i)}
	}
	k := NewKey("").Add(FieldInstruction, "COPY . /src").AddFiles(FieldFiles, files)
	r := &Record{Key: k.Sum(), Snapshot: "s", Inputs: k.Inputs()}
	if err := c.Put(r); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, ok := c.Get(r.Key); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkKey20k: the key of a COPY of 20,000 files.
func BenchmarkKey20k(b *testing.B) {
	files := make([]FileDigest, 20000)
	for i := range files {
		files[i] = FileDigest{Path: fmt.Sprintf("src/pkg%02d/file%05d.go", i%100, i), Digest: testKey("f", i)}
	}
	for b.Loop() {
		NewKey("").Add(FieldInstruction, "COPY . /src").AddFiles(FieldFiles, files).Sum()
	}
}
