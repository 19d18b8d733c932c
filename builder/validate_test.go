package builder_test

import (
	"strings"
	"testing"
)

// TestValidateBeforeAnyStep: on an image base too, a bad flag that reads
// no variable fails the build before any RUN starts, naming its line.
func TestValidateBeforeAnyStep(t *testing.T) {
	e, ctx := newValidateEnv(t)
	for _, tt := range []struct{ recipe, want string }{
		{"FROM vbase:1\nRUN true\nEXPOSE 99999999/tcp\n", "Recipe:3: "},
		{"FROM vbase:1\nRUN true\nCOPY --chmod=888 a /a\n", "Recipe:3: "},
		{"FROM vbase:1 AS one\nRUN true\nFROM one\nENV M=9\nCOPY --chmod=$M a /a\n", "Recipe:5: "},
	} {
		_, err := e.build(ctx, tt.recipe, nil)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want prefix %q", tt.recipe, err, tt.want)
		}
		for _, s := range e.last.steps {
			if strings.HasPrefix(s.Text, "RUN") {
				t.Errorf("%q: %s started", tt.recipe, s.Text)
			}
		}
	}
}

// TestValidateLeavesBaseVariables: a step reading a variable the base
// image may set is checked when it runs, with the image's value: no
// false alarm from an ARG the image's ENV overrides.
func TestValidateLeavesBaseVariables(t *testing.T) {
	e, ctx := newValidateEnv(t)
	res, err := e.build(ctx, "FROM vbase:1\nARG PORT=not-a-port\nEXPOSE $PORT\nCOPY --chmod=$MODE a /a\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cf.Config.ExposedPorts["80/tcp"]; !ok || len(cf.Config.ExposedPorts) != 1 {
		t.Errorf("exposed ports %v, want 80/tcp", cf.Config.ExposedPorts)
	}
}

// newValidateEnv makes an env with the image vbase:1 (ENV MODE=640
// PORT=80) and a context holding the file a.
func newValidateEnv(t *testing.T) (*env, string) {
	e := newEnv(t)
	base := e.mustBuild(e.context(nil), "FROM scratch\nENV MODE=640 PORT=80\n")
	if err := e.store.Tag("vbase:1", base.Digest.String()); err != nil {
		t.Fatal(err)
	}
	return e, e.context(map[string]string{"a": "a"})
}
