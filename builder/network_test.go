package builder_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/internal/testutil"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/runtime"
)

// netnsOf returns the namespaces ("net:[N]") that RUN steps printed as
// "ns=net:[N]" in the build output, in order.
func netnsOf(out string) []string {
	var ns []string
	for _, m := range regexp.MustCompile(`ns=(net:\[\d+\])`).FindAllStringSubmatch(out, -1) {
		ns = append(ns, m[1])
	}
	return ns
}

func requirePasta(t *testing.T) {
	t.Helper()
	testutil.RequireTool(t, "pasta")
}

// TestDefaultNetworkIsPrivate: by default, RUN steps (of two stages
// built in parallel) share one private network namespace that is not the
// host's, cannot reach a service on the host's 127.0.0.1, and leave
// nothing behind: once Build returns no process holds the namespace (so
// pasta, which holds it, is gone too).
func TestDefaultNetworkIsPrivate(t *testing.T) {
	requirePasta(t)
	e := newEnv(t)
	e.busybox()
	port, accepted := testutil.LoopbackListener(t)
	recipe := fmt.Sprintf(`FROM busybox:test AS a
RUN echo ns=$(readlink /proc/self/ns/net); nc -w 2 127.0.0.1 %d </dev/null || echo lo-unreachable
FROM busybox:test
RUN echo ns=$(readlink /proc/self/ns/net)
COPY --from=a /etc/passwd /a
`, port)
	e.mustBuild(e.context(nil), recipe)
	out := e.progress.String()
	ns := netnsOf(out)
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[0] != ns[1] || ns[0] == host {
		t.Fatalf("RUN steps in namespaces %v, host in %s: want one shared private namespace", ns, host)
	}
	if !strings.Contains(out, "lo-unreachable") || accepted() != 0 {
		t.Errorf("a default RUN step reached the host's loopback (%d connections):\n%s", accepted(), out)
	}
	if h := testutil.NamespaceHolders(t, ns[0]); len(h) > 0 {
		t.Errorf("namespace %s still held after the build: %v", ns[0], h)
	}
}

// TestOutboundDefaultNetwork: a default RUN step resolves and fetches
// Debian's apt mirror (the one outside host this machine reaches) with
// busybox wget.
func TestOutboundDefaultNetwork(t *testing.T) {
	requirePasta(t)
	e := newEnv(t)
	e.busybox()
	e.mustBuild(e.context(nil), `FROM busybox:test
RUN echo ns=$(readlink /proc/self/ns/net); wget -q -O - http://deb.debian.org/debian/dists/bookworm/Release | grep '^Origin:'
`)
	out := e.progress.String()
	host, _ := os.Readlink("/proc/self/ns/net")
	if ns := netnsOf(out); len(ns) != 1 || ns[0] == host {
		t.Errorf("RUN in namespace %v, host in %s", ns, host)
	}
	if !strings.Contains(out, "Origin: Debian") {
		t.Errorf("no Release file fetched:\n%s", out)
	}
}

// TestHostNetworkNeedsEntitlement: the host's network only with
// Allow network.host, whether the build or a RUN step asks for it; the
// recipe's request is refused at its line before any step runs. Granted,
// the step is in the host's namespace, without raw sockets.
func TestHostNetworkNeedsEntitlement(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	ctxDir := e.context(nil)
	recipe := `FROM busybox:test
RUN touch /ran
RUN --network=host echo ns=$(readlink /proc/self/ns/net); ping -c1 -W1 127.0.0.1 || echo ping-refused
`
	_, err := e.build(ctxDir, recipe, nil)
	var se *builder.StepError
	if !errors.As(err, &se) || !errors.Is(err, builder.ErrNotEntitled) ||
		!strings.HasPrefix(err.Error(), "Recipe:3: RUN --network=host needs the network.host entitlement") {
		t.Fatalf("RUN --network=host without --allow: got %v", err)
	}
	if hits, misses := e.last.cachedSteps(); len(hits)+len(misses) != 0 {
		t.Errorf("steps ran before the refusal: %v %v", hits, misses)
	}

	e.opts = func(o *builder.Options) { o.Network = runtime.NetworkHost }
	if _, err := e.build(ctxDir, "FROM busybox:test\nRUN true\n", nil); !errors.Is(err, builder.ErrNotEntitled) {
		t.Errorf("Network host without Allow: got %v", err)
	}

	e.opts = func(o *builder.Options) { o.Allow = []string{builder.AllowNetworkHost} }
	e.progress.Reset()
	e.mustBuild(ctxDir, recipe)
	out := e.progress.String()
	host, _ := os.Readlink("/proc/self/ns/net")
	if ns := netnsOf(out); len(ns) != 1 || ns[0] != host {
		t.Errorf("RUN --network=host in %v, host in %s", ns, host)
	}
	if !strings.Contains(out, "ping-refused") {
		t.Errorf("raw sockets work in the host's namespace:\n%s", out)
	}
}

// TestCancelRemovesNetwork: a build cancelled while a RUN step runs in the
// default network has stopped pasta and released the namespace by the
// time Build returns.
func TestCancelRemovesNetwork(t *testing.T) {
	requirePasta(t)
	e := newEnv(t)
	e.busybox()
	plan, err := parser.Parse(strings.NewReader("FROM busybox:test\nRUN sleep 600\n"), parser.Options{File: "Recipe"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := builder.Run(ctx, plan, builder.Options{ContextDir: e.context(nil), Store: e.store, Snapshots: e.snaps})
		done <- err
	}()
	// Wait for pasta and the step's sleep.
	pasta, ns := 0, ""
	for deadline := time.Now().Add(60 * time.Second); pasta == 0 || ns == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatal("no RUN step with pasta beside it started")
		}
		pasta, ns = 0, ""
		for pid, name := range testutil.Descendants(os.Getpid()) {
			switch {
			case strings.HasPrefix(name, "pasta") || strings.HasPrefix(name, "passt"):
				pasta = pid
			case name == "sleep":
				ns, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
			}
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Build: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pasta)); err == nil {
		t.Errorf("pasta (%d) still running after Build returned", pasta)
	}
	if h := testutil.NamespaceHolders(t, ns); len(h) > 0 {
		t.Errorf("namespace %s still held after Build returned: %v", ns, h)
	}
}

// TestWarmNetworkLeavesNothing: the private network is started at the
// first cache miss, ahead of the first RUN step; a build that fails
// before that step ran (here at a COPY of a missing file) still stops
// pasta and releases the namespace before Build returns.
func TestWarmNetworkLeavesNothing(t *testing.T) {
	requirePasta(t)
	e := newEnv(t)
	e.busybox()
	_, err := e.build(e.context(map[string]string{"a": "a"}), "FROM busybox:test\nCOPY a /a\nCOPY missing /m\nRUN true\n", nil)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("build: %v, want a failure naming the missing file", err)
	}
	for pid, name := range testutil.Descendants(os.Getpid()) {
		t.Errorf("process %d (%s) still running after Build returned", pid, name)
	}
}
