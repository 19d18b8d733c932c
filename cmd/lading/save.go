package main

import (
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/store"
)

func newSaveCmd() *cobra.Command {
	var output, format string
	cmd := &cobra.Command{
		Use:   "save -o FILE [--format oci|docker] NAME...",
		Short: "Write a stored image to an OCI or docker archive",
		Long: `Write a stored image to an archive: an OCI image layout tar (--format oci, the
default; skopeo's oci-archive) or a tar docker load reads (--format docker).
Several NAMEs must name the same image: each becomes a name in the archive.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return errors.New("give the archive with -o FILE")
			}
			if format != "oci" && format != "docker" {
				return fmt.Errorf("--format %q: want oci or docker", format)
			}
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			if idx, ok, err := image.ResolveIndex(st, args[0]); err == nil && ok {
				return saveIndex(cmd, st, idx, output, format, args)
			}
			var img v1.Image
			var first v1.Hash
			for _, n := range args {
				i, err := image.Resolve(st, n)
				if err != nil {
					return err
				}
				d, err := i.Digest()
				if err != nil {
					return err
				}
				if img == nil {
					img, first = i, d
				} else if d != first {
					return fmt.Errorf("saving: %s and %s are different images; one archive holds one image", args[0], n)
				}
			}
			exp := image.NewOCIArchive(output, args)
			if format == "docker" {
				exp = image.NewDockerArchive(output, args)
			}
			return exp.Export(cmd.Context(), img)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "archive to write")
	cmd.Flags().StringVar(&format, "format", "oci", "archive format: oci or docker")
	return cmd
}

// saveIndex writes a multi-platform image: OCI archives only.
func saveIndex(cmd *cobra.Command, st *store.Store, idx v1.ImageIndex, output, format string, names []string) error {
	want, err := idx.Digest()
	if err != nil {
		return err
	}
	for _, n := range names[1:] {
		other, ok, err := image.ResolveIndex(st, n)
		if err != nil {
			return err
		}
		if d, _ := other.Digest(); !ok || d != want {
			return fmt.Errorf("saving: %s and %s are different images; one archive holds one image", names[0], n)
		}
	}
	if format == "docker" {
		return fmt.Errorf("saving %s: %w", names[0], image.ErrDockerIndex)
	}
	return image.NewOCIArchive(output, names).(image.IndexExporter).ExportIndex(cmd.Context(), idx)
}
