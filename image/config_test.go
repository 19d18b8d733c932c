package image

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestWithExtraKeepsStartInterval(t *testing.T) {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Env: []string{"A=1"}, Healthcheck: &v1.HealthConfig{Test: []string{"CMD", "true"}, Retries: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := WithExtra(img, Extra{HealthStartInterval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(out); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	x, err := ExtraOf(out)
	if err != nil || x.HealthStartInterval != 2*time.Second {
		t.Fatalf("ExtraOf = %+v, %v", x, err)
	}
	raw, _ := out.RawConfigFile()
	if !strings.Contains(string(raw), `"StartInterval":2000000000`) || !strings.Contains(string(raw), `"Retries":3`) || !strings.Contains(string(raw), `"A=1"`) {
		t.Errorf("config lost a field: %s", raw)
	}
	if same, _ := WithExtra(img, Extra{}); same != img {
		t.Error("an empty Extra rewrote the image")
	}
}
