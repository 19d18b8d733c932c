package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/testutil"
)

// newNetns makes a Netns for the test and closes it at the end.
func newNetns(t *testing.T) *Netns {
	t.Helper()
	needRoot(t)
	if _, err := os.Stat("/usr/bin/pasta"); err != nil {
		t.Skip("needs pasta (apt-get install -y passt)")
	}
	n, err := NewNetns(context.Background())
	must(t, err)
	t.Cleanup(func() { n.Close() })
	return n
}

// TestDefaultNetwork: containers of one Netns share a private namespace
// that is not the host's, shows its own interfaces only, and has no route
// to a service on the host's loopback, neither directly nor through the
// gateway; it pings over an ICMP socket but has no CAP_NET_RAW, raw or
// packet socket (the namespace is shared by concurrent steps); once
// closed, no process holds the namespace and pasta is gone (checkClean:
// no child left).
func TestDefaultNetwork(t *testing.T) {
	root := newRootfs(t)
	addProbe(t, root)
	n := newNetns(t)
	port, accepted := testutil.LoopbackListener(t)
	hostNS, err := os.Readlink("/proc/self/ns/net")
	must(t, err)
	script := fmt.Sprintf(`
		readlink /proc/self/ns/net
		ls /sys/class/net | tr '\n' ' '; echo
		gw=$(ip route | awk '/^default/ { print $3 }')
		nc -w 2 127.0.0.1 %[1]d </dev/null || echo lo-unreachable
		nc -w 2 "$gw" %[1]d </dev/null || echo gw-unreachable
		probe ping
		probe packet >/dev/null || probe raw >/dev/null || echo raw-failed
		grep CapEff /proc/self/status`, port)
	out := shOK(t, Spec{Rootfs: root, Netns: n}, script)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 {
		t.Fatalf("unexpected output %q", out)
	}
	ns := lines[0]
	if !strings.HasPrefix(ns, "net:[") || ns == hostNS {
		t.Errorf("container namespace %q, host %q", ns, hostNS)
	}
	ifaces := strings.Fields(lines[1])
	if len(ifaces) != 2 || !strings.Contains(lines[1], "lo") {
		t.Errorf("interfaces %q, want lo and pasta's", lines[1])
	}
	for _, iface := range ifaces {
		if _, err := os.Stat("/sys/class/net/" + iface); err == nil && iface != "lo" && iface != "eth0" {
			t.Errorf("host interface %s visible", iface)
		}
	}
	if lines[2] != "lo-unreachable" || lines[3] != "gw-unreachable" || accepted() != 0 {
		t.Errorf("host loopback reached: %q, %d connections", out, accepted())
	}
	if lines[4] != "ok" {
		t.Errorf("ping (an ICMP socket) inside the private namespace: %q", lines[4])
	}
	// The namespace is shared by concurrent steps: no packet sockets.
	var capEff uint64
	if _, err := fmt.Sscanf(lines[6], "CapEff:\t%x", &capEff); err != nil || capEff&(1<<unix.CAP_NET_RAW) != 0 || lines[5] != "raw-failed" {
		t.Errorf("CAP_NET_RAW or a packet socket in the private namespace: %q", out)
	}
	// A second container joins the same namespace.
	if again := shOK(t, Spec{Rootfs: root, Netns: n}, `readlink /proc/self/ns/net`); strings.TrimSpace(again) != ns {
		t.Errorf("second container in %q, first in %q", again, ns)
	}
	must(t, n.Close())
	if h := testutil.NamespaceHolders(t, ns); len(h) > 0 {
		t.Errorf("namespace still held after Close: %v", h)
	}
}

// TestDefaultNetworkPerRun: without a shared Netns, Run makes one for the
// container and removes it again.
func TestDefaultNetworkPerRun(t *testing.T) {
	root := newRootfs(t)
	newNetns(t) // skips without pasta
	ns := strings.TrimSpace(shOK(t, Spec{Rootfs: root}, `readlink /proc/self/ns/net`))
	if host, _ := os.Readlink("/proc/self/ns/net"); ns == host {
		t.Fatalf("container in the host's namespace %s", ns)
	}
	if h := testutil.NamespaceHolders(t, ns); len(h) > 0 {
		t.Errorf("namespace still held after Run: %v", h)
	}
}

