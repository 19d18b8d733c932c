package image

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// RegistryHost returns the host a registry argument names, the way image
// names spell it: "https://docker.io/" and "docker.io" are
// "index.docker.io", "127.0.0.1:5000" stays as it is.
func RegistryHost(registry string) string { return registryHost(registry) }

// CheckLogin verifies username and password against registry (a host or
// host:port) the way `docker login` does: it pings /v2/, authenticates
// (basic auth, or a token for registries that want bearer tokens) and
// requires GET /v2/ to succeed. opts.Insecure applies; its keychain does
// not. Errors are *RemoteError: "logging in to 127.0.0.1:5000:
// unauthorized: ...".
func CheckLogin(ctx context.Context, registry, username, password string, opts RemoteOptions) error {
	host := registryHost(registry)
	nopts := []name.Option{name.WeakValidation}
	if opts.insecure(host) {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, nopts...)
	if err != nil {
		return fmt.Errorf("logging in to %s: %w", registry, err)
	}
	if err := checkLogin(ctx, reg, &authn.Basic{Username: username, Password: password}); err != nil {
		return &RemoteError{Op: "logging in to", Registry: host, Err: err}
	}
	return nil
}

func checkLogin(ctx context.Context, reg name.Registry, auth authn.Authenticator) error {
	ch, err := transport.Ping(ctx, reg, remote.DefaultTransport)
	if err != nil {
		return err
	}
	tr, err := transport.NewWithContext(ctx, reg, auth, remote.DefaultTransport, nil)
	if err != nil {
		return err
	}
	scheme := "https"
	if ch.Insecure {
		scheme = "http"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return transport.CheckError(resp, http.StatusOK)
}
