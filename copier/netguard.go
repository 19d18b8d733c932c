package copier

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrHostAddress is returned when a URL or Git source, a redirect or a
// proxy would connect to one of the host's own addresses (loopback,
// link-local, unspecified) without Request.HostNetwork.
var ErrHostAddress = errors.New("connecting to a loopback or link-local address needs the network.host entitlement")

// hostAddr reports whether connecting to ip reaches the host itself or
// its link: loopback (127/8, ::1), link-local (169.254/16, fe80::/10),
// unspecified or 0/8, and the IPv4-mapped forms of these.
func hostAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is4() && ip.As4()[0] == 0 {
		return true
	}
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsUnspecified()
}

// guardControl is a net.Dialer Control hook refusing host addresses. It
// runs on every connection, after name resolution, so redirects, proxies
// and names that resolve differently the second time are all checked.
func guardControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", address, ErrHostAddress)
	}
	if hostAddr(ap.Addr()) {
		return fmt.Errorf("connecting to %s: %w", address, ErrHostAddress)
	}
	return nil
}

// newDialer returns a dialer that refuses host addresses unless
// hostNetwork.
func newDialer(hostNetwork bool) *net.Dialer {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if !hostNetwork {
		d.Control = guardControl
	}
	return d
}

// newTransport is http.DefaultTransport (proxies from the environment
// included) dialing through newDialer: a proxy on a host address is
// refused like any other connection.
func newTransport(hostNetwork bool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = newDialer(hostNetwork).DialContext
	return t
}

// Default clients, when Request.HTTPClient is nil.
var (
	guardedClient = &http.Client{Timeout: 30 * time.Minute, Transport: newTransport(false)}
	hostClient    = &http.Client{Timeout: 30 * time.Minute, Transport: newTransport(true)}
)

// checkHost resolves host and refuses it when any of its addresses is a
// host address. It guards connections lading does not make itself (git
// over ssh or git://), so a name resolving differently later is not
// caught; http(s) goes through guardControl instead.
func checkHost(ctx context.Context, host string) error {
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", host, err)
	}
	for _, a := range addrs {
		if hostAddr(a) {
			return fmt.Errorf("%s is %s: %w", host, a, ErrHostAddress)
		}
	}
	return nil
}

// gitNet is the network of one Git operation. Without HostNetwork, git's
// http(s) traffic (submodules and redirects included) goes through an
// in-process proxy that dials like the download client; ssh and git://
// remotes have their host checked with checkHost and are refused for
// submodules (whose hosts lading cannot check).
type gitNet struct {
	host  bool
	proxy string // "http://127.0.0.1:PORT", or "" with host networking
	stop  func()

	mu      sync.Mutex
	refused error // the first connection the proxy refused
}

// startGitNet starts the proxy unless hostNetwork; stop it with close.
func startGitNet(hostNetwork bool) (*gitNet, error) {
	return startGitNetVia(hostNetwork, http.ProxyFromEnvironment)
}

// startGitNetVia is startGitNet with the function that picks the proxy
// the in-process proxy's tunnels go through.
func startGitNetVia(hostNetwork bool, proxy func(*http.Request) (*url.URL, error)) (*gitNet, error) {
	n := &gitNet{host: hostNetwork, stop: func() {}}
	if hostNetwork {
		return n, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the git proxy: %w", err)
	}
	p := &gitProxy{dialer: newDialer(false), transport: newTransport(false), net: n, proxy: proxy}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go srv.Serve(l)
	n.proxy = "http://" + l.Addr().String()
	n.stop = func() {
		srv.Close()
		p.transport.CloseIdleConnections()
	}
	return n, nil
}

func (n *gitNet) close() { n.stop() }

// config is the git configuration for this network.
func (n *gitNet) config() []string {
	if n.host {
		return []string{"-c", "protocol.ssh.allow=always", "-c", "protocol.git.allow=always"}
	}
	// "user": allowed for the remote lading checked, not for submodules.
	return []string{"-c", "http.proxy=" + n.proxy, "-c", "protocol.ssh.allow=user", "-c", "protocol.git.allow=user"}
}

