package builder

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/runtime"
)

// This file reads the docker-style option strings of `lading build`
// (--output, --secret, --ssh, ...) into Request fields, so that every
// program embedding the builder reads them the same way.

// Output is where Build writes the image besides the store: Type "oci"
// (an OCI layout tarball), "docker" (a tarball for docker load), "local"
// (the root filesystem as a directory) or "registry" (a push to every
// tag); Dest is the path (unused for "registry").
type Output struct {
	Type string
	Dest string
}

// ParseOutput reads type=oci|docker|local,dest=PATH or type=registry.
func ParseOutput(spec string) (Output, error) {
	var o Output
	for _, field := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return o, fmt.Errorf("--output %q: want type=oci|docker|local,dest=PATH or type=registry", spec)
		}
		switch k {
		case "type":
			o.Type = v
		case "dest":
			o.Dest = v
		default:
			return o, fmt.Errorf("--output %q: unknown key %q", spec, k)
		}
	}
	return o, o.check()
}

func (o Output) check() error {
	switch o.Type {
	case "oci", "docker", "local":
		if o.Dest == "" {
			return fmt.Errorf("output type=%s: dest is required", o.Type)
		}
	case "registry":
	default:
		return fmt.Errorf("output type %q: must be oci, docker, local or registry", o.Type)
	}
	return nil
}

// ParseBuildArgs reads KEY=VALUE pairs; a bare KEY takes its value from
// the environment, and is left out when the variable is not set (as
// docker does).
func ParseBuildArgs(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("--build-arg %q: want KEY=VALUE", kv)
		}
		if !ok {
			var set bool
			if v, set = os.LookupEnv(k); !set {
				continue
			}
		}
		out[k] = v
	}
	return out, nil
}

// ParseSecrets reads id=ID[,src=FILE|,env=VAR]; with neither src nor env
// the value comes from the environment variable ID.
func ParseSecrets(list []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, spec := range list {
		var id, src, env string
		for _, field := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "id":
				id = v
			case "src", "source":
				src = v
			case "env":
				env = v
			case "type":
				if v != "file" && v != "env" {
					return nil, fmt.Errorf("--secret %q: type must be file or env", spec)
				}
			default:
				return nil, fmt.Errorf("--secret %q: unknown key %q", spec, k)
			}
		}
		if id == "" {
			return nil, fmt.Errorf("--secret %q: id is required", spec)
		}
		if src != "" {
			b, err := os.ReadFile(src)
			if err != nil {
				return nil, fmt.Errorf("--secret id=%s: %w", id, err)
			}
			out[id] = b
			continue
		}
		if env == "" {
			env = id
		}
		v, ok := os.LookupEnv(env)
		if !ok {
			return nil, fmt.Errorf("--secret id=%s: environment variable %s is not set", id, env)
		}
		out[id] = []byte(v)
	}
	return out, nil
}

// ParseSSH reads "default" (the agent of $SSH_AUTH_SOCK) or ID=SOCKET.
func ParseSSH(list []string) (map[string]SSHSource, error) {
	out := map[string]SSHSource{}
	for _, spec := range list {
		id, sock, ok := strings.Cut(spec, "=")
		if !ok {
			sock = os.Getenv("SSH_AUTH_SOCK")
			if sock == "" {
				return nil, fmt.Errorf("--ssh %s: SSH_AUTH_SOCK is not set", spec)
			}
		}
		fi, err := os.Stat(sock)
		if err != nil || fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("--ssh %s: %s is not an agent socket (key files are not supported; use ssh-agent)", spec, sock)
		}
		out[id] = SSHSource{Socket: sock}
	}
	return out, nil
}

// ParseContexts reads NAME=DIR or NAME=docker-image://REF (and
// NAME=oci-archive:PATH, NAME=docker-archive:PATH); directories are made
// absolute and names lower-cased.
func ParseContexts(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("--build-context %q: want NAME=DIR or NAME=docker-image://REF", kv)
		}
		if !strings.Contains(v, "://") && !strings.HasPrefix(v, "oci-archive:") && !strings.HasPrefix(v, "docker-archive:") {
			abs, err := filepath.Abs(v)
			if err != nil {
				return nil, err
			}
			v = abs
		}
		out[strings.ToLower(k)] = v
	}
	return out, nil
}

// ParseSize reads a byte count: "512", "512k", "64m", "2g" (binary
// units, an optional trailing "b").
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "b")
	mult := int64(1)
	for suffix, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30} {
		if rest, ok := strings.CutSuffix(t, suffix); ok {
			t, mult = rest, m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return n * mult, nil
}

// ParseSecurityOpts reads --security-opt values: into the seccomp setting
// of RUN steps: "" (the default profile), runtime.SeccompUnconfined, or
// the text of a profile file in Docker's JSON format.
func ParseSecurityOpts(opts []string) (string, error) {
	seccomp := ""
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			k, v, ok = strings.Cut(o, ":") // Docker's older spelling
		}
		if !ok || k != "seccomp" || v == "" {
			return "", fmt.Errorf("--security-opt %q: want seccomp=unconfined or seccomp=PROFILE.json", o)
		}
		if v == runtime.SeccompUnconfined {
			seccomp = v
			continue
		}
		b, err := os.ReadFile(v)
		if err != nil {
			return "", fmt.Errorf("--security-opt: reading seccomp profile: %w", err)
		}
		if err := runtime.CheckSeccomp(string(b)); err != nil {
			return "", fmt.Errorf("--security-opt: %s: %w", v, err)
		}
		seccomp = string(b)
	}
	return seccomp, nil
}

// EpochFromEnv reads SOURCE_DATE_EPOCH: nil when unset or empty.
func EpochFromEnv() (*int64, error) {
	v, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
	}
	return &n, nil
}

// TargetPlatforms splits a comma-separated --platform list into
// normalized platforms ("linux/arm64"); an empty list is [""], this
// machine's platform.
func TargetPlatforms(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return []string{""}, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		n, err := parser.NormalizePlatform(p)
		if err != nil {
			return nil, fmt.Errorf("platform: %w", err)
		}
		if seen[n] {
			return nil, fmt.Errorf("platform: %s is listed twice", n)
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}
