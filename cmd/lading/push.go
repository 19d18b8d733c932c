package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
)

func newPushCmd() *cobra.Command {
	var f remoteFlags
	cmd := &cobra.Command{
		Use:   "push NAME [DEST]",
		Short: "Push a stored image to a registry",
		Long: `Push the stored image NAME to the registry reference DEST (default NAME) and
print the pushed manifest digest. Blobs the registry already has are not sent.
A multi-platform image is pushed whole: every image, then its index.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			dest := args[0]
			if len(args) == 2 {
				dest = args[1]
			}
			o, err := f.options(cmd, st)
			if err != nil {
				return err
			}
			var d fmt.Stringer
			if idx, ok, err := image.ResolveIndex(st, args[0]); err == nil && ok {
				// A multi-platform image: every image, then the index.
				if d, err = image.PushIndex(cmd.Context(), idx, dest, o); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), d)
				return nil
			}
			img, err := image.Resolve(st, args[0])
			if err != nil {
				return err
			}
			if d, err = image.Push(cmd.Context(), st, img, dest, o); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), d)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print only the digest")
	return cmd
}
