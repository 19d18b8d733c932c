package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/internal/testutil"
	"github.com/lading-build/lading/store"
)

// storedImage saves a random image in a new store at root, names it and
// returns its digest.
func storedImage(t *testing.T, root, name string) string {
	t.Helper()
	st, err := store.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	d, err := image.Save(context.Background(), st, img)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Tag(name, d.String()); err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// ok runs lading and fails the test unless it exits 0.
func ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := lading(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("lading %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return r.stdout
}

// TestImageCommands: push, pull, tag, inspect, save, load and rmi against
// a real docker-registry.
func TestImageCommands(t *testing.T) {
	reg := testutil.StartRegistry(t, false)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	r1, r2, r3 := t.TempDir(), t.TempDir(), t.TempDir()
	d := storedImage(t, r1, "app:1")
	remote := reg.Host + "/team/app:1"

	if got := strings.TrimSpace(ok(t, "", "push", "-q", "--root", r1, "app:1", remote)); got != d {
		t.Fatalf("push printed %q, want %s", got, d)
	}
	if got := strings.TrimSpace(ok(t, "", "pull", "-q", "--root", r2, remote)); got != d {
		t.Fatalf("pull printed %q, want %s", got, d)
	}
	if out := ok(t, "", "images", "--root", r2); !strings.Contains(out, remote) {
		t.Errorf("images does not list %s:\n%s", remote, out)
	}
	ok(t, "", "tag", "--root", r2, remote, "mine:2")
	var inspected struct {
		Digest   string
		Manifest struct{ Layers []struct{ Digest string } }
		Config   struct {
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
	}
	if err := json.Unmarshal([]byte(ok(t, "", "inspect", "--root", r2, "mine:2")), &inspected); err != nil {
		t.Fatal(err)
	}
	if inspected.Digest != d || len(inspected.Manifest.Layers) != 2 || len(inspected.Config.RootFS.DiffIDs) != 2 {
		t.Errorf("inspect: %+v", inspected)
	}

	for _, format := range []string{"oci", "docker"} {
		archive := filepath.Join(t.TempDir(), format+".tar")
		ok(t, "", "save", "--root", r2, "--format", format, "-o", archive, "mine:2")
		out := ok(t, "", "load", "--root", r3, "-i", archive)
		if !strings.HasPrefix(out, d+" ") {
			t.Errorf("load of the %s archive printed %q, want %s and names", format, out, d)
		}
		if got := strings.TrimSpace(ok(t, "", "push", "-q", "--root", r3, "mine:2", reg.Host+"/loaded:"+format)); got != d {
			t.Errorf("push of the loaded %s archive: %s, want %s", format, got, d)
		}
	}

	out := ok(t, "", "rmi", "--root", r2, "mine:2", remote)
	if !strings.Contains(out, "untagged mine:2") || !strings.Contains(out, "untagged "+remote) {
		t.Errorf("rmi printed %q", out)
	}
	if r := lading(t, "", "rmi", "--root", r2, "mine:2"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("rmi of a removed name: exit %d, %q", r.code, r.stderr)
	}
	r := lading(t, "", "pull", "--root", r2, reg.Host+"/team/app:nope")
	want := "pulling " + reg.Host + "/team/app:nope from " + reg.Host + ": manifest unknown"
	if r.code != 1 || !strings.HasPrefix(lastLine(r.stderr), want) {
		t.Errorf("pull of a missing tag: exit %d, last line %q; want %q", r.code, lastLine(r.stderr), want)
	}
}

// TestLoginLogout logs in to a docker-registry with htpasswd auth, pushes
// and pulls with the stored credentials, and logs out.
func TestLoginLogout(t *testing.T) {
	reg := testutil.StartRegistry(t, true)
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	cfgPath := filepath.Join(cfgDir, "config.json")
	if err := os.WriteFile(cfgPath, []byte(`{"auths":{"other.example:5000":{"auth":"eDp5"}},"psFormat":"table"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	d := storedImage(t, root, "app:1")
	dest := reg.Host + "/private/app:1"

	r := lading(t, "", "push", "--root", root, "app:1", dest)
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "to "+reg.Host+": unauthorized") {
		t.Fatalf("push before login: exit %d, %q", r.code, r.stderr)
	}
	r = lading(t, "wrong\n", "login", "-u", reg.User, "--password-stdin", reg.Host)
	if r.code != 1 || !strings.HasPrefix(lastLine(r.stderr), "logging in to "+reg.Host+": unauthorized") {
		t.Fatalf("login with a wrong password: exit %d, %q", r.code, r.stderr)
	}
	if out := ok(t, reg.Password+"\n", "login", "-u", reg.User, "--password-stdin", reg.Host); !strings.Contains(out, "Login Succeeded") {
		t.Errorf("login printed %q", out)
	}
	var cfg struct {
		Auths    map[string]struct{ Auth string }
		PsFormat string
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	want := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	if cfg.Auths[reg.Host].Auth != want || cfg.Auths["other.example:5000"].Auth != "eDp5" || cfg.PsFormat != "table" {
		t.Errorf("config.json after login:\n%s", b)
	}
	if info, err := os.Stat(cfgPath); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode: %v, %v", info.Mode(), err)
	}

	if got := strings.TrimSpace(ok(t, "", "push", "-q", "--root", root, "app:1", dest)); got != d {
		t.Errorf("push after login: %q, want %s", got, d)
	}
	root2 := t.TempDir()
	if got := strings.TrimSpace(ok(t, "", "pull", "-q", "--root", root2, dest)); got != d {
		t.Errorf("pull after login: %q, want %s", got, d)
	}

	if out := ok(t, "", "logout", reg.Host); !strings.Contains(out, "Removing login credentials for "+reg.Host) {
		t.Errorf("logout printed %q", out)
	}
	if out := ok(t, "", "logout", reg.Host); !strings.Contains(out, "Not logged in") {
		t.Errorf("second logout printed %q", out)
	}
	b, _ = os.ReadFile(cfgPath)
	if strings.Contains(string(b), reg.Host) || !strings.Contains(string(b), "other.example:5000") {
		t.Errorf("config.json after logout:\n%s", b)
	}
	r = lading(t, "", "pull", "--root", t.TempDir(), dest)
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "from "+reg.Host+": unauthorized") {
		t.Errorf("pull after logout: exit %d, %q", r.code, r.stderr)
	}
}

// credHelper is a docker credential helper (the store/get/erase/list
// protocol of docker-credential-helpers) keeping one file per server under
// its state directory.
const credHelper = `#!/bin/sh
d=%s
key() { printf %%s "$1" | md5sum | cut -c1-32; }
case "$1" in
store)
	cat > "$d/in"
	url=$(sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p' "$d/in")
	mv "$d/in" "$d/$(key "$url")" ;;
get)
	read -r url
	if [ -f "$d/$(key "$url")" ]; then cat "$d/$(key "$url")"; else echo "credentials not found in native keychain"; exit 1; fi ;;
erase)
	read -r url
	rm -f "$d/$(key "$url")" ;;
list)
	echo '{}' ;;
esac
`

// With credsStore set, login hands the credentials to the helper (docker's
// own config code decides), the config file keeps no secret, pushes find
// them through the helper, and logout erases them there.
func TestLoginCredentialHelper(t *testing.T) {
	reg := testutil.StartRegistry(t, true)
	cfgDir, binDir, state := t.TempDir(), t.TempDir(), t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	t.Setenv("PATH", binDir+":"+os.Getenv("PATH"))
	cfgPath := filepath.Join(cfgDir, "config.json")
	if err := os.WriteFile(cfgPath, []byte(`{"credsStore":"ladingtest"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(binDir, "docker-credential-ladingtest"), []byte(fmt.Sprintf(credHelper, state)), 0o755); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	d := storedImage(t, root, "app:1")
	dest := reg.Host + "/private/app:1"

	ok(t, reg.Password+"\n", "login", "-u", reg.User, "--password-stdin", reg.Host)
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"auth"`) || !strings.Contains(string(b), `"credsStore": "ladingtest"`) {
		t.Errorf("config.json after login keeps a secret or lost credsStore:\n%s", b)
	}
	stored, _ := os.ReadDir(state)
	if len(stored) != 1 {
		t.Fatalf("helper holds %d credentials, want 1", len(stored))
	}
	if b, _ := os.ReadFile(filepath.Join(state, stored[0].Name())); !strings.Contains(string(b), `"Secret":"`+reg.Password+`"`) {
		t.Errorf("helper got %s", b)
	}
	if got := strings.TrimSpace(ok(t, "", "push", "-q", "--root", root, "app:1", dest)); got != d {
		t.Errorf("push through the helper's credentials: %q, want %s", got, d)
	}
	if out := ok(t, "", "logout", reg.Host); !strings.Contains(out, "Removing login credentials for "+reg.Host) {
		t.Errorf("logout printed %q", out)
	}
	if left, _ := os.ReadDir(state); len(left) != 0 {
		t.Errorf("helper still holds %d credentials after logout", len(left))
	}
	r := lading(t, "", "push", "--root", root, "app:1", dest)
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "unauthorized") {
		t.Errorf("push after logout: exit %d, %q", r.code, r.stderr)
	}
}
