package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lading-build/lading/snapshot"
)

// ErrDirNotEmpty is returned (wrapped) when the local directory output
// already has content; lading never deletes the user's files.
var ErrDirNotEmpty = errors.New("output directory is not empty")

// NewLocalDir returns an exporter writing the image's flattened root
// filesystem to the directory path: every layer applied in order,
// whiteouts honored. The tree is built in a temp directory next to path
// and renamed into place; path must not exist or be an empty directory.
func NewLocalDir(path string) Exporter {
	return &localDir{path: path}
}

type localDir struct {
	path string
}

// Export unpacks img into the directory.
func (d *localDir) Export(ctx context.Context, img v1.Image) (err error) {
	if err := checkEmptyDir(d.path); err != nil {
		return fmt.Errorf("exporting to %s: %w", d.path, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("exporting to %s: %w", d.path, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(d.path), "."+filepath.Base(d.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("exporting to %s: %w", d.path, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("exporting to %s: %w", d.path, err)
	}
	for i, l := range layers {
		if err := applyLayer(ctx, tmp, l); err != nil {
			return fmt.Errorf("exporting to %s: layer %d: %w", d.path, i+1, err)
		}
	}
	if err := checkEmptyDir(d.path); err != nil {
		return fmt.Errorf("exporting to %s: %w", d.path, err)
	}
	if err := os.Remove(d.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("exporting to %s: %w", d.path, err)
	}
	if err := os.Rename(tmp, d.path); err != nil {
		return fmt.Errorf("exporting to %s: %w", d.path, err)
	}
	return nil
}

func applyLayer(ctx context.Context, dir string, l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := snapshot.ApplyDir(ctx, dir, rc, snapshot.ApplyOptions{}); err != nil {
		return err
	}
	// Drain the end-of-archive padding so a compressed stream is checked
	// to its end (gzip verifies its CRC on EOF).
	_, err = io.Copy(io.Discard, rc)
	return err
}

// checkEmptyDir accepts a path that does not exist or is an empty
// directory.
func checkEmptyDir(path string) error {
	entries, err := os.ReadDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return ErrDirNotEmpty
	}
	return nil
}

// ExportIndex writes one directory per platform of idx under the
// directory: path/linux_amd64, path/linux_arm64 (as BuildKit's local
// exporter does).
func (d *localDir) ExportIndex(ctx context.Context, idx v1.ImageIndex) error {
	imgs, plats, err := IndexImages(idx)
	if err != nil {
		return fmt.Errorf("exporting to %s: %w", d.path, err)
	}
	if err := checkEmptyDir(d.path); err != nil {
		return fmt.Errorf("exporting to %s: %w", d.path, err)
	}
	if err := os.MkdirAll(d.path, 0o755); err != nil {
		return fmt.Errorf("exporting to %s: %w", d.path, err)
	}
	for i, img := range imgs {
		dir := filepath.Join(d.path, strings.ReplaceAll(plats[i].String(), "/", "_"))
		if err := (&localDir{path: dir}).Export(ctx, img); err != nil {
			return err
		}
	}
	return nil
}
