package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lading-build/lading/internal/testutil"
)

// dnsRelay answers DNS queries on addr:53 (UDP, a host loopback address)
// by asking upstream, and counts them.
func dnsRelay(t *testing.T, addr, upstream string) *atomic.Int32 {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(addr, "53"))
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			size, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			n.Add(1)
			go func(q []byte) {
				c, err := net.Dial("udp", net.JoinHostPort(upstream, "53"))
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(q); err != nil {
					return
				}
				resp := make([]byte, 4096)
				if m, err := c.Read(resp); err == nil {
					pc.WriteTo(resp[:m], from)
				}
			}(append([]byte(nil), buf[:size]...))
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return &n
}

// hostNameserver is the first nameserver of the host's resolv.conf.
func hostNameserver(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Skip("no /etc/resolv.conf")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			return f[1]
		}
	}
	t.Skip("no nameserver in /etc/resolv.conf")
	return ""
}

// TestDefaultNetworkLoopbackResolver: when the host's resolv.conf names a
// resolver on its loopback (as systemd-resolved does), which a private
// namespace cannot reach, the RUN step gets pasta's forwarding address
// instead, and its queries reach the host's resolver through pasta: the
// step fetches Debian's Release file by name. lading runs in a mount
// namespace of its own where /etc/resolv.conf names the test's relay on
// 127.x.y.z:53.
func TestDefaultNetworkLoopbackResolver(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "pasta")
	unshare := testutil.RequireTool(t, "unshare")
	upstream := hostNameserver(t)
	relayAddr := fmt.Sprintf("127.%d.%d.53", 100+os.Getpid()%100, os.Getpid()/100%250)
	queries := dnsRelay(t, relayAddr, upstream)
	dir := t.TempDir()
	fake := filepath.Join(dir, "resolv.conf")
	writeFiles(t, dir, map[string]string{"resolv.conf": "nameserver " + relayAddr + "\noptions timeout:2\n"})
	root := t.TempDir()
	ctx := busyboxContext(t, `FROM scratch
COPY rootfs/ /
RUN cat /etc/resolv.conf; wget -q -O - http://deb.debian.org/debian/dists/bookworm/Release | grep '^Origin:'
`)
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
		`mount --bind "$1" /etc/resolv.conf && shift && exec "$@"`, "sh", fake,
		os.Args[0], "build", "--root", root, "--progress", "plain", ctx)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("nameserver 169.254.1.1")) || bytes.Contains(out, []byte("nameserver 127.")) {
		t.Errorf("the RUN step's resolv.conf is not translated:\n%s", out)
	}
	if !bytes.Contains(out, []byte("Origin: Debian")) {
		t.Errorf("Release file not fetched:\n%s", out)
	}
	if queries.Load() == 0 {
		t.Errorf("no query reached the host's loopback resolver:\n%s", out)
	}
}

// TestKillLeavesNoNetwork SIGKILLs lading while a RUN step runs in the
// default network: pasta and the namespace must go with it (nothing of
// the network lives on disk, so there is nothing for the next run to
// clean), and the next build works.
func TestKillLeavesNoNetwork(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "pasta")
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	marker := "lading-netkill-" + filepath.Base(filepath.Dir(root))
	dir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN echo ns=$(readlink /proc/self/ns/net) "+marker+"; sleep 600; : "+marker+"\n")
	cmd, stderr := startBuild(t, root, dir)
	nsLine := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := regexp.MustCompile(`ns=(net:\[\d+\]) ` + marker).FindStringSubmatch(sc.Text()); m != nil {
				nsLine <- m[1]
			}
		}
	}()
	var ns string
	select {
	case ns = <-nsLine:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the RUN step did not start")
	}
	pasta := 0
	for pid, name := range testutil.Descendants(cmd.Process.Pid) {
		if strings.HasPrefix(name, "pasta") || strings.HasPrefix(name, "passt") {
			pasta = pid
		}
	}
	if pasta == 0 {
		kids := testutil.Descendants(cmd.Process.Pid)
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no pasta among lading's descendants %v", kids)
	}
	if host, _ := os.Readlink("/proc/self/ns/net"); ns == host {
		t.Errorf("RUN step in the host's namespace")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pasta))
		held := testutil.NamespaceHolders(t, ns)
		if os.IsNotExist(err) && len(held) == 0 && !processRunning(marker) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after kill -9: pasta alive %v, namespace held by %v, container running %v", err == nil, held, processRunning(marker))
		}
		time.Sleep(20 * time.Millisecond)
	}
	dir2 := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN wget -q -O /dev/null http://deb.debian.org/debian/dists/bookworm/Release\n")
	if r := lading(t, "", "build", "--root", root, "--progress", "quiet", dir2); r.code != 0 {
		t.Fatalf("next build failed (%d):\n%s", r.code, r.stderr)
	}
}

