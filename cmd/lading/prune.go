package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/gc"
)

func newPruneCmd() *cobra.Command {
	var (
		keep    string
		filters []string
		o       gc.Options
	)
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove build cache, least recently used first, and unreferenced data",
		Long: `Remove the build cache records of both snapshotters and their snapshots, least
recently used first (all of them, until the cache fits in --keep-storage, or those
unused for the --filter until= duration), then every snapshot and blob that neither
a named image nor a remaining record uses. Cache mounts (RUN --mount=type=cache)
go only with --mounts, --filter id=ID or --all. Waits for running builds, pulls
and loads to finish.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.KeepStorage = -1
			if keep != "" {
				n, err := builder.ParseSize(keep)
				if err != nil {
					return fmt.Errorf("--keep-storage: %w", err)
				}
				o.KeepStorage = n
			}
			if err := parseFilters(filters, &o); err != nil {
				return err
			}
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			o.Waiting = waitingNote(cmd)
			s, err := gc.Prune(cmd.Context(), st, o)
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d cache records, %d snapshots (and %d no record used), %d cache mounts, %d blobs; freed %s\n",
				s.Records, s.Snapshots, s.Swept, s.Mounts, s.Blobs, humanSize(s.Bytes))
			return err
		},
	}
	cmd.Flags().StringVar(&keep, "keep-storage", "", "keep the most recently used cache up to this size (e.g. 5g)")
	cmd.Flags().BoolVar(&o.Mounts, "mounts", false, "also remove cache mounts (RUN --mount=type=cache)")
	cmd.Flags().BoolVar(&o.All, "all", false, "remove every cache record and cache mount")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "id=ID: only the cache mount ID (repeatable); until=DURATION: only what was unused for longer (e.g. 24h)")
	return cmd
}

// parseFilters reads --filter id=ID and until=DURATION values.
func parseFilters(filters []string, o *gc.Options) error {
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		switch {
		case ok && k == "id" && v != "":
			o.MountIDs = append(o.MountIDs, v)
		case ok && k == "until":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("--filter %s: want a positive duration such as 24h", f)
			}
			o.Until = d
		default:
			return fmt.Errorf("--filter %q: want id=ID or until=DURATION", f)
		}
	}
	return nil
}

// waitingNote tells the user why the command does not go on yet.
func waitingNote(cmd *cobra.Command) func() {
	return func() {
		fmt.Fprintln(cmd.ErrOrStderr(), "waiting for running builds, pulls and loads to finish...")
	}
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
