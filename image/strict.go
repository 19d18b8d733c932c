package image

import (
	"bytes"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Limits on the metadata of images lading reads from archives and
// registries: generous for real images, small enough that a hostile one
// cannot make lading allocate much.
const (
	maxIndexSize    = 4 << 20  // index.json, image indexes
	maxManifestSize = 4 << 20  // image manifests
	maxConfigSize   = 16 << 20 // image configs (history of many layers)
	maxLayers       = 1000     // layers of one image (overlay stacks far fewer)
	maxLayerSize    = 1 << 40  // one layer: 1 TiB
)

// MaxConfigSize is the largest image config lading reads, from archives,
// registries and remote caches.
const MaxConfigSize = maxConfigSize

// ErrBadImage is returned (wrapped) for an image whose manifest or config
// lading refuses: absurd sizes, too many layers, diff_ids that do not
// match the layers.
var ErrBadImage = errors.New("bad image")

// ErrUnsupportedMediaType is returned (wrapped) for a layer, config or
// manifest whose media type lading cannot decode.
var ErrUnsupportedMediaType = errors.New("unsupported media type")

// decodableLayer reports whether lading can unpack a layer of this media
// type (see storeLayer.Uncompressed).
func decodableLayer(mt types.MediaType) bool {
	switch mt {
	case types.OCILayer, types.OCIRestrictedLayer, types.OCILayerZStd,
		types.OCIUncompressedLayer, types.OCIUncompressedRestrictedLayer,
		types.DockerLayer, types.DockerForeignLayer, types.DockerUncompressedLayer:
		return true
	}
	return false
}

// checkManifest checks what an image manifest says before any blob it
// names is read: its config and layer media types and sizes.
func checkManifest(m *v1.Manifest) error {
	if mt := m.MediaType; mt != "" && mt != types.OCIManifestSchema1 && mt != types.DockerManifestSchema2 {
		return fmt.Errorf("%w: manifest is %q", ErrUnsupportedMediaType, mt)
	}
	switch m.Config.MediaType {
	case types.OCIConfigJSON, types.DockerConfigJSON:
	default:
		return fmt.Errorf("%w: config %s is %q, not an image config", ErrUnsupportedMediaType, m.Config.Digest, m.Config.MediaType)
	}
	if m.Config.Size < 0 || m.Config.Size > maxConfigSize {
		return fmt.Errorf("%w: config %s claims %d bytes (limit %d)", ErrBadImage, m.Config.Digest, m.Config.Size, maxConfigSize)
	}
	if len(m.Layers) > maxLayers {
		return fmt.Errorf("%w: %d layers (limit %d)", ErrBadImage, len(m.Layers), maxLayers)
	}
	for _, l := range m.Layers {
		if !decodableLayer(l.MediaType) {
			return fmt.Errorf("%w: unsupported layer media type %q (layer %s)", ErrUnsupportedMediaType, l.MediaType, l.Digest)
		}
		if l.Size < 0 || l.Size > maxLayerSize {
			return fmt.Errorf("%w: layer %s claims %d bytes", ErrBadImage, l.Digest, l.Size)
		}
	}
	return nil
}

// parseConfig parses an image config and checks it against its manifest.
func parseConfig(raw []byte, m *v1.Manifest) (*v1.ConfigFile, error) {
	if len(raw) > maxConfigSize {
		return nil, fmt.Errorf("%w: config is larger than %d bytes", ErrBadImage, maxConfigSize)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing config %s: %w", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("%w: %d layers but %d diff_ids in config %s", ErrBadImage, len(m.Layers), len(cfg.RootFS.DiffIDs), m.Config.Digest)
	}
	return cfg, nil
}

// isManifestType reports whether an index entry's media type is an image
// manifest or a nested index (the only things an index may point at).
func isManifestType(mt types.MediaType) bool {
	switch mt {
	case types.OCIManifestSchema1, types.DockerManifestSchema2, types.OCIImageIndex, types.DockerManifestList:
		return true
	}
	return false
}
