package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/builder"
)

func newCacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Carry RUN --mount=type=cache contents between machines",
	}
	cmd.AddCommand(newCacheExportCmd(), newCacheImportCmd(), newCacheListCmd())
	return cmd
}

func newCacheExportCmd() *cobra.Command {
	var out string
	var ids []string
	cmd := &cobra.Command{
		Use:   "export -o FILE [--id ID]...",
		Short: "Write cache mounts (all, or the given ids) to a .tar.gz (- for stdout)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			var w io.Writer = cmd.OutOrStdout()
			var f *os.File
			if out != "-" {
				if f, err = os.Create(out + ".tmp"); err != nil {
					return err
				}
				defer os.Remove(out + ".tmp")
				w = f
			}
			if err := builder.ExportCacheMounts(cmd.Context(), st, ids, w); err != nil {
				if f != nil {
					f.Close()
				}
				return err
			}
			if f != nil {
				if err := f.Close(); err != nil {
					return err
				}
				return os.Rename(out+".tmp", out)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "archive to write (- for stdout)")
	cmd.Flags().StringArrayVar(&ids, "id", nil, "cache mount id (repeatable; default all)")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

func newCacheImportCmd() *cobra.Command {
	var in string
	cmd := &cobra.Command{
		Use:   "import -i FILE",
		Short: "Load cache mounts from a cache export (- for stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			var r io.Reader = cmd.InOrStdin()
			if in != "-" {
				f, err := os.Open(in)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			ids, err := builder.ImportCacheMounts(cmd.Context(), st, r)
			for _, id := range ids {
				fmt.Fprintf(cmd.OutOrStdout(), "imported cache mount %s\n", id)
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&in, "input", "i", "", "archive to read (- for stdin)")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func newCacheListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List cache mount ids",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			ids, err := builder.CacheMountIDs(st)
			for _, id := range ids {
				fmt.Fprintln(cmd.OutOrStdout(), id)
			}
			return err
		},
	}
}
