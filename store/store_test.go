package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tmpFiles lists what is left under tmp/.
func tmpFiles(t *testing.T, s *Store) []string {
	t.Helper()
	entries, err := os.ReadDir(s.Path("tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestBlobRoundTrip(t *testing.T) {
	s := openTest(t)
	data := bytes.Repeat([]byte("lading"), 10000)
	want := digestOf(data)

	got, size, err := s.WriteBlob(bytes.NewReader(data), want)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || size != int64(len(data)) {
		t.Fatalf("WriteBlob = %s, %d; want %s, %d", got, size, want, len(data))
	}
	if !s.HasBlob(want) {
		t.Fatal("HasBlob = false after write")
	}
	if n, err := s.BlobSize(want); err != nil || n != int64(len(data)) {
		t.Fatalf("BlobSize = %d, %v", n, err)
	}
	f, err := s.OpenBlob(want)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back %d bytes, %v", len(back), err)
	}
	// Writing the same content again is a no-op that succeeds.
	if got2, _, err := s.WriteBlob(bytes.NewReader(data), ""); err != nil || got2 != want {
		t.Fatalf("second WriteBlob = %s, %v", got2, err)
	}
	if left := tmpFiles(t, s); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func TestBlobWriterDigestMismatch(t *testing.T) {
	s := openTest(t)
	wrong := digestOf([]byte("other"))
	_, _, err := s.WriteBlob(bytes.NewReader([]byte("content")), wrong)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err = %v, want ErrDigestMismatch", err)
	}
	if s.HasBlob(wrong) || s.HasBlob(digestOf([]byte("content"))) {
		t.Fatal("mismatched blob was stored")
	}
	if left := tmpFiles(t, s); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func TestBlobWriterCloseDiscards(t *testing.T) {
	s := openTest(t)
	w, err := s.NewBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "half a layer")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s.HasBlob(digestOf([]byte("half a layer"))) {
		t.Fatal("closed blob was stored")
	}
	if _, _, err := w.Commit(""); err == nil {
		t.Fatal("Commit after Close succeeded")
	}
	if left := tmpFiles(t, s); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func TestBadDigests(t *testing.T) {
	s := openTest(t)
	good := digestOf(nil)
	bad := []string{
		"",
		"sha256:",
		"sha256:../../x",
		"sha256:../../../../etc/passwd",
		"sha256:" + good[7:71-1],
		"sha256:" + good[7:] + "0",
		"sha256:" + "ABCDEF" + good[13:],
		"sha512:" + good[7:],
		good[7:],
		"sha256:/" + good[8:],
	}
	for _, d := range bad {
		if _, err := s.OpenBlob(d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("OpenBlob(%q) err = %v, want ErrInvalidDigest", d, err)
		}
		if _, err := s.BlobPath(d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("BlobPath(%q) err = %v, want ErrInvalidDigest", d, err)
		}
		if d != "" {
			if _, _, err := s.WriteBlob(bytes.NewReader(nil), d); !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("WriteBlob(%q) err = %v, want ErrInvalidDigest", d, err)
			}
		}
		if s.HasBlob(d) {
			t.Errorf("HasBlob(%q) = true", d)
		}
		if err := s.Tag("x", d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Tag(x, %q) err = %v, want ErrInvalidDigest", d, err)
		}
	}
	if _, err := s.OpenBlob(good); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenBlob(missing) err = %v, want ErrNotFound", err)
	}
}

func TestNormalizeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"app", "app:latest"},
		{"app:1.0", "app:1.0"},
		{"registry.example.com:5000/team/app", "registry.example.com:5000/team/app:latest"},
		{"registry.example.com:5000/team/app:v2", "registry.example.com:5000/team/app:v2"},
		{"app@sha256:" + digestOf(nil)[7:], "app@sha256:" + digestOf(nil)[7:]},
	}
	for _, tt := range tests {
		got, err := NormalizeName(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", " app", "a b", "app/", "a\nb"} {
		if _, err := NormalizeName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("NormalizeName(%q) err = %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestTagResolveUntag(t *testing.T) {
	s := openTest(t)
	d1, d2 := digestOf([]byte("1")), digestOf([]byte("2"))
	if _, err := s.Resolve("app"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Resolve on empty store err = %v", err)
	}
	if err := s.Tag("app", d1); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("base:1.0", d2); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"app", "app:latest"} {
		if got, err := s.Resolve(n); err != nil || got != d1 {
			t.Errorf("Resolve(%q) = %s, %v; want %s", n, got, err, d1)
		}
	}
	if err := s.Tag("app:latest", d2); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Resolve("app"); got != d2 {
		t.Errorf("retagged Resolve = %s, want %s", got, d2)
	}
	names, err := s.Names()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0].Name != "app:latest" || names[1].Name != "base:1.0" || names[1].Digest != d2 {
		t.Fatalf("Names = %+v", names)
	}
	if names[0].Created.IsZero() {
		t.Error("Created is zero")
	}
	if err := s.Untag("app"); err != nil {
		t.Fatal(err)
	}
	if err := s.Untag("app"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Untag err = %v", err)
	}
	if _, err := s.Resolve("app"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Resolve after Untag err = %v", err)
	}
}

