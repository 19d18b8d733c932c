package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// RemoteOptions configures how Pull and Push talk to registries. The zero
// value pulls for linux/<GOARCH> over https with the credentials of
// ~/.docker/config.json and 2 retries.
type RemoteOptions struct {
	// Platform selects the image of an index; nil means linux/<GOARCH>.
	Platform *v1.Platform
	// Insecure lists registries (host or host:port, as in image names)
	// reached over plain http. 127.0.0.1, localhost and private addresses
	// fall back to http anyway, like docker does.
	Insecure []string
	// Mirrors maps a registry host ("docker.io" or "index.docker.io" for
	// Docker Hub) to mirror hosts tried in order before it, for pulls.
	Mirrors map[string][]string
	// Keychain finds credentials; nil means authn.DefaultKeychain, which
	// reads $DOCKER_CONFIG/config.json (default ~/.docker/config.json)
	// and its credential helpers.
	Keychain authn.Keychain
	// Retries is how many times a request failing with a transient error
	// (connection reset, 5xx, 429, truncated body) is retried, with
	// exponential backoff from 1s. 0 means 2; negative means none.
	Retries int
	// Jobs is how many blobs are transferred at once; 0 means 4.
	Jobs int
	// Progress, when set, receives one line per step (a blob fetched or
	// found, a mirror skipped).
	Progress func(string)
}

// RemoteError is the error of a failed Pull or Push: one line naming the
// image, the registry and what went wrong, e.g. "pulling debian:12 from
// index.docker.io: unauthorized: authentication required". It unwraps to
// the underlying error (a *transport.Error, a net error, context.Canceled).
type RemoteError struct {
	Op       string // "pulling", "pushing", "logging in to"
	Ref      string // the reference as the caller wrote it; "" for logins
	Registry string // the registry host
	Err      error
}

func (e *RemoteError) Error() string {
	if e.Ref == "" {
		return fmt.Sprintf("%s %s: %s", e.Op, e.Registry, describe(e.Err))
	}
	prep := "from"
	if e.Op == "pushing" {
		prep = "to"
	}
	return fmt.Sprintf("%s %s %s %s: %s", e.Op, e.Ref, prep, e.Registry, describe(e.Err))
}

func (e *RemoteError) Unwrap() error { return e.Err }

// describe turns a registry error into one short line: the registry's
// error codes ("unauthorized: authentication required", "manifest
// unknown"), the network error ("dial tcp ...: connection refused"), or
// the error text with line breaks removed.
func describe(err error) string {
	var te *transport.Error
	if errors.As(err, &te) {
		var parts []string
		for _, d := range te.Errors {
			code := strings.ToLower(strings.ReplaceAll(string(d.Code), "_", " "))
			if d.Message == "" || strings.EqualFold(d.Message, code) {
				parts = append(parts, code)
			} else {
				parts = append(parts, code+": "+d.Message)
			}
		}
		if len(parts) == 0 {
			parts = append(parts, fmt.Sprintf("%s (HTTP %d)", strings.ToLower(http.StatusText(te.StatusCode)), te.StatusCode))
		}
		return strings.Join(parts, "; ")
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// CanonicalName returns the fully qualified form of an image reference,
// the form Pull tags images under: "debian", "debian:latest" and
// "docker.io/library/debian" are all "index.docker.io/library/debian:latest";
// "127.0.0.1:5000/app" is "127.0.0.1:5000/app:latest". ok is false for a
// name that is not a valid registry reference (such names can still be
// local image names).
func CanonicalName(ref string) (canonical string, ok bool) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return "", false
	}
	return r.Name(), true
}

// parse parses a reference, as insecure (http) when its registry is in
// o.Insecure.
func (o RemoteOptions) parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return nil, err
	}
	if o.insecure(r.Context().RegistryStr()) {
		return name.ParseReference(ref, name.WeakValidation, name.Insecure)
	}
	return r, nil
}

// insecure reports whether host is listed in o.Insecure; "docker.io"
// stands for Docker Hub's index.docker.io.
func (o RemoteOptions) insecure(host string) bool {
	for _, h := range o.Insecure {
		if registryHost(h) == registryHost(host) {
			return true
		}
	}
	return false
}

// registryHost normalizes Docker Hub's aliases to index.docker.io.
func registryHost(h string) string {
	h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://"), "/")
	if h == "docker.io" || h == "registry-1.docker.io" {
		return name.DefaultRegistry
	}
	return h
}

// mirrors returns the mirror hosts configured for registry host.
func (o RemoteOptions) mirrors(host string) []string {
	var out []string
	for k, v := range o.Mirrors {
		if registryHost(k) == registryHost(host) {
			out = append(out, v...)
		}
	}
	return out
}

func (o RemoteOptions) platform() v1.Platform {
	if o.Platform != nil {
		return *o.Platform
	}
	return HostPlatform()
}

// HostPlatform is the platform of this machine, linux/<GOARCH>.
func HostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}
}

func (o RemoteOptions) jobs() int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return 4
}

func (o RemoteOptions) retries() int {
	switch {
	case o.Retries < 0:
		return 0
	case o.Retries == 0:
		return 2
	}
	return o.Retries
}

func (o RemoteOptions) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// backoff is the wait before retry n (0-based): 1s, 3s, 9s, ... capped.
func backoff(n int) time.Duration {
	d := time.Second
	for i := 0; i < n && d < 30*time.Second; i++ {
		d *= 3
	}
	return d
}

// remoteOptions returns the ggcr options for one operation.
func (o RemoteOptions) remoteOptions(ctx context.Context) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithJobs(o.jobs()),
		remote.WithUserAgent("lading"),
		remote.WithRetryBackoff(remote.Backoff{Duration: time.Second, Factor: 3, Jitter: 0.1, Steps: o.retries() + 1}),
	}
}

// registriesFile is the form of registries.json.
type registriesFile struct {
	Insecure []string            `json:"insecure"`
	Mirrors  map[string][]string `json:"mirrors"`
}

// LoadRemoteConfig reads the first of paths that exists, a JSON file
// {"insecure": ["host:port", ...], "mirrors": {"docker.io": ["mirror:5000"]}},
// into RemoteOptions (only Insecure and Mirrors are set). No file at all
// gives zero options. lading looks at $root/registries.json, then
// /etc/lading/registries.json.
func LoadRemoteConfig(paths ...string) (RemoteOptions, error) {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return RemoteOptions{}, fmt.Errorf("reading registry config: %w", err)
		}
		var f registriesFile
		if err := json.Unmarshal(b, &f); err != nil {
			return RemoteOptions{}, fmt.Errorf("reading registry config %s: %w", p, err)
		}
		return RemoteOptions{Insecure: slices.Clone(f.Insecure), Mirrors: f.Mirrors}, nil
	}
	return RemoteOptions{}, nil
}
