// Package initproc is the container init: what runs inside a container
// that runtime.Run starts, from the new namespaces until it executes the
// command. It also holds what the init and runtime.Run share over the
// init's descriptors (Config, the descriptor numbers, the names that mark
// an init, SetupError).
//
// lading embeds it as a program of its own, cmd/lading-init, and falls
// back to re-executing itself (runtime.Init) when built without it. Its
// imports stay small on purpose: a Go program runs every package's init
// functions before main, and the init is started once per RUN step.
package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"

	"golang.org/x/sys/unix"
)

// A process started by Run as a container init has argv[0] Name and
// the environment variable Env set to EnvValue; both are checked, so
// that neither alone, set by accident, has an effect.
const (
	Name     = "lading-init"
	Env      = "_LADING_RUNTIME_INIT"
	EnvValue = "3,4"
)

// Descriptors the parent passes to the init.
const (
	ConfigFD = 3 // config as JSON, then EOF
	ErrorFD  = 4 // close-on-exec: EOF without data means the exec succeeded
	// NetFD is the namespace an init with NetworkDefault joins (Run
	// passes it after the config and error pipes).
	NetFD = 5
)

// Failed is the init's exit status when the setup failed.
const Failed = 126

// Init turns this process into the container init when Run started it, and
// never returns then: it sets up the container and executes the command,
// or reports why not to Run and exits. Otherwise it returns at once.
func Init() {
	if os.Getenv(Env) != EnvValue || len(os.Args) == 0 || os.Args[0] != Name {
		return
	}
	// Credentials, capabilities and the final exec belong to one thread.
	goruntime.LockOSThread()
	os.Unsetenv(Env)
	unix.CloseOnExec(ErrorFD)
	err := containerInit()
	reportError(err)
	os.Exit(Failed)
}

// SetupError is how a setup failure travels from the init to Run.
type SetupError struct {
	Msg   string     `json:"msg"`
	Errno unix.Errno `json:"errno,omitempty"`
}

func (e *SetupError) Error() string { return e.Msg }

// Unwrap lets callers test for the underlying errno with errors.Is.
func (e *SetupError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

func reportError(err error) {
	e := SetupError{Msg: err.Error()}
	errors.As(err, &e.Errno)
	b, _ := json.Marshal(e)
	unix.Write(ErrorFD, b)
}

// containerInit runs inside the new namespaces, before the user command.
func containerInit() error {
	c, err := readConfig()
	if err != nil {
		return err
	}
	unix.Umask(0)
	// Run has put this process in its cgroup before sending the config:
	// a cgroup namespace made now is rooted there, so the step sees
	// "0::/" in /proc/self/cgroup, not the host's cgroup paths.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("making cgroup namespace: %w", err)
	}
	if err := enterNetwork(c.Network); err != nil {
		return err
	}
	if err := setupRootfs(c); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(c.Hostname)); err != nil {
		return fmt.Errorf("setting hostname: %w", err)
	}
	return execUser(c)
}

func readConfig() (*Config, error) {
	f := os.NewFile(ConfigFD, "config")
	defer f.Close()
	var c Config
	if err := json.NewDecoder(f).Decode(&c); err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return &c, nil
}
