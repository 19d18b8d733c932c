package remotecache

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/lading-build/lading/image"
)

// parseRef parses a cache reference like image.Pull and image.Push do:
// as plain http when its registry is in o.Insecure.
func parseRef(ref string, o image.RemoteOptions) (name.Reference, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return nil, err
	}
	host := image.RegistryHost(r.Context().RegistryStr())
	for _, h := range o.Insecure {
		if image.RegistryHost(h) == host {
			return name.ParseReference(ref, name.WeakValidation, name.Insecure)
		}
	}
	return r, nil
}

// readOptions returns the ggcr options of the reads a source makes, set
// up as image.Push sets up its writes: the keychain (default: docker's
// config), retries of transient failures with backoff from 1s.
func readOptions(ctx context.Context, o image.RemoteOptions) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithUserAgent("lading"),
		remote.WithRetryBackoff(remote.Backoff{Duration: time.Second, Factor: 3, Jitter: 0.1, Steps: retries(o) + 1}),
	}
}

// retries reads RemoteOptions.Retries: 0 means 2, negative none.
func retries(o image.RemoteOptions) int {
	switch {
	case o.Retries < 0:
		return 0
	case o.Retries == 0:
		return 2
	}
	return o.Retries
}

// notFound reports whether a registry said the cache manifest (or its
// whole repository) does not exist.
func notFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

func progress(o image.RemoteOptions, line string) {
	if o.Progress != nil {
		o.Progress(line)
	}
}
