package remotecache

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/lading-build/lading/image"
)

// Spec says where a cache lives, as written after --cache-to and
// --cache-from.
type Spec struct {
	Type string // "local" or "registry"
	Ref  string // registry: the image reference of the cache manifest
	Dir  string // local: the cache directory
	// Mode is "min" (default) or "max". It is for the builder to read:
	// min exports the steps of the final stage, max those of every stage.
	Mode string
}

// Cache types and modes.
const (
	TypeLocal    = "local"
	TypeRegistry = "registry"
	ModeMin      = "min"
	ModeMax      = "max"
)

// ParseSpec parses "type=registry,ref=host/repo:tag[,mode=max]",
// "type=local,dest=DIR" or "type=local,src=DIR" (both also take mode).
// A bare reference without "=" means type=registry,ref=REF.
func ParseSpec(s string) (Spec, error) {
	if s != "" && !strings.ContainsAny(s, "=,") {
		s = "type=registry,ref=" + s
	}
	var sp Spec
	seen := map[string]bool{}
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || v == "" {
			return Spec{}, fmt.Errorf("cache spec %q: %q is not key=value", s, field)
		}
		if seen[k] {
			return Spec{}, fmt.Errorf("cache spec %q: %s given twice", s, k)
		}
		seen[k] = true
		switch k {
		case "type":
			sp.Type = v
		case "ref":
			sp.Ref = v
		case "dest", "src":
			if sp.Dir != "" {
				return Spec{}, fmt.Errorf("cache spec %q: both src and dest given", s)
			}
			sp.Dir = v
		case "mode":
			sp.Mode = v
		default:
			return Spec{}, fmt.Errorf("cache spec %q: unknown key %q (want type, ref, dest, src, mode)", s, k)
		}
	}
	if err := sp.check(); err != nil {
		return Spec{}, fmt.Errorf("cache spec %q: %w", s, err)
	}
	return sp, nil
}

// check validates a spec and fills in the default mode.
func (sp *Spec) check() error {
	switch sp.Mode {
	case "":
		sp.Mode = ModeMin
	case ModeMin, ModeMax:
	default:
		return fmt.Errorf("unknown mode %q (want min or max)", sp.Mode)
	}
	switch sp.Type {
	case TypeLocal:
		if sp.Dir == "" {
			return fmt.Errorf("type=local needs dest=DIR or src=DIR")
		}
		if sp.Ref != "" {
			return fmt.Errorf("type=local takes no ref")
		}
	case TypeRegistry:
		if sp.Ref == "" {
			return fmt.Errorf("type=registry needs ref=REPO:TAG")
		}
		if sp.Dir != "" {
			return fmt.Errorf("type=registry takes no src or dest")
		}
		if _, err := name.ParseReference(sp.Ref, name.WeakValidation); err != nil {
			return fmt.Errorf("ref: %w", err)
		}
	case "":
		return fmt.Errorf("no type (want type=local or type=registry)")
	default:
		return fmt.Errorf("unknown type %q (want local or registry)", sp.Type)
	}
	return nil
}

// String returns the spec in the form ParseSpec reads.
func (sp Spec) String() string {
	var b strings.Builder
	b.WriteString("type=" + sp.Type)
	if sp.Ref != "" {
		b.WriteString(",ref=" + sp.Ref)
	}
	if sp.Dir != "" {
		b.WriteString(",dest=" + sp.Dir)
	}
	if sp.Mode != "" && sp.Mode != ModeMin {
		b.WriteString(",mode=" + sp.Mode)
	}
	return b.String()
}

// OpenSource opens the cache sp names for reading. It reads the cache's
// entries once (for a registry: its manifest and config, not its
// layers). A cache that does not exist yet is an empty source; other
// failures are errors naming the directory or reference.
func OpenSource(ctx context.Context, sp Spec, opts image.RemoteOptions) (Source, error) {
	if err := sp.check(); err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", sp, err)
	}
	if sp.Type == TypeLocal {
		return openLocalSource(sp.Dir)
	}
	return openRegistrySource(ctx, sp.Ref, opts)
}

// OpenSink returns the cache sp names for writing. It does no I/O.
func OpenSink(sp Spec, opts image.RemoteOptions) (Sink, error) {
	if err := sp.check(); err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", sp, err)
	}
	if sp.Type == TypeLocal {
		return &localSink{dir: sp.Dir}, nil
	}
	r, err := parseRef(sp.Ref, opts)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", sp.Ref, err)
	}
	return &registrySink{ref: sp.Ref, r: r, opts: opts}, nil
}
