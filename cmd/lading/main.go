// Command lading builds container images from Dockerfile-like recipes,
// without a daemon.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/store"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	builder.Init()
	softMemoryLimit()
	os.Exit(run())
}

func run() int {
	if code, reexeced := enterUserNamespace(); reexeced {
		return code
	}
	if code, reexeced := enterMountNamespace(); reexeced {
		return code
	}
	ctx, sig := signalContext()
	root := newRootCmd()
	cmd, err := root.ExecuteContextC(ctx)
	if cmd == nil {
		cmd = root
	}
	if s := sig(); s != 0 {
		printError(cmd, fmt.Errorf("lading: interrupted (%v)", s))
		return 128 + int(s)
	}
	if err != nil {
		printError(cmd, err)
		return 1
	}
	return 0
}

// signalContext returns a context cancelled by SIGINT or SIGTERM, and a
// function telling which signal (0 when none) arrived.
func signalContext() (context.Context, func() syscall.Signal) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	var got syscall.Signal
	done := make(chan struct{})
	go func() {
		s := <-ch
		got = s.(syscall.Signal)
		close(done)
		cancel()
	}()
	return ctx, func() syscall.Signal {
		select {
		case <-done:
			return got
		default:
			return 0
		}
	}
}

// printError prints the one-line error, after the tail of a failed step's
// output when there is one; with --progress json, as a JSON error event.
func printError(cmd *cobra.Command, err error) {
	if f := cmd.Flags().Lookup("progress"); f != nil && f.Value.String() == "json" {
		builder.WriteJSONError(os.Stderr, err)
		return
	}
	var se *builder.StepError
	if errors.As(err, &se) && se.Tail != "" {
		fmt.Fprintf(os.Stderr, "------ output of the failed step (last lines) ------\n%s\n------\n", se.Tail)
	}
	fmt.Fprintln(os.Stderr, err)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "lading",
		Short:         "Build container images from Dockerfile-like recipes, without a daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().Bool("rootless", false, "build in a user namespace as when not root (the default for other users)")
	root.PersistentFlags().String("root", "", "state directory (default /var/lib/lading for root, $XDG_DATA_HOME/lading otherwise)")
	root.AddCommand(newBuildCmd(), newImagesCmd(), newPruneCmd(), newDuCmd(), newCheckCmd(), newCacheCmd(), newVersionCmd(),
		newPullCmd(), newPushCmd(), newTagCmd(), newRmiCmd(), newLoadCmd(), newSaveCmd(), newInspectCmd(), newLoginCmd(), newLogoutCmd(), newBinfmtCmd())
	return root
}

// openStore opens the state directory of --root.
func openStore(cmd *cobra.Command) (*store.Store, error) {
	root, _ := cmd.Flags().GetString("root")
	if root == "" {
		root = defaultRoot()
	}
	return store.Open(root)
}
