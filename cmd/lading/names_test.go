package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestBuildRejectsBadTagsFirst checks that -t names are validated as
// Docker references before anything is built: the recipe's failing RUN
// is never reached.
func TestBuildRejectsBadTagsFirst(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\nRUN false\n"})
	for _, tag := range []string{"App:1", "app:bad tag", "app:-x", "app::1", ""} {
		r := lading(t, "", "build", "--root", t.TempDir(), "-t", tag, dir)
		if r.code == 0 || !strings.Contains(r.stderr, "invalid image name") || strings.Contains(r.stderr, "RUN false") {
			t.Errorf("-t %q: exit %d, stderr %q; want an invalid name error before the build", tag, r.code, r.stderr)
		}
	}
}

// TestLoadBareTag checks that loading an OCI archive whose only name is a
// bare tag says the image got no name.
func TestLoadBareTag(t *testing.T) {
	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1.0"})); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "bare.tar")
	tarDir(t, filepath.Join(dir, "layout"), archive)
	r := lading(t, "", "load", "--root", t.TempDir(), "-i", archive)
	d, _ := img.Digest()
	if r.code != 0 || strings.TrimSpace(r.stdout) != d.String() || !strings.Contains(r.stderr, `loaded without a name`) || !strings.Contains(r.stderr, `"1.0"`) {
		t.Errorf("load: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func tarDir(t *testing.T, dir, archive string) {
	t.Helper()
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}
