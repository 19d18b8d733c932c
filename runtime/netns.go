package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/runtime/initproc"
)

// ErrNoNetworkHelper is the error (tested with errors.Is) when the helper
// of NetworkDefault, pasta, is not installed.
var ErrNoNetworkHelper = errors.New("pasta is not installed (Debian package passt)")

// pastaBin is the user-mode network helper of NetworkDefault, from the
// passt project (Debian package passt).
const pastaBin = "pasta"

// dnsForward is the address, inside the namespace, where pasta answers
// DNS queries by relaying them to the host's resolver. It is used only
// when the host's resolvers all listen on its loopback, which the
// namespace cannot reach.
const dnsForward = "169.254.1.1"

// netnsReadyTimeout bounds how long NewNetns waits for pasta.
const netnsReadyTimeout = 30 * time.Second

// Netns is a private network namespace for containers with
// NetworkDefault: loopback plus one interface through which pasta (a
// user-mode TCP/UDP/ICMP proxy running on the host, sandboxed by itself)
// reaches the outside. Packets to the host's own loopback addresses have
// no route: pasta neither maps the gateway to the host nor forwards ports
// from the namespace to the host.
//
// Where this process's namespace has no default route (an offline
// machine), pasta would have no interface to use, and where /dev/net/tun
// cannot be opened (rootless, when it is not mode 0666) pasta cannot
// work: the namespace then has only loopback (Offline reports it), as
// with NetworkNone.
//
// One Netns is made per build and shared by its containers, which join it
// with setns(2); that costs microseconds per container, where a namespace
// and a helper per container would cost milliseconds. Nothing of it
// outlives the process that made it: the namespace is held only by open
// descriptors (of this process and pasta), and pasta, a direct child, gets
// SIGKILL when its parent dies. Close tears both down.
type Netns struct {
	ns     *os.File // the namespace
	resolv string   // the containers' /etc/resolv.conf
	cmd    *exec.Cmd
	stderr *tailBuffer
	exited chan struct{} // closed once pasta has exited and was reaped
	// offline says why no pasta runs, when the host has no route out
	// or pasta could not open its tun device.
	offline string

	closeOnce sync.Once
}

// NewNetns makes a private network namespace and starts pasta for it. It
// returns an error wrapping ErrNoNetworkHelper when pasta is missing.
func NewNetns(ctx context.Context) (*Netns, error) {
	var why string
	switch {
	case !hostRouted():
		why = "this machine has no network route"
	case !tunUsable():
		why = "/dev/net/tun cannot be opened (rootless, it must be mode 0666, as Debian's udev makes it)"
	}
	offline := why != ""
	bin, err := exec.LookPath(pastaBin)
	if err != nil && !offline {
		return nil, ErrNoNetworkHelper
	}
	ns, err := newNetNamespace()
	if err != nil {
		return nil, err
	}
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	resolv, forward := privateResolvConf(string(hostResolv))
	n := &Netns{ns: ns, resolv: resolv, stderr: &tailBuffer{max: 4096}, exited: make(chan struct{}), offline: why}
	if offline {
		return n, nil
	}
	if err := n.startPasta(ctx, bin, forward); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// pastaArgs are pasta's options: configure the namespace's interface,
// routes and loopback, stay in the foreground (a child of this process),
// forward no port in either direction, keep the gateway address the real
// gateway (not an alias of the host), and write its pid to pidFile once
// it is ready. Both are paths, not inherited descriptors: pasta closes
// every descriptor above 2 when it starts (since passt 2024). As root pasta would drop to nobody
// and then lack the privileges to join the namespace, so it keeps uid 0;
// it still gives up its capabilities, unshares its own namespaces and
// installs a seccomp filter.
func pastaArgs(netns, pidFile string, forward bool) []string {
	args := []string{
		"--config-net", "--foreground", "--quiet",
		"--tcp-ports", "none", "--udp-ports", "none",
		"--tcp-ns", "none", "--udp-ns", "none",
		"--no-map-gw", "--no-netns-quit",
		"--netns", netns,
		"--pid", pidFile,
	}
	if os.Geteuid() == 0 {
		args = append(args, "--runas", "0")
	}
	if forward {
		args = append(args, "--dns-forward", dnsForward)
	}
	return args
}

// startPasta starts pasta on n.ns and waits until it has configured the
// namespace.
func (n *Netns) startPasta(ctx context.Context, bin string, forward bool) error {
	readyR, hold, cleanup, err := readyFIFO()
	if err != nil {
		close(n.exited)
		return fmt.Errorf("starting pasta: %w", err)
	}
	defer cleanup()
	netns := filepath.Join(filepath.Dir(readyR.Name()), "netns")
	n.cmd = &exec.Cmd{
		Path:   bin,
		Args:   append([]string{pastaBin}, pastaArgs(netns, readyR.Name(), forward)...),
		Env:    []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		Stderr: n.stderr,
		// Should this process die, pasta dies with it.
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	// Its parent-death signal follows the thread that forks it: one
	// kept until pasta is reaped.
	forker, err := startLockedSetup(n.cmd, func() (func(), error) { return bindNetns(n.ns, netns) })
	if err != nil {
		n.cmd = nil
		close(n.exited)
		return fmt.Errorf("starting pasta: %w", err)
	}
	go func() {
		n.cmd.Wait()
		forker.release()
		hold.Close() // the reader sees EOF if pasta never wrote
		close(n.exited)
	}()
	ctx, cancel := context.WithTimeout(ctx, netnsReadyTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { n.cmd.Process.Kill() })
	// pasta writes its pid once the namespace is configured; EOF means
	// it exited first.
	_, err = bufio.NewReader(readyR).ReadString('\n')
	if stop() && err == nil {
		return nil
	}
	<-n.exited
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("pasta did not set up the network within %v", netnsReadyTimeout)
		}
		return ctx.Err()
	}
	return fmt.Errorf("pasta failed: %s%s", n.cmd.ProcessState, n.stderr.note())
}

