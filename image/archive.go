package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ArchiveEntry is one image in an archive file: Ref is what to hand to
// ImportArchive for it, Names the image names the archive gives it.
type ArchiveEntry struct {
	Ref   string
	Names []string
	// BareTags are the org.opencontainers.image.ref.name values of an OCI
	// archive that are only a tag ("1.0"), which name no image.
	BareTags []string
}

// ArchiveContents lists the images of an archive file for ImportArchive.
// An OCI image layout (skopeo's and lading's archives, and `docker save`
// of Docker 25 and later) gives one entry per manifest in index.json,
// named by its io.containerd.image.name annotation, or by its
// org.opencontainers.image.ref.name when that is a whole name and not
// just a tag; an older `docker save` tar gives one entry per element of
// manifest.json, named by its RepoTags. Only the first unnamed image of
// an archive can be imported.
func ArchiveContents(path string) ([]ArchiveEntry, error) {
	index, manifest, err := archiveMeta(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	switch {
	case index != nil:
		return ociEntries(path, index)
	case manifest != nil:
		return dockerEntries(path, manifest)
	}
	return nil, fmt.Errorf("reading %s: %w: neither index.json nor manifest.json", path, ErrBadArchive)
}

// archiveMeta returns index.json and manifest.json of a tar (nil when
// absent).
func archiveMeta(path string) (index, manifest []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	err = walkTar(context.Background(), f, func(name string, h *tar.Header, _ tarEntry, tr *tar.Reader) error {
		if h.Typeflag != tar.TypeReg || (name != "index.json" && name != "manifest.json") {
			return nil
		}
		b, err := readMeta(tr, name, h.Size)
		if name == "index.json" {
			index = b
		} else {
			manifest = b
		}
		return err
	})
	return index, manifest, err
}

func ociEntries(path string, index []byte) ([]ArchiveEntry, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(index))
	if err != nil {
		return nil, fmt.Errorf("parsing index.json: %w", err)
	}
	var out []ArchiveEntry
	byDigest := map[v1.Hash]int{}
	for i, d := range idx.Manifests {
		sel, n := "", ""
		if c := d.Annotations[AnnotationContainerdName]; c != "" {
			sel, n = c, c
		} else if r := d.Annotations[AnnotationRefName]; r != "" {
			sel = r
			if strings.ContainsAny(r, ":@/") {
				n = r
			}
		}
		if sel == "" && i > 0 {
			continue
		}
		j, ok := byDigest[d.Digest]
		if !ok {
			ref := "oci-archive:" + path
			if sel != "" {
				ref += ":" + sel
			}
			out = append(out, ArchiveEntry{Ref: ref})
			j = len(out) - 1
			byDigest[d.Digest] = j
		}
		if n != "" {
			out[j].Names = append(out[j].Names, n)
		} else if sel != "" {
			out[j].BareTags = append(out[j].BareTags, sel)
		}
	}
	return out, nil
}

func dockerEntries(path string, manifest []byte) ([]ArchiveEntry, error) {
	var m []dockerManifestEntry
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("parsing manifest.json: %w", err)
	}
	var out []ArchiveEntry
	for i, e := range m {
		switch {
		case len(e.RepoTags) > 0:
			out = append(out, ArchiveEntry{Ref: "docker-archive:" + path + ":" + e.RepoTags[0], Names: e.RepoTags})
		case i == 0:
			out = append(out, ArchiveEntry{Ref: "docker-archive:" + path})
		}
	}
	return out, nil
}
