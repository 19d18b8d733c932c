package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
)

func newPullCmd() *cobra.Command {
	var (
		f        remoteFlags
		platform string
	)
	cmd := &cobra.Command{
		Use:   "pull NAME[:TAG|@DIGEST]",
		Short: "Pull an image from a registry into the local store",
		Long: `Pull an image from a registry into the local store and print its digest.

NAME is read like docker reads it: "debian:12" is index.docker.io/library/debian:12.
The image is stored under that full name and found by either. Credentials come
from $DOCKER_CONFIG/config.json (see lading login); insecure registries and
mirrors can also be set in $root/registries.json or /etc/lading/registries.json:
{"insecure": ["host:port"], "mirrors": {"docker.io": ["mirror.example:5000"]}}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			o, err := f.options(cmd, st)
			if err != nil {
				return err
			}
			if o.Platform, err = parseRemotePlatform(platform); err != nil {
				return err
			}
			img, err := image.Pull(cmd.Context(), st, args[0], o)
			if err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), d)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print only the digest")
	cmd.Flags().StringVar(&platform, "platform", "", "platform to pull from a multi-platform image, os/arch[/variant] (default linux/<this machine's arch>)")
	return cmd
}
