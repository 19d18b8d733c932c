package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/gc"
)

func newCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Verify every stored blob; remove corrupt ones and the cache records that need them",
		Long: `Read every blob of the store and check it against its digest. Corrupt blobs are
removed, cache records whose layer is gone are dropped (the next build runs those
steps again), and image names whose blobs are incomplete are listed: pull or build
them again. Exits 1 when anything was corrupt or incomplete.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			rep, err := gc.Check(cmd.Context(), st, waitingNote(cmd))
			out := cmd.OutOrStdout()
			for _, d := range rep.Bad {
				fmt.Fprintf(out, "corrupt blob removed: %s\n", d)
			}
			for _, n := range rep.Broken {
				fmt.Fprintf(out, "incomplete image: %s\n", n)
			}
			fmt.Fprintf(out, "checked %d blobs: %d corrupt; dropped %d cache records; %d incomplete images\n",
				rep.Blobs, len(rep.Bad), rep.Records, len(rep.Broken))
			if err != nil {
				return err
			}
			if len(rep.Bad) > 0 || len(rep.Broken) > 0 {
				return fmt.Errorf("the store had %d corrupt blobs and %d incomplete images", len(rep.Bad), len(rep.Broken))
			}
			return nil
		},
	}
}
