package image

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/internal/testutil"
)

// skopeoDigest returns the manifest digest skopeo sees at ref.
func skopeoDigest(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("skopeo", append([]string{"inspect"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("skopeo inspect %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var v struct{ Digest string }
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v.Digest
}

func runSkopeo(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("skopeo", args...).CombinedOutput(); err != nil {
		t.Fatalf("skopeo %v: %v\n%s", args, err, out)
	}
}

// TestDockerRegistry pushes and pulls against a real docker-registry and
// checks both directions with skopeo.
func TestDockerRegistry(t *testing.T) {
	testutil.RequireTool(t, "skopeo")
	reg := testutil.StartRegistry(t, false)
	ctx := context.Background()

	// lading pushes, skopeo sees the same manifest.
	s := openStore(t)
	d, err := Save(ctx, s, randomImage(t, 64<<10, 3))
	if err != nil {
		t.Fatal(err)
	}
	img, err := Load(s, d.String())
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := Push(ctx, s, img, reg.Host+"/x:1", testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if got := skopeoDigest(t, "--tls-verify=false", "docker://"+reg.Host+"/x:1"); got != pushed.String() || pushed != d {
		t.Errorf("skopeo sees %s; lading pushed %s of %s", got, pushed, d)
	}

	// skopeo pushes an OCI archive, lading pulls the same image.
	archive := filepath.Join(t.TempDir(), "base.tar")
	base := randomImage(t, 32<<10, 2)
	if err := NewOCIArchive(archive, nil).Export(ctx, base); err != nil {
		t.Fatal(err)
	}
	runSkopeo(t, "copy", "--quiet", "--dest-tls-verify=false", "oci-archive:"+archive, "docker://"+reg.Host+"/base:1")
	want := skopeoDigest(t, "--tls-verify=false", "docker://"+reg.Host+"/base:1")
	s2 := openStore(t)
	pulled, err := Pull(ctx, s2, reg.Host+"/base:1", testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, pulled); got.String() != want || got != digestOf(t, base) {
		t.Errorf("lading pulled %s; skopeo sees %s; archive had %s", got, want, digestOf(t, base))
	}
	checkClean(t, s2)
}

// TestDockerRegistryAuth pulls from a docker-registry with htpasswd auth.
func TestDockerRegistryAuth(t *testing.T) {
	reg := testutil.StartRegistry(t, true)
	ctx := context.Background()
	s := openStore(t)
	d, err := Save(ctx, s, randomImage(t, 1024, 1))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := Load(s, d.String())
	_, err = Push(ctx, s, img, reg.Host+"/private:1", testOpts())
	if err == nil || !strings.Contains(err.Error(), "pushing "+reg.Host+"/private:1 to "+reg.Host+": unauthorized") {
		t.Fatalf("anonymous push: %v", err)
	}
	o := testOpts()
	o.Keychain = staticKeychain{reg.Host, reg.User, reg.Password}
	if _, err := Push(ctx, s, img, reg.Host+"/private:1", o); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t)
	_, err = Pull(ctx, s2, reg.Host+"/private:1", testOpts())
	if err == nil || !strings.Contains(err.Error(), "from "+reg.Host+": unauthorized") {
		t.Fatalf("anonymous pull: %v", err)
	}
	o.Keychain = staticKeychain{reg.Host, reg.User, "wrong"}
	if _, err = Pull(ctx, s2, reg.Host+"/private:1", o); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("pull with a wrong password: %v", err)
	}
	o.Keychain = staticKeychain{reg.Host, reg.User, reg.Password}
	if _, err := Pull(ctx, s2, reg.Host+"/private:1", o); err != nil {
		t.Fatal(err)
	}
}