// TestNetworkFlags: --network host only with --allow network.host; a
// machine without pasta gets told what to install, and --network none
// needs no pasta.
func TestNetworkFlags(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	dir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN echo ns=$(readlink /proc/self/ns/net)\n")
	host, _ := os.Readlink("/proc/self/ns/net")

	r := lading(t, "", "build", "--root", root, "--network", "host", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "--network host needs the network.host entitlement: pass --allow network.host") {
		t.Errorf("--network host without --allow: exit %d\n%s", r.code, r.stderr)
	}
	r = lading(t, "", "build", "--root", root, "--progress", "plain", "--network", "host", "--allow", "network.host", dir)
	if r.code != 0 || !strings.Contains(r.stderr, "ns="+host) {
		t.Errorf("--network host --allow network.host: exit %d, want the host's namespace %s\n%s", r.code, host, r.stderr)
	}

	noPasta := []string{"PATH=" + t.TempDir()}
	r = ladingEnv(t, noPasta, "build", "--root", root, "--no-cache", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "Debian package passt") || !strings.Contains(r.stderr, "--network host --allow network.host") {
		t.Errorf("default network without pasta: exit %d\n%s", r.code, r.stderr)
	}
	r = ladingEnv(t, noPasta, "build", "--root", root, "--no-cache", "--network", "none", dir)
	if r.code != 0 {
		t.Errorf("--network none without pasta: exit %d\n%s", r.code, r.stderr)
	}
}

// TestDefaultNetworkOffline: on a machine without a route out (here: lading
// in a network namespace with only lo), the default network still
// isolates RUN steps, in a namespace with loopback only, and says so.
func TestDefaultNetworkOffline(t *testing.T) {
	testutil.RequireRoot(t)
	unshare := testutil.RequireTool(t, "unshare")
	root := t.TempDir()
	testutil.CheckNoMounts(t, root)
	dir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN echo ns=$(readlink /proc/self/ns/net) ifaces=$(ls /sys/class/net | tr '\\n' ,) && test $(( $(cat /sys/class/net/lo/flags) & 1 )) = 1 && echo lo-up\n")
	cmd := exec.Command(unshare, "--net", "--", "/bin/sh", "-c", `echo outer=$(readlink /proc/self/ns/net) >&2; exec "$@"`, "sh",
		os.Args[0], "build", "--root", root, "--progress", "plain", dir)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("offline build: %v\n%s", err, out)
	}
	outer := regexp.MustCompile(`outer=(net:\[\d+\])`).FindSubmatch(out)
	inner := regexp.MustCompile(`ns=(net:\[\d+\]) ifaces=(\S*)`).FindSubmatch(out)
	if outer == nil || inner == nil || bytes.Equal(outer[1], inner[1]) {
		t.Errorf("RUN step not in a namespace of its own:\n%s", out)
	}
	if inner != nil && string(inner[2]) != "lo," {
		t.Errorf("interfaces %q, want lo only", inner[2])
	}
	if !bytes.Contains(out, []byte("lo-up")) || !bytes.Contains(out, []byte("no network route")) {
		t.Errorf("want loopback up and a warning:\n%s", out)
	}
}
