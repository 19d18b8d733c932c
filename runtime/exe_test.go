package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/lading-build/lading/runtime/initbin"
)

// startedInit runs one container and returns the hex SHA-256 of the
// program its init was executed from and the init's command line, both
// read from /proc/<pid> while the init waits for its config.
func startedInit(t *testing.T) (sum, cmdline string) {
	t.Helper()
	root := newRootfs(t)
	var readErr error
	initStarted = func(pid int) {
		sum, readErr = fileSum(fmt.Sprintf("/proc/%d/exe", pid))
		if readErr == nil {
			var b []byte
			b, readErr = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			cmdline = string(b)
		}
	}
	defer func() { initStarted = nil }()
	if got := shOK(t, Spec{Rootfs: root}, "echo ok"); got != "ok\n" {
		t.Errorf("container printed %q", got)
	}
	must(t, readErr)
	if sum == "" {
		t.Fatal("Run did not report the init it started")
	}
	return sum, cmdline
}

func fileSum(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TestEmbeddedInit checks that a build with the init program embedded
// (make test, make build) starts every container from it, not from
// lading itself.
func TestEmbeddedInit(t *testing.T) {
	needRoot(t)
	if initbin.Digest == "" {
		t.Skip("built without the embedded init (make test embeds it)")
	}
	if initbin.Binary() == nil {
		t.Fatalf("initbin.Digest is %s, but the embedded init is missing or has another digest", initbin.Digest)
	}
	sum, cmdline := startedInit(t)
	if sum != initbin.Digest {
		self, err := fileSum("/proc/self/exe")
		must(t, err)
		t.Fatalf("init ran from a binary with SHA-256 %s, want the embedded init's %s (this binary's is %s)", sum, initbin.Digest, self)
	}
	if cmdline != "lading-init\x00" {
		t.Errorf("init command line %q", cmdline)
	}
}

// TestSelfExecInit checks the fallback of a build without the embedded
// init: the container's init is this binary itself (its Init).
func TestSelfExecInit(t *testing.T) {
	needRoot(t)
	forceSelfExec.Store(true)
	defer forceSelfExec.Store(false)
	sum, cmdline := startedInit(t)
	self, err := fileSum("/proc/self/exe")
	must(t, err)
	if sum != self {
		t.Fatalf("init ran from a binary with SHA-256 %s, want this binary's %s", sum, self)
	}
	if cmdline != "lading-init\x00" {
		t.Errorf("init command line %q", cmdline)
	}
	// The same again, and a setup error, through the fallback.
	root := newRootfs(t)
	if got := shOK(t, Spec{Rootfs: root, User: "app"}, "id -u"); got != "1000\n" {
		t.Errorf("id -u printed %q", got)
	}
	_, _, err = sh(t, Spec{Rootfs: root, Cwd: "/etc/passwd"}, "true")
	if err == nil {
		t.Error("a file as working directory did not fail the setup")
	}
}
