package main

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/store"
)

// remoteFlags are the registry flags shared by pull, push and login.
type remoteFlags struct {
	insecure []string
	quiet    bool
}

func (f *remoteFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.insecure, "insecure-registry", nil, "reach this registry (host[:port]) over plain http; repeatable")
}

// options reads $root/registries.json or /etc/lading/registries.json and
// adds the flags; progress lines go to stderr unless quiet.
func (f *remoteFlags) options(cmd *cobra.Command, st *store.Store) (image.RemoteOptions, error) {
	o, err := image.LoadRemoteConfig(st.Path("registries.json"), "/etc/lading/registries.json")
	if err != nil {
		return o, err
	}
	o.Insecure = append(o.Insecure, f.insecure...)
	if !f.quiet {
		errw := cmd.ErrOrStderr()
		o.Progress = func(line string) { fmt.Fprintln(errw, line) }
	}
	return o, nil
}

// parseRemotePlatform parses --platform os/arch[/variant]; "" means the
// default (linux/<GOARCH>).
func parseRemotePlatform(s string) (*v1.Platform, error) {
	if s == "" {
		return nil, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return nil, fmt.Errorf("--platform %q: want os/arch[/variant]", s)
	}
	return p, nil
}
