package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lading-build/lading/internal/testutil"
)

// multiBase builds, in root, a two-platform busybox base named
// "busybox:multi" from Debian's amd64 and arm64 busybox-static, with
// lading itself (each platform copies its own rootfs).
func multiBase(t *testing.T, root string) {
	t.Helper()
	dir := t.TempDir()
	testutil.BusyboxRootfsArch(t, filepath.Join(dir, "rootfs-amd64"), "amd64")
	testutil.BusyboxRootfsArch(t, filepath.Join(dir, "rootfs-arm64"), "arm64")
	writeFiles(t, dir, map[string]string{"Recipe": "FROM scratch\nARG TARGETARCH\nCOPY rootfs-$TARGETARCH/ /\n"})
	r := lading(t, "", "build", "--root", root, "--progress", "quiet", "--platform", "linux/amd64,linux/arm64", "-t", "busybox:multi", dir)
	if r.code != 0 {
		t.Fatalf("base build: %s", r.stderr)
	}
}

// requireArm64Emulation skips unless QEMU's arm64 handler is registered
// (make test registers it).
func requireArm64Emulation(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-aarch64")
	if err != nil || !strings.HasPrefix(string(data), "enabled") {
		t.Skip("no binfmt_misc handler for arm64 (make test enables qemu-user-static's)")
	}
}

const multiRecipe = `FROM --platform=$BUILDPLATFORM busybox:multi AS shared
ARG BUILDPLATFORM
RUN echo "$BUILDPLATFORM $(uname -m)" > /shared
FROM busybox:multi
COPY --from=shared /shared /shared
ARG TARGETPLATFORM BUILDPLATFORM
RUN uname -m > /arch && echo "$TARGETPLATFORM $BUILDPLATFORM" > /args
`

