package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-build/lading/internal/testutil"
	"github.com/lading-build/lading/runtime"
)

// The test binary doubles as lading: with cliEnv set it runs main.
const cliEnv = "LADING_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) != "" {
		main()
		return
	}
	runtime.Init()
	os.Exit(m.Run())
}

type result struct {
	code           int
	stdout, stderr string
}

// lading runs the CLI with args and returns its exit code and output.
func lading(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runLading(t, stdin, nil, args...)
}

// ladingEnv runs the CLI with extra environment variables.
func ladingEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runLading(t, "", env, args...)
}

func runLading(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), cliEnv+"=1"), env...)
	cmd.Stdin = strings.NewReader(stdin)
	return runCmd(t, cmd)
}

// runCmd runs cmd and returns its exit code and output.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMalformedRecipes: every bad recipe exits 1 with "FILE:LINE: message"
// as the last line, never a panic.
func TestMalformedRecipes(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name, recipe, want string
	}{
		{"garbage", "FROM scratch\n\x00\x01\x02\xff\xfe garbage \x7f\n", "Recipe:2: "},
		{"unknown instruction", "FROM scratch\nFROBNICATE x\n", "Recipe:2: "},
		{"bad flag", "FROM scratch\nCOPY --bogus=1 a /b\n", "Recipe:2: "},
		{"unterminated heredoc", "FROM scratch\nRUN <<EOF\necho hi\n", "Recipe:2: "},
		{"unknown stage index", "FROM scratch\nCOPY --from=7 /a /b\n", "Recipe:2: "},
		{"no from", "COPY a /b\n", "Recipe:1: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"Recipe": tt.recipe, "a": "a"})
			r := lading(t, "", "build", "--root", root, dir)
			if r.code != 1 {
				t.Fatalf("exit code %d, want 1; stderr:\n%s", r.code, r.stderr)
			}
			if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
				t.Fatalf("panicked:\n%s", r.stderr)
			}
			if got := lastLine(r.stderr); !strings.HasPrefix(got, tt.want) {
				t.Fatalf("last line %q, want prefix %q", got, tt.want)
			}
		})
	}
	r := lading(t, "", "build", "--root", root, "--target", "nosuch", writeRecipe(t, "FROM scratch AS a\n"))
	if r.code != 1 || !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("--target nosuch: exit %d, stderr %q", r.code, r.stderr)
	}
}

func writeRecipe(t *testing.T, recipe string) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Recipe": recipe})
	return dir
}

// TestBuildOutputs builds with every output type and checks them with
// skopeo, the store listing and the rootfs directory.
func TestBuildOutputs(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "skopeo")
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY hello.txt /etc/hello.txt\nCMD [\"/hello\"]\n",
		"hello.txt":  "hello\n",
	})
	out := t.TempDir()
	r := lading(t, "", "build", "--root", root, "-t", "demo:1.0", "-t", "demo:latest",
		"--output", "type=oci,dest="+filepath.Join(out, "oci.tar"),
		"--output", "type=docker,dest="+filepath.Join(out, "docker.tar"),
		"--output", "type=local,dest="+filepath.Join(out, "rootfs"),
		dir)
	if r.code != 0 {
		t.Fatalf("build failed (%d):\n%s", r.code, r.stderr)
	}
	digest := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("stdout %q is not a digest", r.stdout)
	}
	var oci struct {
		Digest string
		Layers []string
	}
	inspect(t, "oci-archive:"+filepath.Join(out, "oci.tar")+":1.0", &oci)
	if oci.Digest != digest || len(oci.Layers) != 1 {
		t.Errorf("skopeo oci-archive: digest %s layers %d; want %s and 1 layer", oci.Digest, len(oci.Layers), digest)
	}
	var docker struct {
		Layers []string
		Config struct{ Cmd []string }
	}
	inspect(t, "docker-archive:"+filepath.Join(out, "docker.tar")+":demo:1.0", &docker)
	if len(docker.Layers) != 1 {
		t.Errorf("skopeo docker-archive: %d layers, want 1", len(docker.Layers))
	}
	if b, err := os.ReadFile(filepath.Join(out, "rootfs/etc/hello.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("local output: %q, %v", b, err)
	}
	r = lading(t, "", "images", "--root", root)
	if !strings.Contains(r.stdout, "demo:1.0") || !strings.Contains(r.stdout, digest) {
		t.Errorf("lading images does not list demo:1.0 %s:\n%s", digest, r.stdout)
	}
	// A recipe on stdin builds the same image.
	r = lading(t, "FROM scratch\nCOPY hello.txt /etc/hello.txt\nCMD [\"/hello\"]\n", "build", "--root", root, "--progress", "quiet", "-f", "-", dir)
	if r.code != 0 {
		t.Fatalf("stdin build failed:\n%s", r.stderr)
	}
}

func inspect(t *testing.T, ref string, v any) {
	t.Helper()
	out, err := exec.Command("skopeo", "inspect", ref).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("parsing skopeo output: %v", err)
	}
}

// TestBuildFromStdin: `lading build -` reads a tar context from stdin, as
// docker does, and gives the image a directory build of the same files
// gives; a recipe alone on stdin builds with an empty context.
func TestBuildFromStdin(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY hello.txt /etc/hello.txt\n",
		"hello.txt":  "hello\n",
	})
	var tarball bytes.Buffer
	tar := exec.Command("tar", "-C", dir, "-cz", "--sort=name", ".")
	tar.Stdout = &tarball
	if err := tar.Run(); err != nil {
		t.Fatal(err)
	}
	fromDir := ok(t, "", "build", "--root", root, "--progress", "quiet", dir)
	fromStdin := ok(t, tarball.String(), "build", "--root", root, "--progress", "quiet", "-")
	if fromStdin != fromDir {
		t.Errorf("build - gave %q, the directory build %q", fromStdin, fromDir)
	}
	recipeOnly := ok(t, "FROM scratch\nLABEL stdin=yes\n", "build", "--root", root, "--progress", "quiet", "-t", "onlyrecipe", "-")
	if !strings.HasPrefix(recipeOnly, "sha256:") {
		t.Errorf("recipe on stdin: %q", recipeOnly)
	}
	r := lading(t, "FROM scratch\n", "build", "--root", root, "-f", "-", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot both come from stdin") {
		t.Errorf("-f - with context -: exit %d, %q", r.code, r.stderr)
	}
}
