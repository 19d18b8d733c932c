package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newImagesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "images",
		Short: "List the named images in the local store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			names, err := st.Names()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tDIGEST\tCREATED")
			for _, n := range names {
				fmt.Fprintf(w, "%s\t%s\t%s\n", n.Name, n.Digest, n.Created.Format("2006-01-02 15:04:05"))
			}
			return w.Flush()
		},
	}
}