// TestMultiPlatformBuild is issue 11's done-when test: a two-platform
// build gives an OCI index with one manifest per platform, each image's
// RUN ran on its architecture, the --platform=$BUILDPLATFORM stage ran
// once, skopeo reads and copies the archive, the pushed index lists both
// platforms and a rebuild is fully cached.
func TestMultiPlatformBuild(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "skopeo")
	requireArm64Emulation(t)
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	multiBase(t, root)
	reg := testutil.StartRegistry(t, false)

	app := writeRecipe(t, multiRecipe)
	out := t.TempDir()
	archive := filepath.Join(out, "app.tar")
	args := []string{"build", "--root", root, "--progress", "json", "--platform", "linux/amd64,linux/arm64",
		"--insecure-registry", reg.Host, "-t", reg.Host + "/app:1", "--push",
		"--cache-to", "type=registry,ref=" + reg.Host + "/cache:1,mode=max",
		"-o", "type=oci,dest=" + archive, "-o", "type=local,dest=" + filepath.Join(out, "fs"), app}
	r := lading(t, "", args...)
	if r.code != 0 {
		t.Fatalf("build failed (%d):\n%s", r.code, r.stderr)
	}
	digest := strings.TrimSpace(r.stdout)

	// The shared stage's RUN ran once, and for no platform in particular.
	runs := 0
	for _, e := range jsonEvents(t, r.stderr) {
		if e.Type == "done" && strings.HasPrefix(e.Text, "RUN echo") {
			runs++
			if e.Cached || e.Stage != "shared" {
				t.Errorf("shared RUN event: %+v", e)
			}
		}
	}
	if runs != 1 {
		t.Errorf("the shared stage's RUN ran %d times, want 1", runs)
	}

	// The archive's index: two manifests with their platforms.
	raw, err := exec.Command("skopeo", "inspect", "--raw", "oci-archive:"+archive).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --raw: %v", err)
	}
	idx, err := v1.ParseIndexManifest(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("parsing %s: %v", raw, err)
	}
	var plats []string
	for _, m := range idx.Manifests {
		if m.Platform != nil {
			plats = append(plats, m.Platform.String())
		}
	}
	if strings.Join(plats, " ") != "linux/amd64 linux/arm64" {
		t.Errorf("index platforms = %v\n%s", plats, raw)
	}
	if d, _, _ := v1.SHA256(strings.NewReader(string(raw))); d.String() != digest {
		t.Errorf("archive index is %s, lading printed %s", d, digest)
	}

	// Each platform's files: RUN ran on its architecture; the shared stage
	// on the build machine, whose platform BUILDPLATFORM names.
	want := map[string][2]string{"linux_amd64": {"x86_64", "linux/amd64"}, "linux_arm64": {"aarch64", "linux/arm64"}}
	for dir, w := range want {
		files := readFiles(t, filepath.Join(out, "fs", dir), "arch", "args", "shared")
		if files["arch"] != w[0]+"\n" || files["args"] != w[1]+" linux/amd64\n" || files["shared"] != "linux/amd64 x86_64\n" {
			t.Errorf("%s: %q", dir, files)
		}
	}

	// skopeo copies the whole index out of the archive.
	if b, err := exec.Command("skopeo", "copy", "--all", "oci-archive:"+archive, "oci:"+filepath.Join(out, "layout")).CombinedOutput(); err != nil {
		t.Errorf("skopeo copy --all: %v\n%s", err, b)
	}

	// The registry has the index and both images.
	raw, err = exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+reg.Host+"/app:1").Output()
	if err != nil {
		t.Fatalf("skopeo inspect registry: %v", err)
	}
	if d, _, _ := v1.SHA256(strings.NewReader(string(raw))); d.String() != digest {
		t.Errorf("registry has %s, lading printed %s", d, digest)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		b, err := exec.Command("skopeo", "inspect", "--config", "--tls-verify=false", "--override-arch", arch, "docker://"+reg.Host+"/app:1").Output()
		var cfg v1.ConfigFile
		if err == nil {
			err = json.Unmarshal(b, &cfg)
		}
		if err != nil || cfg.Architecture != arch {
			t.Errorf("registry image for %s: %v, architecture %q", arch, err, cfg.Architecture)
		}
	}

	// lading push sends a stored index whole.
	if r := lading(t, "", "push", "--root", root, "--insecure-registry", reg.Host, reg.Host+"/app:1", reg.Host+"/copy:1"); r.code != 0 || strings.TrimSpace(r.stdout) != digest {
		t.Errorf("push of the index: exit %d, %q, want %s\n%s", r.code, r.stdout, digest, r.stderr)
	}

	// A rebuild is fully cached and gives the same index.
	r = lading(t, "", "build", "--root", root, "--progress", "json", "--platform", "linux/amd64,linux/arm64", app)
	if r.code != 0 {
		t.Fatalf("rebuild failed: %s", r.stderr)
	}
	checkCached(t, "rebuild", r, digest)

	// The registry cache holds the steps of both platforms: a new store
	// with the same base builds nothing.
	baseTar := filepath.Join(out, "base.tar")
	if r := lading(t, "", "save", "--root", root, "-o", baseTar, "busybox:multi"); r.code != 0 {
		t.Fatalf("save: %s", r.stderr)
	}
	fresh := t.TempDir()
	testutil.CheckNoMounts(t, fresh)
	if r := lading(t, "", "load", "--root", fresh, "-i", baseTar); r.code != 0 {
		t.Fatalf("load: %s", r.stderr)
	}
	r = lading(t, "", "build", "--root", fresh, "--progress", "json", "--platform", "linux/amd64,linux/arm64",
		"--insecure-registry", reg.Host, "--cache-from", "type=registry,ref="+reg.Host+"/cache:1", app)
	if r.code != 0 {
		t.Fatalf("build from the registry cache failed: %s", r.stderr)
	}
	checkCached(t, "build from the registry cache", r, digest)
}

// TestMultiPlatformDockerOutput: a docker archive cannot hold several
// platforms, and the error says what to use instead.
func TestMultiPlatformDockerOutput(t *testing.T) {
	app := writeRecipe(t, "FROM scratch\n")
	r := lading(t, "", "build", "--root", t.TempDir(), "--platform", "linux/amd64,linux/arm64", "-o", "type=docker,dest="+filepath.Join(t.TempDir(), "x.tar"), app)
	if r.code == 0 || !strings.Contains(r.stderr, "use type=oci or --push") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// checkCached fails unless the build r (--progress json) ran no RUN or
// COPY step and made the index digest.
func checkCached(t *testing.T, what string, r result, digest string) {
	t.Helper()
	for _, e := range jsonEvents(t, r.stderr) {
		if e.Type == "done" && !e.Cached && (strings.HasPrefix(e.Text, "RUN") || strings.HasPrefix(e.Text, "COPY")) {
			t.Errorf("%s ran %s (%s)", what, e.Text, e.Stage)
		}
	}
	if got := strings.TrimSpace(r.stdout); got != digest {
		t.Errorf("%s made %s, want %s", what, got, digest)
	}
}

type jsonEvent struct {
	Type, Stage, Text string
	Cached            bool
}

func jsonEvents(t *testing.T, s string) []jsonEvent {
	t.Helper()
	var evs []jsonEvent
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var e jsonEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Type != "" {
			evs = append(evs, e)
		}
	}
	return evs
}

