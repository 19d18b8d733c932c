package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
)

func newRmiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rmi NAME...",
		Short: "Remove image names from the local store",
		Long: `Remove image names. Blobs no name or cache record uses any more are deleted
by lading prune.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			var errs []error
			for _, a := range args {
				n, _, err := image.LookupName(st, a)
				if err == nil {
					err = st.Untag(n)
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "untagged %s\n", n)
			}
			return errors.Join(errs...)
		},
	}
}
