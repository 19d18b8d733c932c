package main

import (
	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
)

func newTagCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SRC DEST",
		Short: "Give a stored image another name",
		Long:  "Point the name DEST at the image SRC names (a name or a manifest digest sha256:...).",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			img, err := image.Resolve(st, args[0])
			if err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			return st.Tag(args[1], d.String())
		},
	}
}
