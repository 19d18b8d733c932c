package builder

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/image"
)

// image assembles the stage's OCI image: its layers in order, and its
// config with history, created time and platform.
func (r *stageResult) image(opts Options) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	adds := make([]mutate.Addendum, 0, len(r.layers))
	for _, l := range r.layers {
		mt, err := l.MediaType()
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: ociLayerType(mt)})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return nil, err
	}
	appended, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg := r.cfg.DeepCopy()
	cfg.RootFS = appended.RootFS
	cfg.History = r.history
	if n := nonEmpty(cfg.History); n != len(r.layers) {
		return nil, fmt.Errorf("history has %d layer entries for %d layers", n, len(r.layers))
	}
	cfg.Created = v1.Time{Time: r.created(opts)}
	if cfg.OS == "" {
		cfg.OS = opts.Platform.OS
	}
	if cfg.Architecture == "" {
		cfg.Architecture = opts.Platform.Architecture
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	if cfg.Config.Healthcheck == nil {
		return img, nil
	}
	return image.WithExtra(img, r.extra)
}

func nonEmpty(h []v1.History) int {
	n := 0
	for _, e := range h {
		if !e.EmptyLayer {
			n++
		}
	}
	return n
}

// ociLayerType maps Docker layer media types to their OCI equivalents.
func ociLayerType(mt types.MediaType) types.MediaType {
	switch {
	case mt == types.DockerLayer:
		return types.OCILayer
	case mt == types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	case strings.Contains(string(mt), "zstd"):
		return types.OCILayerZStd
	}
	return mt
}

// created is the image's creation time: SOURCE_DATE_EPOCH when set, else
// the latest time in its history (so a cached rebuild is identical).
func (r *stageResult) created(opts Options) time.Time {
	if opts.Epoch != nil {
		return timeOf(opts)
	}
	var latest time.Time
	for _, h := range r.history {
		if h.Created.After(latest) {
			latest = h.Created.Time
		}
	}
	if latest.IsZero() {
		return timeOf(opts)
	}
	return latest.UTC()
}
