package testutil

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Registry is a real docker-registry (Debian's docker-registry package,
// the distribution registry) serving plain http on 127.0.0.1 for one test.
type Registry struct {
	Host     string // 127.0.0.1:PORT
	User     string // set when started with auth
	Password string
}

// Credentials of registries started with auth. The htpasswd entry is the
// bcrypt hash (golang.org/x/crypto/bcrypt, cost 4) of registryPassword;
// docker-registry accepts only bcrypt.
const (
	registryUser     = "lading"
	registryPassword = "s3cret-pass"
	registryHtpasswd = "lading:$2a$04$vAIMzWQARTq6xt.gXUvn3eDsqwP7Vs0rkP/2o8/CIIc9LZToLiNne\n"
)

// StartRegistry starts docker-registry with its storage in a temp dir, on
// a free 127.0.0.1 port, waits until it answers /v2/ and stops it when
// the test ends. With auth it requires basic auth (Registry.User and
// Password). The test is skipped when docker-registry is not installed.
func StartRegistry(t testing.TB, auth bool) *Registry {
	t.Helper()
	bin := RequireTool(t, "docker-registry")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	host := l.Addr().String()
	must(t, l.Close())
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), host)
	r := &Registry{Host: host}
	if auth {
		must(t, os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(registryHtpasswd), 0o600))
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: lading-test\n    path: %s\n", filepath.Join(dir, "htpasswd"))
		r.User, r.Password = registryUser, registryPassword
	}
	cfgPath := filepath.Join(dir, "config.yml")
	must(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	cmd := exec.Command(bin, "serve", cfgPath)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	must(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("docker-registry exited:\n%s", logs.String())
		default:
		}
		resp, err := client.Get("http://" + host + "/v2/")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
			return r
		}
	}
	t.Fatalf("docker-registry on %s did not answer /v2/:\n%s", host, logs.String())
	return nil
}
