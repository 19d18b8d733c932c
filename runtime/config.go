package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lading-build/lading/runtime/initproc"
)

// DefaultHostname is the container's hostname when Spec.Hostname is empty.
const DefaultHostname = "lading"

// DefaultPath is PATH when Spec.Env does not set one.
const DefaultPath = initproc.DefaultPath

// defaultResolvConf is used when the host has no /etc/resolv.conf.
const defaultResolvConf = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"

// config is what the parent hands to the container init over its pipe
// (initproc.Config), and the descriptors it passes along.
type config struct {
	initproc.Config
	// netns is the namespace a NetworkDefault init joins, passed as
	// initproc.NetFD.
	netns *os.File
}

// newConfig validates spec and fills in defaults.
func newConfig(spec Spec) (*config, error) {
	if len(spec.Args) == 0 || spec.Args[0] == "" {
		return nil, errors.New("no command")
	}
	if !filepath.IsAbs(spec.Rootfs) {
		return nil, fmt.Errorf("rootfs %q is not an absolute path", spec.Rootfs)
	}
	c := &config{Config: initproc.Config{
		Rootfs:     filepath.Clean(spec.Rootfs),
		Args:       spec.Args,
		Env:        spec.Env,
		Cwd:        spec.Cwd,
		User:       spec.User,
		Hostname:   spec.Hostname,
		Network:    spec.Network,
		Hosts:      spec.Hosts,
		ResolvConf: spec.ResolvConf,
	}}
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
	c.Seccomp = initproc.PackFilter(filter)
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
