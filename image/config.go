package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
)

// Extra holds the image config fields go-containerregistry's
// v1.ConfigFile lacks, which lading keeps from base images and writes
// into the images it builds.
type Extra struct {
	// HealthStartInterval is config.Healthcheck.StartInterval (HEALTHCHECK
	// --start-interval): how often to probe during the start period.
	HealthStartInterval time.Duration
}

// rawConfig is the part of a config file Extra is read from and written
// into; the embedded v1 types give every other field.
type rawConfig struct {
	v1.ConfigFile
	Config rawContainerConfig `json:"config"`
}

type rawContainerConfig struct {
	v1.Config
	Healthcheck *rawHealth `json:",omitempty"`
}

type rawHealth struct {
	v1.HealthConfig
	StartInterval time.Duration `json:",omitempty"`
}

// ExtraOf reads the fields of Extra from an image's config.
func ExtraOf(img v1.Image) (Extra, error) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return Extra{}, fmt.Errorf("reading image config: %w", err)
	}
	var c struct {
		Config struct {
			Healthcheck *struct{ StartInterval time.Duration }
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return Extra{}, fmt.Errorf("parsing image config: %w", err)
	}
	var x Extra
	if h := c.Config.Healthcheck; h != nil {
		x.HealthStartInterval = h.StartInterval
	}
	return x, nil
}

// WithExtra returns img with the fields of x added to its config (the
// config is written again, so its digest and the manifest change). An
// empty x returns img unchanged.
func WithExtra(img v1.Image, x Extra) (v1.Image, error) {
	if x == (Extra{}) {
		return img, nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	rc := rawConfig{ConfigFile: *cf, Config: rawContainerConfig{Config: cf.Config}}
	if h := cf.Config.Healthcheck; h != nil {
		rc.Config.Healthcheck = &rawHealth{HealthConfig: *h, StartInterval: x.HealthStartInterval}
	}
	raw, err := json.Marshal(rc)
	if err != nil {
		return nil, fmt.Errorf("writing image config: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	m = m.DeepCopy()
	m.Config.Size = int64(len(raw))
	if m.Config.Digest, _, err = v1.SHA256(bytes.NewReader(raw)); err != nil {
		return nil, err
	}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("writing manifest: %w", err)
	}
	return &extraImage{Image: img, rawConfig: raw, manifest: m, rawManifest: rawManifest}, nil
}

// extraImage is an image whose config was rewritten by WithExtra.
type extraImage struct {
	v1.Image
	rawConfig   []byte
	manifest    *v1.Manifest
	rawManifest []byte
}

func (i *extraImage) RawConfigFile() ([]byte, error) { return i.rawConfig, nil }
func (i *extraImage) ConfigName() (v1.Hash, error)   { return i.manifest.Config.Digest, nil }
func (i *extraImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(i.rawConfig))
}
func (i *extraImage) Manifest() (*v1.Manifest, error) { return i.manifest.DeepCopy(), nil }
func (i *extraImage) RawManifest() ([]byte, error)    { return i.rawManifest, nil }
func (i *extraImage) Size() (int64, error)            { return int64(len(i.rawManifest)), nil }
func (i *extraImage) Digest() (v1.Hash, error)        { return partial.Digest(i) }
