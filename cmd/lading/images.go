package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/store"
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
			fmt.Fprintln(w, "NAME\tDIGEST\tPLATFORMS\tCREATED")
			for _, n := range names {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", n.Name, n.Digest, platformsOf(st, n.Digest), n.Created.Format("2006-01-02 15:04:05"))
			}
			return w.Flush()
		},
	}
}

// platformsOf lists the platforms of a stored image or index
// ("linux/amd64,linux/arm64"), "-" when unknown.
func platformsOf(st *store.Store, digest string) string {
	if idx, ok, err := image.LoadIndex(st, digest); err == nil && ok {
		_, plats, err := image.IndexImages(idx)
		if err != nil {
			return "-"
		}
		var out []string
		for _, p := range plats {
			out = append(out, p.String())
		}
		return strings.Join(out, ",")
	}
	img, err := image.Load(st, digest)
	if err != nil {
		return "-"
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.Platform() == nil {
		return "-"
	}
	return cf.Platform().String()
}
