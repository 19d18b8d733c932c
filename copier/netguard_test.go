package copier

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// hostIP returns an address of this machine that is neither loopback
// nor link-local, or skips the test.
func hostIP(t *testing.T) string {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no address other than loopback and link-local")
	return ""
}

// connectProxy serves one CONNECT on l: answers status and, after 200,
// echoes what it receives. It reports the host asked for.
func connectProxy(t *testing.T, l net.Listener, status string) <-chan string {
	t.Helper()
	hosts := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != http.MethodConnect {
			return
		}
		hosts <- req.Host
		io.WriteString(c, "HTTP/1.1 "+status+"\r\nContent-Length: 0\r\n\r\n")
		io.Copy(c, br)
	}()
	return hosts
}

// dialTunnel asks the git proxy for a tunnel to host and returns the
// proxy's status line and, after a 200, what came back for "ping\n".
func dialTunnel(t *testing.T, n *gitNet, host string) (status, echo string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.proxy, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "CONNECT "+host+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.Status, ""
	}
	io.WriteString(c, "ping\n")
	echo, _ = br.ReadString('\n')
	return resp.Status, echo
}

// TestGitProxyUpstream: git's https tunnels go through the environment's
// proxy when there is one, and a proxy on the host's loopback is refused
// like any other host address.
func TestGitProxyUpstream(t *testing.T) {
	l, err := net.Listen("tcp", hostIP(t)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	via := &url.URL{Scheme: "http", Host: l.Addr().String()}
	n, err := startGitNetVia(false, func(*http.Request) (*url.URL, error) { return via, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	hosts := connectProxy(t, l, "200 OK")
	if status, echo := dialTunnel(t, n, "git.example:443"); !strings.HasPrefix(status, "200") || echo != "ping\n" {
		t.Errorf("tunnel through the proxy: %s, echo %q", status, echo)
	}
	if h := <-hosts; h != "git.example:443" {
		t.Errorf("the proxy was asked for %q", h)
	}
	connectProxy(t, l, "407 Proxy Authentication Required")
	if status, _ := dialTunnel(t, n, "git.example:443"); strings.HasPrefix(status, "200") {
		t.Errorf("a tunnel the proxy refused: %s", status)
	}
	if err := n.wrap(errors.New("git failed")); err == nil || !strings.Contains(err.Error(), "407") {
		t.Errorf("the proxy's refusal not reported: %v", err)
	}

	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	connectProxy(t, lo, "200 OK")
	via = &url.URL{Scheme: "http", Host: lo.Addr().String()}
	n2, err := startGitNetVia(false, func(*http.Request) (*url.URL, error) { return via, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer n2.close()
	if status, _ := dialTunnel(t, n2, "git.example:443"); strings.HasPrefix(status, "200") {
		t.Errorf("a proxy on the host's loopback was used: %s", status)
	}
	if err := n2.wrap(errors.New("git failed")); !errors.Is(err, ErrHostAddress) {
		t.Errorf("refusal not reported: %v", err)
	}
}
