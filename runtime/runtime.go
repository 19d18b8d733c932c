// Package runtime runs one process tree in an isolated Linux container:
// new mount, pid, uts and ipc namespaces (and a network namespace with only
// loopback for NetworkNone), a pivot_root into a prepared rootfs, /proc,
// /dev and /sys, the build's /etc/hosts, /etc/resolv.conf and /etc/hostname,
// Docker's default capabilities, and cgroup limits.
//
// The container's init is this same binary, re-executed from a sealed
// in-memory copy: every main (and TestMain) must call Init first.
package runtime

import (
	"fmt"
	"io"
)

// Network modes.
const (
	NetworkHost = "host"
	NetworkNone = "none"
)

// Spec says what to run and how.
type Spec struct {
	// Rootfs is a directory (usually a mounted snapshot) that becomes "/".
	// Mount points the runtime has to create in it (for /proc, /dev,
	// /etc/hosts, ...) are removed again before Run returns, so they never
	// reach a layer.
	Rootfs string
	Args   []string // argv; Args[0] is looked up in PATH from Env
	Env    []string // KEY=VALUE
	Cwd    string   // absolute path inside the container, created if missing
	// User is "name", "uid", "name:group", "uid:gid" ... as in USER,
	// resolved against the container's /etc/passwd and /etc/group;
	// "" means root.
	User     string
	Hostname string
	Network  string // NetworkHost (default) or NetworkNone
	Stdout   io.Writer
	Stderr   io.Writer
	Limits   Limits
	// Hosts and ResolvConf are the contents given to the container as
	// /etc/hosts and /etc/resolv.conf; empty means generated defaults.
	Hosts      string
	ResolvConf string
}

// Limits are cgroup limits; zero means unlimited.
type Limits struct {
	Memory int64   // bytes
	Pids   int64   // processes
	CPUs   float64 // cores
}

// ExitError reports a container process that exited with a non-zero status
// or was killed by a signal.
type ExitError struct {
	Code   int // exit status, or 128+signal
	Signal int // non-zero when killed by a signal
}

func (e *ExitError) Error() string {
	if e.Signal != 0 {
		return fmt.Sprintf("killed by signal %d", e.Signal)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}