func TestConcurrentTagGoroutines(t *testing.T) {
	s := openTest(t)
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Tag(fmt.Sprintf("img%d", i), digestOf([]byte(strconv.Itoa(i))))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkTags(t, s, "img", n)
}

func checkTags(t *testing.T, s *Store, prefix string, n int) {
	t.Helper()
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		got, err := s.Resolve(name)
		if err != nil || got != digestOf([]byte(strconv.Itoa(i))) {
			t.Errorf("Resolve(%s) = %s, %v", name, got, err)
		}
	}
}

// helperEnv makes the test binary act as a second lading process.
const helperEnv = "LADING_STORE_TEST_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helperMain(spec))
	}
	os.Exit(m.Run())
}

// helperMain tags "<prefix><i>" for i < count in root; spec is
// "root|prefix|count".
func helperMain(spec string) int {
	var root, prefix string
	var count int
	parts := bytes.Split([]byte(spec), []byte("|"))
	if len(parts) != 3 {
		return 2
	}
	root, prefix = string(parts[0]), string(parts[1])
	count, _ = strconv.Atoi(string(parts[2]))
	s, err := Open(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := range count {
		if err := s.Tag(fmt.Sprintf("%s%d", prefix, i), digestOf([]byte(strconv.Itoa(i)))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func TestConcurrentTagProcesses(t *testing.T) {
	s := openTest(t)
	const n = 100
	var cmds []*exec.Cmd
	for _, prefix := range []string{"p", "q"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d", helperEnv, s.Root(), prefix, n))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper process: %v", err)
		}
	}
	checkTags(t, s, "p", n)
	checkTags(t, s, "q", n)
	if names, _ := s.Names(); len(names) != 2*n {
		t.Errorf("len(Names) = %d, want %d", len(names), 2*n)
	}
}

func TestCrashLeftovers(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("committed")
	d, _, err := s.WriteBlob(bytes.NewReader(data), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("app", d); err != nil {
		t.Fatal(err)
	}
	// A process killed mid-write leaves temp files: one old, one fresh
	// (possibly still being written by a live process).
	w, err := s.NewBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "torn")
	stale := w.f.Name()
	old := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(s.Path("tmp"), "file-12345")
	if err := os.WriteFile(fresh, []byte(`{"version":1,"na`), 0o600); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file removed: %v", err)
	}
	if got, err := s2.Resolve("app"); err != nil || got != d {
		t.Errorf("Resolve after crash = %s, %v", got, err)
	}
	if !s2.HasBlob(d) || s2.HasBlob(digestOf([]byte("torn"))) {
		t.Error("blobs wrong after crash")
	}
	if err := s2.Tag("app2", d); err != nil {
		t.Fatalf("Tag after crash: %v", err)
	}
}

func TestLock(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	unlock, err := s.Lock(ctx, "build-1")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(short, "build-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock on held lock err = %v, want deadline exceeded", err)
	}
	other, err := s.Lock(ctx, "build-2")
	if err != nil {
		t.Fatalf("independent lock: %v", err)
	}
	other()
	got := make(chan error, 1)
	go func() {
		u, err := s.Lock(ctx, "build-1")
		if err == nil {
			err = u()
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("waiter did not get the lock after unlock")
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden", "x y"} {
		if _, err := s.Lock(ctx, bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Lock(%q) err = %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestDefaultRoot(t *testing.T) {
	got := DefaultRoot()
	if os.Geteuid() == 0 {
		if got != "/var/lib/lading" {
			t.Errorf("DefaultRoot = %s", got)
		}
		return
	}
	t.Setenv("XDG_DATA_HOME", "/x/data")
	if got := DefaultRoot(); got != "/x/data/lading" {
		t.Errorf("DefaultRoot = %s", got)
	}
}
