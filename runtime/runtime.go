// Package runtime runs one process tree in an isolated Linux container:
// new mount, pid, uts and ipc namespaces, a private network namespace with
// outbound access (NetworkDefault, see Netns), or one with only loopback
// (NetworkNone), or the host's, a pivot_root into a prepared rootfs, /proc,
// /dev and /sys, the build's /etc/hosts, /etc/resolv.conf and /etc/hostname,
// extra bind and tmpfs mounts (RUN --mount), Docker's default
// capabilities (without CAP_NET_RAW, in every network mode) and
// seccomp filter, a session of its own with no controlling terminal, and
// cgroup limits below lading's own cgroup.
//
// The container's init is the small program cmd/lading-init, embedded
// in lading by make (see runtime/initbin) and executed from a sealed
// in-memory copy. A lading built without it (plain go build, go test)
// re-executes itself instead: every main (and TestMain) must call Init
// first.
package runtime

import (
	"errors"
	"fmt"
	"io"

	"github.com/lading-build/lading/runtime/initproc"
)

// ErrInvalidMount is the error (tested with errors.Is) for a Spec.Mounts
// entry that Run refuses.
var ErrInvalidMount = errors.New("invalid mount")

// Network modes.
const (
	// NetworkDefault is a private network namespace with loopback and
	// outbound connectivity and no route to the host's loopback
	// services (see Netns).
	NetworkDefault = initproc.NetworkDefault
	// NetworkHost is the host's network namespace: the container can
	// reach every service of the host, its loopback included.
	NetworkHost = initproc.NetworkHost
	// NetworkNone is a network namespace with only loopback.
	NetworkNone = initproc.NetworkNone
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
	Network  string // NetworkDefault (when empty), NetworkHost or NetworkNone
	// Netns is the namespace a NetworkDefault container joins, shared
	// with others; nil makes one for this run only.
	Netns  *Netns
	Stdout io.Writer
	Stderr io.Writer
	Limits Limits
	// Hosts and ResolvConf are the contents given to the container as
	// /etc/hosts and /etc/resolv.conf; empty means generated defaults
	// (for NetworkDefault, the host's resolvers the namespace can reach).
	Hosts      string
	ResolvConf string
	// Mounts are extra mounts set up in the container, in order, after
	// its own file systems and before the command starts (RUN --mount).
	// Secrets given only as environment variables belong in Env.
	Mounts []Mount
	// Seccomp is the command's syscall filter: "" for the default (Docker's
	// default profile for the container's capabilities), SeccompUnconfined
	// for none, or a profile in Docker's JSON format (its text).
	Seccomp string
}

// Mount types.
const (
	MountBind  = initproc.MountBind
	MountTmpfs = initproc.MountTmpfs
)

// Mount is an extra mount in the container. Its target is resolved
// inside the rootfs: symlinks on the way are followed as the container
// would see them, never out to the host (a symlink to a path missing in
// the rootfs is refused, not followed). Mount points missing in the
// rootfs (with their missing parents) are created for the run and removed
// again afterwards, unless the step put files in a created directory.
//
// Every mount is nosuid and nodev. Targets that overlap /proc, /dev,
// /sys or the injected /etc files, and targets nested in another
// target, are refused with ErrInvalidMount.
type Mount struct {
	Type string // MountBind or MountTmpfs
	// Source is the host path bound for MountBind, a directory or any
	// other file (a regular file, a socket); it is trusted and may be a
	// symlink on the host. Empty for MountTmpfs.
	Source   string
	Target   string // absolute path inside the container
	Readonly bool   // recursively read-only
	Size     int64  // MountTmpfs: size limit in bytes; 0 is the kernel default
	Mode     uint32 // MountTmpfs: permissions of its root; 0 is 01777
}

// Limits are cgroup limits; zero means unlimited. The container's cgroup
// is made below the cgroup lading runs in, on v1 and v2, so the caller's
// own limits still hold; where that cgroup cannot be subdivided, Run
// fails when limits are set (without limits it makes no cgroup).
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