// check refuses an ssh or git:// remote on a host address; http(s) ones
// are checked by the proxy on every connection.
func (n *gitNet) check(ctx context.Context, remote string) error {
	if n.host {
		return nil
	}
	var host string
	if u, err := url.Parse(remote); err == nil && strings.Contains(remote, "://") {
		if s := strings.ToLower(u.Scheme); s == "http" || s == "https" {
			return nil
		}
		host = u.Hostname()
	} else if m := scpURL.FindString(remote); m != "" {
		_, h, _ := strings.Cut(m, "@")
		host = h[:strings.LastIndex(h, ":")]
	}
	if host == "" {
		return fmt.Errorf("git source %s: no host", redact(remote))
	}
	return checkHost(ctx, host)
}

// wrap gives the proxy's reason when git failed because a connection was
// refused.
func (n *gitNet) wrap(err error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil && n.refused != nil {
		return fmt.Errorf("%w (%w)", err, n.refused)
	}
	return err
}

// gitProxy is a forward HTTP proxy: CONNECT tunnels for https, absolute
// URLs for http, every connection made through the guarded dialer.
type gitProxy struct {
	dialer    *net.Dialer
	transport *http.Transport
	net       *gitNet
	// proxy picks the proxy for a CONNECT (http.ProxyFromEnvironment).
	proxy func(*http.Request) (*url.URL, error)
}

// refuse answers a request whose connection failed, remembering why.
func (p *gitProxy) refuse(w http.ResponseWriter, _ *http.Request, err error) {
	p.net.mu.Lock()
	if p.net.refused == nil {
		p.net.refused = err
	}
	p.net.mu.Unlock()
	http.Error(w, err.Error(), http.StatusBadGateway)
}

func (p *gitProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		rp := &httputil.ReverseProxy{
			Rewrite:      func(pr *httputil.ProxyRequest) { pr.Out.Header.Del("Proxy-Authorization") },
			Transport:    p.transport,
			ErrorHandler: p.refuse,
		}
		rp.ServeHTTP(w, r)
		return
	}
	up, upR, err := p.tunnel(r.Context(), r.Host)
	if err != nil {
		p.refuse(w, r, err)
		return
	}
	defer up.Close()
	c, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(up, buf) // buf reads what is buffered, then c
		up.Close()       // git is done with the tunnel
		close(done)
	}()
	io.Copy(c, upR)
	c.Close()
	<-done
}

// tunnel connects to host (host:port) for a CONNECT request: directly, or
// through the environment's https proxy as the download client would
// (the connection to the proxy guarded like any other). It returns the
// connection and the reader to read it with.
func (p *gitProxy) tunnel(ctx context.Context, host string) (net.Conn, io.Reader, error) {
	via, err := p.proxy(&http.Request{URL: &url.URL{Scheme: "https", Host: host}})
	if err != nil {
		return nil, nil, err
	}
	if via == nil {
		c, err := p.dialer.DialContext(ctx, "tcp", host)
		return c, c, err
	}
	port := via.Port()
	if port == "" {
		port = "80"
		if via.Scheme == "https" {
			port = "443"
		}
	}
	c, err := p.dialer.DialContext(ctx, "tcp", net.JoinHostPort(via.Hostname(), port))
	if err != nil {
		return nil, nil, err
	}
	if via.Scheme == "https" {
		tc := tls.Client(c, &tls.Config{ServerName: via.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, nil, err
		}
		c = tc
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: host}, Host: host, Header: http.Header{}}
	if u := via.User; u != nil {
		pw, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	br := bufio.NewReader(c)
	if err := connect(c, br, req); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("proxy %s: CONNECT %s: %w", via.Redacted(), host, err)
	}
	return c, br, nil
}

// connect sends a CONNECT request on c and reads the proxy's answer
// through br.
func connect(c net.Conn, br *bufio.Reader, req *http.Request) error {
	if err := req.Write(c); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}
