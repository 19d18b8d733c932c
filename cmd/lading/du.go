package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/gc"
)

func newDuCmd() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "du",
		Short: "Show the disk usage of the root: blobs, snapshots, cache records and cache mounts",
		Long: `Show what the root uses on disk, by kind: blobs (layers, configs, manifests),
base snapshots (unpacked FROM layers), step snapshots, active snapshots (of running
or killed builds), cache records, cache mounts and the rest. Sizes are apparent
sizes, as du -sb counts them; the total is the whole root.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			u, err := gc.DiskUsage(cmd.Context(), st)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			if verbose {
				fmt.Fprintln(w, "SIZE\tLAST USED\tSTAGE\tSTEP")
				for _, e := range u.Records {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", humanSize(e.Size), e.LastUsed.Format("2006-01-02 15:04"), e.Stage, oneLine(e.Step, 60))
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w, "KIND\tCOUNT\tSIZE\tBYTES")
			for _, c := range u.Categories {
				count := fmt.Sprint(c.Count)
				if c.Name == gc.Other {
					count = ""
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", c.Name, count, humanSize(c.Size), c.Size)
			}
			fmt.Fprintf(w, "total\t\t%s\t%d\n", humanSize(u.Total), u.Total)
			fmt.Fprintf(w, "reclaimable\t\t%s\t%d\n", humanSize(u.Reclaimable), u.Reclaimable)
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