func readFiles(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Errorf("%v", err)
		}
		out[n] = string(b)
	}
	return out
}

// TestPlatformBaseSelection: FROM an OCI archive holding an index takes
// the image of the stage's platform (arm64 also when asked as
// arm64/v8), and a single-platform base of another platform is used with
// a warning, as BuildKit does.
func TestPlatformBaseSelection(t *testing.T) {
	testutil.RequireRoot(t)
	requireArm64Emulation(t)
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	multiBase(t, root)
	archive := filepath.Join(t.TempDir(), "base.tar")
	if r := lading(t, "", "save", "--root", root, "-o", archive, "busybox:multi"); r.code != 0 {
		t.Fatalf("save: %s", r.stderr)
	}
	// load keeps both platforms; images and inspect show them.
	loaded := t.TempDir()
	if r := lading(t, "", "load", "--root", loaded, "-i", archive); r.code != 0 {
		t.Fatalf("load: %s", r.stderr)
	}
	if r := lading(t, "", "images", "--root", loaded); !strings.Contains(r.stdout, "linux/amd64,linux/arm64") {
		t.Errorf("images does not show the platforms:\n%s%s", r.stdout, r.stderr)
	}
	var ins struct{ Index v1.IndexManifest }
	if r := lading(t, "", "inspect", "--root", loaded, "busybox:multi"); json.Unmarshal([]byte(r.stdout), &ins) != nil || len(ins.Index.Manifests) != 2 {
		t.Errorf("inspect of the index: %s%s", r.stdout, r.stderr)
	}
	var one struct{ Config v1.ConfigFile }
	if r := lading(t, "", "inspect", "--root", loaded, "--platform", "linux/arm64", "busybox:multi"); json.Unmarshal([]byte(r.stdout), &one) != nil || one.Config.Architecture != "arm64" {
		t.Errorf("inspect --platform linux/arm64: %s%s", r.stdout, r.stderr)
	}

	out := t.TempDir()
	app := writeRecipe(t, "FROM oci-archive:"+archive+"\nRUN uname -m > /arch\n")
	r := lading(t, "", "build", "--root", t.TempDir(), "--progress", "plain", "--platform", "linux/arm64/v8", "-o", "type=local,dest="+out, app)
	if r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	if got := readFiles(t, out, "arch")["arch"]; got != "aarch64\n" {
		t.Errorf("arm64 build from the archive's index ran on %q", got)
	}

	// busybox:multi's amd64 image alone, then built for arm64.
	single := writeRecipe(t, "FROM busybox:multi\n")
	if r := lading(t, "", "build", "--root", root, "--progress", "quiet", "--platform", "linux/amd64", "-t", "busybox:amd64", single); r.code != 0 {
		t.Fatalf("single build: %s", r.stderr)
	}
	app = writeRecipe(t, "FROM busybox:amd64\nRUN uname -m > /arch\n")
	out = t.TempDir()
	r = lading(t, "", "build", "--root", root, "--progress", "plain", "--pull=never", "--platform", "linux/arm64", "-o", "type=local,dest="+out, app)
	if r.code != 0 {
		t.Fatalf("mismatched base: %s", r.stderr)
	}
	if !strings.Contains(r.stderr, "the image is for linux/amd64, not linux/arm64") {
		t.Errorf("no warning for the amd64 base of an arm64 build:\n%s", r.stderr)
	}
	if got := readFiles(t, out, "arch")["arch"]; got != "x86_64\n" {
		t.Errorf("the amd64 base's RUN ran on %q", got)
	}
}
