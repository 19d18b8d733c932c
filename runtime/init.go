package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"

	"golang.org/x/sys/unix"
)

// A process started by Run as a container init has argv[0] initName and
// initEnv set to initValue; both are checked, so that neither alone, set
// by accident, has an effect.
const (
	initName  = "lading-init"
	initEnv   = "_LADING_RUNTIME_INIT"
	initValue = "3,4"
)

// Descriptors the parent passes to the init.
const (
	configFD = 3 // config as JSON, then EOF
	errorFD  = 4 // close-on-exec: EOF without data means the exec succeeded
)

// initFailed is the init's exit status when the setup failed.
const initFailed = 126

// Init turns this process into the container init when Run started it, and
// never returns then: it sets up the container and executes the command,
// or reports why not to Run and exits. Otherwise it returns at once. Every
// main, and every TestMain of a package that calls Run, must call Init
// first.
func Init() {
	if os.Getenv(initEnv) != initValue || len(os.Args) == 0 || os.Args[0] != initName {
		return
	}
	// Credentials, capabilities and the final exec belong to one thread.
	goruntime.LockOSThread()
	os.Unsetenv(initEnv)
	unix.CloseOnExec(errorFD)
	err := containerInit()
	reportError(err)
	os.Exit(initFailed)
}

// setupError is how a setup failure travels from the init to Run.
type setupError struct {
	Msg   string     `json:"msg"`
	Errno unix.Errno `json:"errno,omitempty"`
}

func (e *setupError) Error() string { return e.Msg }

// Unwrap lets callers test for the underlying errno with errors.Is.
func (e *setupError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

func reportError(err error) {
	e := setupError{Msg: err.Error()}
	errors.As(err, &e.Errno)
	b, _ := json.Marshal(e)
	unix.Write(errorFD, b)
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

func readConfig() (*config, error) {
	f := os.NewFile(configFD, "config")
	defer f.Close()
	var c config
	if err := json.NewDecoder(f).Decode(&c); err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return &c, nil
}
