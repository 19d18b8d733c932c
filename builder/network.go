package builder

import (
	"context"
	"errors"
	"fmt"

	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/runtime"
)

// Entitlements the user can grant with Options.Allow (--allow), named as
// in BuildKit. A recipe alone can never grant one.
const (
	// AllowNetworkHost lets RUN steps use the host's network namespace
	// (--network host, RUN --network=host).
	AllowNetworkHost = "network.host"
)

// ErrNotEntitled is the error (tested with errors.Is) for host networking
// the user did not grant.
var ErrNotEntitled = errors.New("needs the " + AllowNetworkHost + " entitlement: pass --allow " + AllowNetworkHost + " on the command line")

// checkNetwork validates the network options and every RUN --network of
// the steps the build will run, before any step runs.
func checkNetwork(plan *parser.Plan, opts Options) error {
	for _, e := range opts.Allow {
		if e != AllowNetworkHost {
			return fmt.Errorf("unknown entitlement %q (known: %s)", e, AllowNetworkHost)
		}
	}
	switch opts.Network {
	case runtime.NetworkDefault, runtime.NetworkNone:
	case runtime.NetworkHost:
		if !opts.allowed(AllowNetworkHost) {
			return fmt.Errorf("--network host %w", ErrNotEntitled)
		}
	default:
		return fmt.Errorf("--network %q: unknown network mode (default, host or none)", opts.Network)
	}
	for i, st := range plan.Stages {
		if !plan.Needed[i] {
			continue
		}
		for _, step := range st.Steps {
			if n, ok := step.RunNetwork(); ok {
				if _, err := runNetwork(step, n, opts); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// runNetwork is the network mode of a RUN step: its --network, else the
// build's. A recipe alone cannot ask for the host's network.
func runNetwork(step *parser.Step, n string, opts Options) (string, error) {
	switch n {
	case "", "default":
		return opts.Network, nil
	case runtime.NetworkNone:
		return n, nil
	case runtime.NetworkHost:
		if !opts.allowed(AllowNetworkHost) {
			return "", &StepError{Loc: step.Loc, Msg: "RUN --network=host " + ErrNotEntitled.Error(), Err: ErrNotEntitled}
		}
		return n, nil
	}
	return "", &StepError{Loc: step.Loc, Msg: fmt.Sprintf("RUN --network=%s: unknown network mode", n)}
}

func (o Options) allowed(entitlement string) bool {
	for _, e := range o.Allow {
		if e == entitlement {
			return true
		}
	}
	return false
}

// netns returns the build's private network namespace, made when the
// first RUN step with the default network runs and shared by all of them;
// closeNetns removes it when the build ends.
func (b *build) netns(ctx context.Context) (*runtime.Netns, error) {
	b.netMu.Lock()
	defer b.netMu.Unlock()
	if b.net != nil {
		return b.net, nil
	}
	n, err := runtime.NewNetns(ctx)
	if errors.Is(err, runtime.ErrNoNetworkHelper) {
		return nil, fmt.Errorf("the default network: %w: install it, or pass --network none, or --network host --allow %s", err, AllowNetworkHost)
	}
	if err != nil {
		return nil, fmt.Errorf("setting up the build's network: %w", err)
	}
	if n.Offline() {
		b.rep.Log("warning: %s: RUN steps get loopback only", n.OfflineReason())
	}
	b.net = n
	return n, nil
}

// warmRun makes, once and in the background, what the build's RUN steps
// share and the first of them would otherwise wait for: the sealed copy
// of the binary the container init runs from, and the private network
// (starting pasta). It is called at the build's first cache miss: the
// steps after a miss miss too, so a RUN step will run. An error is left
// for that step to meet and report.
func (b *build) warmRun(ctx context.Context) {
	b.warm.Do(func() {
		if !b.hasRun {
			return
		}
		b.pending.Add(1)
		go func() {
			defer b.pending.Done()
			runtime.Prepare(b.opts.Seccomp)
			if b.defaultNet {
				_, _ = b.netns(ctx)
			}
		}()
	})
}

func (b *build) closeNetns() {
	b.netMu.Lock()
	defer b.netMu.Unlock()
	if b.net != nil {
		b.net.Close()
		b.net = nil
	}
}
