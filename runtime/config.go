package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultHostname is the container's hostname when Spec.Hostname is empty.
const DefaultHostname = "lading"

// DefaultPath is PATH when Spec.Env does not set one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultResolvConf is used when the host has no /etc/resolv.conf.
const defaultResolvConf = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"

// config is what the parent hands to the container init over its pipe:
// the Spec without the streams, with all defaults filled in.
type config struct {
	Rootfs     string   `json:"rootfs"`
	Args       []string `json:"args"`
	Env        []string `json:"env"`
	Cwd        string   `json:"cwd"`
	User       string   `json:"user"`
	Hostname   string   `json:"hostname"`
	Network    string   `json:"network"`
	Hosts      string   `json:"hosts"`
	ResolvConf string   `json:"resolvConf"`
	// Skip lists mount points (relative to the rootfs) the init must
	// leave alone because the image has symlinks there.
	Skip []string `json:"skip,omitempty"`
	// Mounts are Spec.Mounts, checked, with their targets resolved by
	// the parent in prepareMounts.
	Mounts []extraMount `json:"mounts,omitempty"`
	// Seccomp is the compiled filter of Spec.Seccomp (packFilter), empty
	// for none.
	Seccomp []byte `json:"seccomp,omitempty"`
	// netns is the namespace a NetworkDefault init joins, passed as
	// netFD.
	netns *os.File
}

func (c *config) skips(rel string) bool {
	for _, p := range c.Skip {
		if p == rel {
			return true
		}
	}
	return false
}

// newConfig validates spec and fills in defaults.
func newConfig(spec Spec) (*config, error) {
	if len(spec.Args) == 0 || spec.Args[0] == "" {
		return nil, errors.New("no command")
	}
	if !filepath.IsAbs(spec.Rootfs) {
		return nil, fmt.Errorf("rootfs %q is not an absolute path", spec.Rootfs)
	}
	c := &config{
		Rootfs:     filepath.Clean(spec.Rootfs),
		Args:       spec.Args,
		Env:        spec.Env,
		Cwd:        spec.Cwd,
		User:       spec.User,
		Hostname:   spec.Hostname,
		Network:    spec.Network,
		Hosts:      spec.Hosts,
		ResolvConf: spec.ResolvConf,
	}
	if c.Cwd == "" {
		c.Cwd = "/"
	}
	if !filepath.IsAbs(c.Cwd) {
		return nil, fmt.Errorf("working directory %q is not an absolute path", c.Cwd)
	}
	if c.Hostname == "" {
		c.Hostname = DefaultHostname
	}
	switch c.Network {
	case "":
		c.Network = NetworkDefault
	case NetworkDefault, NetworkHost, NetworkNone:
	default:
		return nil, fmt.Errorf("unknown network mode %q", c.Network)
	}
	if c.Hosts == "" {
		c.Hosts = defaultHosts(c.Hostname)
	}
	if c.ResolvConf == "" {
		c.ResolvConf = hostResolvConf()
	}
	mounts, err := newExtraMounts(spec.Mounts)
	if err != nil {
		return nil, err
	}
	c.Mounts = mounts
	filter, err := seccompFilter(spec.Seccomp)
	if err != nil {
		return nil, err
	}
	c.Seccomp = packFilter(filter)
	return c, nil
}

func defaultHosts(hostname string) string {
	return "127.0.0.1\tlocalhost " + hostname + "\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback " + hostname + "\n"
}

// hostResolvConf returns the host's resolver configuration, or public
// resolvers when the host has none.
func hostResolvConf() string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return defaultResolvConf
	}
	return string(b)
}

// containerEnv returns env without duplicate keys (the last one wins, as
// in Docker) and with PATH and HOME defaulted.
func containerEnv(env []string, home string) []string {
	out := make([]string, 0, len(env)+2)
	index := make(map[string]int, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	if _, ok := index["PATH"]; !ok {
		out = append(out, "PATH="+DefaultPath)
	}
	if _, ok := index["HOME"]; !ok {
		out = append(out, "HOME="+home)
	}
	return out
}

// lookupEnv returns the value of key in env.
func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		k, v, ok := strings.Cut(env[i], "=")
		if ok && k == key {
			return v, true
		}
	}
	return "", false
}