// readyFIFO makes a FIFO in a private directory for pasta's pid file and
// opens it for reading, and for writing as hold, so that reading blocks
// until pasta writes (opening a FIFO for writing needs a reader) and
// ends at EOF once hold is closed and pasta has exited. cleanup closes
// the reader and removes the directory.
func readyFIFO() (r, hold *os.File, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "lading-pasta-")
	if err != nil {
		return nil, nil, nil, err
	}
	path := filepath.Join(dir, "pid")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	r, err = os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err == nil {
		hold, err = os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			r.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	return r, hold, func() { r.Close(); hold.Close(); os.RemoveAll(dir) }, nil
}

// bindNetns moves this thread into a private mount namespace (which
// pasta inherits) and bind-mounts the namespace ns on the file path
// there, for pasta to open: a path into this process's descriptors would
// need ptrace rights over it, which pasta gives up before opening it.
// The returned function, run once pasta has started, moves the thread
// back: the private namespace holds copies of every mount there was, and
// must not outlive pasta's own start (pasta then isolates itself in a
// namespace with none of them).
func bindNetns(ns *os.File, path string) (back func(), err error) {
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return nil, err
	}
	orig, err := os.Open("/proc/thread-self/ns/mnt")
	if err != nil {
		return nil, err
	}
	back = func() {
		unix.Setns(int(orig.Fd()), unix.CLONE_NEWNS)
		orig.Close()
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		orig.Close()
		return nil, fmt.Errorf("making pasta's mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		back()
		return nil, fmt.Errorf("making pasta's mount namespace private: %w", err)
	}
	src := fmt.Sprintf("/proc/thread-self/fd/%d", ns.Fd())
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		back()
		return nil, fmt.Errorf("binding the network namespace for pasta: %w", err)
	}
	return back, nil
}

// Close stops pasta and releases the namespace. It is safe to call more
// than once.
func (n *Netns) Close() error {
	n.closeOnce.Do(func() {
		if n.cmd != nil {
			n.cmd.Process.Kill()
			<-n.exited
		}
		n.ns.Close()
	})
	return nil
}

// Offline reports that the host had no route out when n was made: its
// containers get loopback only.
func (n *Netns) Offline() bool { return n.offline != "" }

// OfflineReason says why the namespace has only loopback, or is empty.
func (n *Netns) OfflineReason() string { return n.offline }

