package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
)

func newLoadCmd() *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "load -i FILE",
		Short: "Load images from an OCI or docker archive into the local store",
		Long: `Load the images of an OCI archive (oci-archive, as lading save and skopeo write)
or a docker archive (docker save) into the local store, and tag the names the
archive gives them. Prints one "DIGEST NAME..." line per image.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				return errors.New("give the archive with -i FILE")
			}
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			// The blobs are unreferenced until the names are tagged.
			release, err := st.Hold(cmd.Context())
			if err != nil {
				return err
			}
			defer release()
			entries, err := image.ArchiveContents(input)
			if err != nil {
				return err
			}
			for _, e := range entries {
				d, _, err := image.ImportArchiveIndex(cmd.Context(), st, e.Ref)
				if err != nil {
					return err
				}
				for _, n := range e.Names {
					if err := st.Tag(n, d.String()); err != nil {
						return fmt.Errorf("loading %s: %w", input, err)
					}
				}
				fmt.Fprintln(cmd.OutOrStdout(), joinFields(d.String(), e.Names))
				if len(e.Names) == 0 {
					for _, tag := range e.BareTags {
						fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s was loaded without a name: the archive only gives it the tag %q, which names no repository (name it with: lading tag %s NAME:%s)\n", d, tag, d, tag)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "archive to read")
	return cmd
}

func joinFields(first string, rest []string) string {
	for _, r := range rest {
		first += " " + r
	}
	return first
}