// TestHostNetworkNoRawSockets: in the host's namespace the container has
// no CAP_NET_RAW: no raw ICMP socket (ping), no packet socket (arping),
// so it can neither see nor forge the host's traffic.
func TestHostNetworkNoRawSockets(t *testing.T) {
	root := newRootfs(t)
	out, errOut, err := sh(t, Spec{Rootfs: root, Network: NetworkHost}, `
		grep CapEff /proc/self/status
		ping -c1 -W1 127.0.0.1 || echo ping-failed
		arping -c1 -w1 -I lo 127.0.0.1 || echo arping-failed`)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	var capEff uint64
	if _, err := fmt.Sscanf(out, "CapEff:\t%x", &capEff); err != nil {
		t.Fatalf("no CapEff in %q", out)
	}
	if capEff&(1<<13) != 0 { // CAP_NET_RAW
		t.Errorf("CAP_NET_RAW in the host's namespace: CapEff %x", capEff)
	}
	if !strings.Contains(out, "ping-failed") || !strings.Contains(out, "arping-failed") {
		t.Errorf("raw sockets work in the host's namespace:\n%s%s", out, errOut)
	}
}

// TestPastaClosesInheritedFDs: current pasta closes every descriptor
// above 2 when it starts; NewNetns must not depend on inherited ones. A
// wrapper that closes them first stands for such a pasta.
func TestPastaClosesInheritedFDs(t *testing.T) {
	root := newRootfs(t)
	needRoot(t)
	if _, err := os.Stat("/usr/bin/pasta"); err != nil {
		t.Skip("needs pasta (apt-get install -y passt)")
	}
	bin := t.TempDir()
	wrapper := "#!/bin/sh\nexec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-\nexec /usr/bin/pasta \"$@\"\n"
	must(t, os.WriteFile(bin+"/pasta", []byte(wrapper), 0o755))
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	n, err := NewNetns(context.Background())
	if err != nil {
		t.Fatalf("NewNetns with a pasta that closes inherited descriptors: %v", err)
	}
	defer n.Close()
	out := shOK(t, Spec{Rootfs: root, Netns: n}, `ls /sys/class/net | tr '\n' ' '`)
	if len(strings.Fields(out)) != 2 {
		t.Errorf("interfaces %q, want lo and pasta's", out)
	}
}

// TestPastaPinsNoMounts: starting pasta copies this process's mounts
// into a private namespace; no thread of this process and not pasta may
// keep that copy, or mounts made before (a step's rootfs) would stay
// alive after the build unmounts them.
func TestPastaPinsNoMounts(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/usr/bin/pasta"); err != nil {
		t.Skip("needs pasta (apt-get install -y passt)")
	}
	dir := t.TempDir()
	must(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"))
	n, err := NewNetns(context.Background())
	unix.Unmount(dir, 0)
	must(t, err)
	defer n.Close()
	files, _ := filepath.Glob("/proc/self/task/*/mountinfo")
	files = append(files, fmt.Sprintf("/proc/%d/mountinfo", n.cmd.Process.Pid))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), " "+dir+" ") {
			t.Errorf("%s still has %s mounted", f, dir)
		}
	}
}

func TestNoNetworkHelper(t *testing.T) {
	needRoot(t)
	t.Setenv("PATH", t.TempDir())
	_, err := NewNetns(context.Background())
	if !errors.Is(err, ErrNoNetworkHelper) || !strings.Contains(err.Error(), "passt") {
		t.Errorf("got %v, want ErrNoNetworkHelper naming the package", err)
	}
}

