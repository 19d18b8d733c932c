package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newDuCmd() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "du",
		Short: "Show the disk usage of the build cache",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, c, snaps, err := openCache(cmd)
			if err != nil {
				return err
			}
			defer snaps.Close()
			u, err := c.Usage(snapshotSize(cmd.Context(), snaps))
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			if verbose {
				fmt.Fprintln(w, "SIZE\tLAST USED\tSTAGE\tSTEP")
				for _, e := range u.Entries {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", humanSize(e.Size), e.LastUsed.Format("2006-01-02 15:04"), e.Stage, oneLine(e.Step, 60))
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "cache records:\t%d\n", u.Records)
			fmt.Fprintf(w, "snapshots:\t%d\n", u.Snapshots)
			fmt.Fprintf(w, "total:\t%s\n", humanSize(u.Size))
			fmt.Fprintf(w, "reclaimable:\t%s\n", humanSize(u.Reclaimable))
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every cache record")
	return cmd
}

func oneLine(s string, max int) string {
	if len(s) > max {
		return s[:max-3] + "..."
	}
	return s
}
