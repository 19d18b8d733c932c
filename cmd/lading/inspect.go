package main

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
)

func newInspectCmd() *cobra.Command {
	var platform string
	cmd := &cobra.Command{
		Use:   "inspect [--platform P] NAME",
		Short: "Print a stored image's manifest and config as JSON",
		Long: `Print a stored image's manifest and config as JSON. For a multi-platform image
(an index) it prints the index, unless --platform picks one of its images.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			if idx, ok, err := image.ResolveIndex(st, args[0]); err == nil && ok && platform == "" {
				return printIndex(cmd, idx)
			}
			p, err := parseRemotePlatform(platform)
			if err != nil {
				return err
			}
			if p == nil {
				hp := image.HostPlatform()
				p = &hp
			}
			img, err := image.ResolvePlatform(st, args[0], *p)
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
	cmd.Flags().StringVar(&platform, "platform", "", "the image of this platform os/arch[/variant] in a multi-platform image")
	return cmd
}

// printIndex prints a multi-platform image: its digest and index.
func printIndex(cmd *cobra.Command, idx v1.ImageIndex) error {
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(struct {
		Digest string          `json:"digest"`
		Index  json.RawMessage `json:"index"`
	}{d.String(), raw}, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), string(out))
	return nil
}
