package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
)

func newInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME",
		Short: "Print a stored image's manifest and config as JSON",
		Args:  cobra.ExactArgs(1),
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
			m, err := img.RawManifest()
			if err != nil {
				return err
			}
			c, err := img.RawConfigFile()
			if err != nil {
				return err
			}
			out, err := json.MarshalIndent(struct {
				Digest   string          `json:"digest"`
				Manifest json.RawMessage `json:"manifest"`
				Config   json.RawMessage `json:"config"`
			}{d.String(), m, c}, "", "  ")
			if err != nil {
				return fmt.Errorf("inspecting %s: %w", args[0], err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return nil
		},
	}
}
