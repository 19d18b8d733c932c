package initproc

import (
	"strings"

	"github.com/lading-build/lading/internal/envlist"
)

// Network modes (runtime.NetworkDefault, ...).
const (
	NetworkDefault = "default"
	NetworkHost    = "host"
	NetworkNone    = "none"
)

// Mount types (runtime.MountBind, ...).
const (
	MountBind  = "bind"
	MountTmpfs = "tmpfs"
)

// DefaultPath is PATH when the config's Env does not set one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Config is what the parent hands to the container init over its pipe:
// the runtime.Spec without the streams, with all defaults filled in.
type Config struct {
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
	// the parent.
	Mounts []Mount `json:"mounts,omitempty"`
	// Seccomp is the compiled filter of Spec.Seccomp (PackFilter), empty
	// for none.
	Seccomp []byte `json:"seccomp,omitempty"`
}

// Mount is a runtime.Mount as the init needs it.
type Mount struct {
	Type   string `json:"type"`
	Source string `json:"source,omitempty"`
	Target string `json:"target"` // as given, for messages
	// Path is the resolved target relative to the rootfs, free of
	// symlinks; set by the parent.
	Path     string `json:"path"`
	Dir      bool   `json:"dir,omitempty"` // the mount point is a directory
	Readonly bool   `json:"readonly,omitempty"`
	Size     int64  `json:"size,omitempty"`
	Mode     uint32 `json:"mode,omitempty"`
}

func (c *Config) skips(rel string) bool {
	for _, p := range c.Skip {
		if p == rel {
			return true
		}
	}
	return false
}

// containerEnv returns env without duplicate keys (the last one wins, as
// in Docker) and with PATH and HOME defaulted.
func containerEnv(env []string, home string) []string {
	out := envlist.Merge(env)
	if !hasKey(out, "PATH") {
		out = append(out, "PATH="+DefaultPath)
	}
	if !hasKey(out, "HOME") {
		out = append(out, "HOME="+home)
	}
	return out
}

// hasKey reports whether env has an entry for key (with a value or not).
func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
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