// tunUsable reports whether pasta will be able to open /dev/net/tun.
// Rootless, the device's owner (root) is not mapped, so only its
// permissions for others count.
func tunUsable() bool {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// check returns an error when pasta has exited: the namespace has no
// connectivity any more.
func (n *Netns) check() error {
	if n.Offline() {
		return nil
	}
	select {
	case <-n.exited:
		return fmt.Errorf("the network helper pasta exited: %s%s", n.cmd.ProcessState, n.stderr.note())
	default:
		return nil
	}
}

// newNetNamespace creates a network namespace with lo up and returns a
// descriptor that holds it. It works on a locked thread that returns to
// this process's namespace afterwards or, where it cannot (rootless),
// ends with its goroutine.
func newNetNamespace() (*os.File, error) {
	type result struct {
		ns  *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			goruntime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := enterNewNetns()
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
			// Rootless, the host's namespace belongs to a user namespace
			// where lading has no capabilities: the thread cannot go
			// back, and Go ends it with this goroutine, still locked.
			ch <- result{ns, err}
			return
		}
		goruntime.UnlockOSThread()
		ch <- result{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("creating network namespace: %w", r.err)
	}
	return r.ns, nil
}

// enterNewNetns moves this thread into a new network namespace, brings lo
// up there (pasta does too; offline, nothing else would) and opens it.
func enterNewNetns() (*os.File, error) {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, err
	}
	if err := initproc.LoopbackUp(); err != nil {
		return nil, err
	}
	initproc.AllowPing()
	return os.Open("/proc/thread-self/ns/net")
}

// hostRouted reports whether this process's network namespace has a
// default route, IPv4 or IPv6.
func hostRouted() bool {
	v4, _ := os.ReadFile("/proc/net/route")
	v6, _ := os.ReadFile("/proc/net/ipv6_route")
	return hasDefaultRoute(string(v4), string(v6))
}

// hasDefaultRoute reads the kernel's route tables, /proc/net/route and
// /proc/net/ipv6_route, for a default route that is not a reject route
// (the kernel keeps one of those on lo for IPv6).
func hasDefaultRoute(v4, v6 string) bool {
	for _, line := range strings.Split(v4, "\n") {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		f := strings.Fields(line)
		if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			return true
		}
	}
	const rtfReject = 0x0200
	for _, line := range strings.Split(v6, "\n") {
		// dst dst_len src src_len next_hop metric refcnt use flags iface
		f := strings.Fields(line)
		if len(f) < 10 || strings.Trim(f[0], "0") != "" || f[1] != "00" {
			continue
		}
		flags, err := strconv.ParseUint(f[8], 16, 32)
		if err == nil && flags&rtfReject == 0 && f[9] != "lo" {
			return true
		}
	}
	return false
}

// privateResolvConf turns the host's resolv.conf into the one of a
// container in a private namespace. Nameservers on the host's loopback
// (systemd-resolved's 127.0.0.53, dnsmasq's 127.0.1.1, ::1) are not
// reachable from there and are dropped; when no other nameserver is left,
// the container asks dnsForward, and forward reports that pasta must relay
// queries sent there to the host's resolver. Other lines (search,
// options) stay.
func privateResolvConf(host string) (conf string, forward bool) {
	var out []string
	var kept, dropped int
	for _, line := range strings.Split(host, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			if isLoopback(f[1]) {
				dropped++
				continue
			}
			kept++
		}
		out = append(out, line)
	}
	switch {
	case kept > 0:
		return strings.Join(out, "\n"), false
	case dropped > 0:
		return "nameserver " + dnsForward + "\n" + strings.TrimLeft(strings.Join(out, "\n"), "\n"), true
	}
	return defaultResolvConf, false
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

// note returns ": " and the helper's messages, without its complaints
// about a missing syslog, or "".
func (t *tailBuffer) note() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(string(t.b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Failed to send") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return ": " + strings.Join(lines, "; ")
}

// joinNetns picks the namespace a NetworkDefault container joins:
// spec.Netns, or one made for this run, removed by release. It also gives
// the container the namespace's resolv.conf unless spec has one.
func (c *config) joinNetns(ctx context.Context, spec Spec) (release func(), err error) {
	release = func() {}
	if c.Network != NetworkDefault {
		return release, nil
	}
	n := spec.Netns
	if n == nil {
		if n, err = NewNetns(ctx); err != nil {
			return release, err
		}
		release = func() { n.Close() }
	} else if err := n.check(); err != nil {
		return release, err
	}
	c.netns = n.ns
	if spec.ResolvConf == "" {
		c.ResolvConf = n.resolv
	}
	return release, nil
}

// initFiles are the descriptors given to the init from fd 3 on: the
// config and error pipes, and the namespace it joins.
func (c *config) initFiles(cfgR, errW *os.File) []*os.File {
	files := []*os.File{cfgR, errW}
	if c.netns != nil {
		files = append(files, c.netns) // initproc.NetFD
	}
	return files
}
