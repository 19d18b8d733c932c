package cache

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a second lading process; its
// value is "mode|arg|arg...".
const helperEnv = "LADING_CACHE_TEST_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		if err := helperMain(strings.Split(spec, "|")); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperMain runs one helper mode:
//
//	put|dir|prefix|n[|k]   Put n records keyed by testKey(prefix, i) and Get each back;
//	                       print "stored" once k records are stored
//	lock|dir|key|wait      Lock key (waiting at most wait), print "locked", hold 200ms
//	step|dir|n|log         run the builder's Get/Lock/Get/Put protocol for n
//	                       shared keys, appending "ran <i>" to log for each step run
func helperMain(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("bad spec %q", args)
	}
	c, err := Open(args[1])
	if err != nil {
		return err
	}
	switch args[0] {
	case "put":
		n, _ := strconv.Atoi(args[3])
		k := -1
		if len(args) > 4 {
			k, _ = strconv.Atoi(args[4])
		}
		for i := range n {
			r := testRecord(testKey(args[2], i), "")
			if err := c.Put(r); err != nil {
				return err
			}
			if _, ok := c.Get(r.Key); !ok {
				return fmt.Errorf("record %d missing after Put", i)
			}
			if i+1 == k {
				fmt.Println("stored")
			}
		}
		return nil
	case "lock":
		wait, _ := time.ParseDuration(args[3])
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		unlock, err := c.Lock(ctx, args[2])
		if err != nil {
			return err
		}
		fmt.Println("locked")
		time.Sleep(200 * time.Millisecond)
		return unlock()
	case "step":
		n, _ := strconv.Atoi(args[2])
		return runSteps(context.Background(), c, n, args[3])
	}
	return fmt.Errorf("unknown mode %q", args[0])
}

// runSteps runs n shared steps the way the builder does, logging each
// step it actually runs to log.
func runSteps(ctx context.Context, c *Cache, n int, log string) error {
	for i := range n {
		key := testKey("step", i)
		if _, ok := c.Get(key); ok {
			continue
		}
		unlock, err := c.Lock(ctx, key)
		if err != nil {
			return err
		}
		if _, ok := c.Get(key); !ok {
			f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			fmt.Fprintf(f, "ran %d\n", i)
			f.Close()
			time.Sleep(5 * time.Millisecond) // the step's work
			if err := c.Put(testRecord(key, "")); err != nil {
				return err
			}
		}
		if err := unlock(); err != nil {
			return err
		}
	}
	return nil
}

// startHelper starts the test binary as a helper process.
func startHelper(t *testing.T, stdout io.Writer, args ...string) func() error {
	t.Helper()
	cmd := execSelf(strings.Join(args, "|"))
	cmd.Stdout = stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd.Wait
}

// testKey returns a valid key derived from prefix and i.
func testKey(prefix string, i int) string {
	return NewKey("").Add("test", fmt.Sprintf("%s-%d", prefix, i)).Sum()
}

// testRecord returns a record with every field set.
func testRecord(key, parent string) *Record {
	in := NewKey(parent).Add(FieldInstruction, "RUN make").AddFiles(FieldFiles, []FileDigest{
		{Path: "a", Digest: "sha256:00"},
		{Path: "b\n\xff", Digest: "sha256:" + strings.Repeat("0f", 32)},
	}).AddFiles("empty", nil).Add(FieldEnv, "A=\xff")
	return &Record{
		Key: key, Parent: parent, Snapshot: "snap-" + key[7:19],
		Layer:  &LayerDesc{Digest: "sha256:" + strings.Repeat("a", 64), DiffID: "sha256:" + strings.Repeat("b", 64), Size: 1234, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip"},
		Inputs: in.Inputs(), Stage: "build", Step: "RUN make",
		Created: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func openTest(t testing.TB) *Cache {
	t.Helper()
	c, err := Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeTree creates files under dir: a name ending in "/" is a directory,
// "->target" a symlink, anything else a regular file with that content.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(name, "/"):
			err = os.MkdirAll(p, 0o755)
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(content[2:], p)
		default:
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// walkFiles lists the tree under root as Files, Rel relative to root.
func walkFiles(t testing.TB, root string) []File {
	t.Helper()
	var files []File
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, File{Rel: rel, Abs: p, Info: info})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// setLastUsed sets a record's last-used time.
func setLastUsed(t *testing.T, c *Cache, key string, at time.Time) {
	t.Helper()
	h, _ := keyHex(key)
	if err := os.Chtimes(c.path("records", h), at, at); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a strings.Builder safe to read while a helper writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}

// execSelf returns a command running this test binary as a helper.
func execSelf(spec string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+spec)
	return cmd
}
