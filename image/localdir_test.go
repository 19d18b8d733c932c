package image

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func TestLocalDir(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	img := testImage(t, s)
	// A third layer deletes /etc/os-release with a whiteout.
	l, err := WriteLayer(ctx, s, bytes.NewReader(layerTar(t, map[string]string{"etc/.wh.os-release": "", "new": "n"})))
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, l)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rootfs")
	if err := NewLocalDir(out).Export(ctx, img); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"hello": "hello world\n", "new": "n"} {
		b, err := os.ReadFile(filepath.Join(out, file))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(out, "etc", "os-release")); !os.IsNotExist(err) {
		t.Errorf("whited-out file still there: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(out, "etc", ".wh.os-release")); !os.IsNotExist(err) {
		t.Errorf("whiteout marker unpacked: %v", err)
	}
	// The output is never merged into, or deleted from.
	if err := NewLocalDir(out).Export(ctx, img); !errors.Is(err, ErrDirNotEmpty) {
		t.Errorf("second export err = %v, want ErrDirNotEmpty", err)
	}
	// An existing empty directory is fine.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := NewLocalDir(empty).Export(ctx, img); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(empty), ".*")); len(left) != 0 {
		t.Errorf("temp dirs left: %v", left)
	}
}