func TestPrivateResolvConf(t *testing.T) {
	tests := []struct {
		host, want string
		forward    bool
	}{
		{"nameserver 10.0.0.2\nsearch example.com\n", "nameserver 10.0.0.2\nsearch example.com\n", false},
		{"nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n",
			"nameserver " + dnsForward + "\noptions edns0 trust-ad\nsearch lan\n", true},
		{"nameserver ::1\n", "nameserver " + dnsForward + "\n", true},
		{"nameserver 127.0.1.1\nnameserver 192.0.2.53\n", "nameserver 192.0.2.53\n", false},
		{"# nothing\n", defaultResolvConf, false},
		{"", defaultResolvConf, false},
	}
	for _, tt := range tests {
		got, fwd := privateResolvConf(tt.host)
		if got != tt.want || fwd != tt.forward {
			t.Errorf("privateResolvConf(%q) = %q, %v; want %q, %v", tt.host, got, fwd, tt.want, tt.forward)
		}
	}
}

// BenchmarkRunNetwork measures one container running true in each
// network mode; the default mode joins one Netns made beforehand, as a
// build's steps do.
func BenchmarkRunNetwork(b *testing.B) {
	needRoot(b)
	root := newRootfs(b)
	for _, mode := range []string{NetworkHost, NetworkDefault, NetworkNone} {
		b.Run(mode, func(b *testing.B) {
			spec := Spec{Rootfs: root, Args: []string{"/bin/true"}, Network: mode}
			if mode == NetworkDefault {
				n, err := NewNetns(context.Background())
				must(b, err)
				defer n.Close()
				spec.Netns = n
			}
			for b.Loop() {
				must(b, Run(context.Background(), spec))
			}
		})
	}
}

// BenchmarkNewNetns measures making a Netns (namespace and pasta) and
// closing it: the cost a build pays once.
func BenchmarkNewNetns(b *testing.B) {
	needRoot(b)
	for b.Loop() {
		n, err := NewNetns(context.Background())
		must(b, err)
		n.Close()
	}
}

func TestHasDefaultRoute(t *testing.T) {
	const v4Header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	const v4Default = "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	const v4Subnet = "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	const v6Reject = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
	const v6Loopback = "00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n"
	const v6Default = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"
	tests := []struct {
		v4, v6 string
		want   bool
	}{
		{v4Header + v4Default + v4Subnet, v6Reject + v6Loopback, true},
		{v4Header + v4Subnet, v6Default + v6Reject, true},
		{v4Header + v4Subnet, v6Reject + v6Loopback, false},
		{v4Header, v6Reject + v6Loopback + v6Reject, false},
		{"", "", false},
	}
	for i, tt := range tests {
		if got := hasDefaultRoute(tt.v4, tt.v6); got != tt.want {
			t.Errorf("case %d: hasDefaultRoute = %v, want %v", i, got, tt.want)
		}
	}
}

// TestNetnsOutlivesCallerThread: pasta's parent-death signal follows the
// thread that forked it. A Netns made by a goroutine that exits locked to
// its thread (Go then ends the thread) keeps working.
func TestNetnsOutlivesCallerThread(t *testing.T) {
	root := newRootfs(t)
	newNetns(t) // skips without pasta
	type made struct {
		n   *Netns
		tid int
		err error
	}
	var m made
	// Go never ends the main thread (its tid is the pid): try again if
	// the goroutine ran there.
	for try := 0; try < 10 && (m.n == nil || m.tid == os.Getpid()); try++ {
		if m.n != nil {
			m.n.Close()
		}
		ch := make(chan made)
		go func() {
			goruntime.LockOSThread() // never unlocked: the thread ends with this goroutine
			n, err := NewNetns(context.Background())
			ch <- made{n, unix.Gettid(), err}
		}()
		m = <-ch
		must(t, m.err)
	}
	defer m.n.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", m.tid)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the locked thread did not end")
		}
	}
	out := shOK(t, Spec{Rootfs: root, Netns: m.n}, `wget -q -O - http://deb.debian.org/debian/dists/bookworm/Release | grep '^Origin:'`)
	if out != "Origin: Debian\n" {
		t.Errorf("got %q after the caller's thread ended", out)
	}
	must(t, m.n.check())
}
