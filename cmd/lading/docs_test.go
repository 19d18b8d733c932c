package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite docs/cli.md")

// cliReference renders every command's usage, description and flags, as
// `lading CMD --help` shows them.
func cliReference(root *cobra.Command) string {
	var b strings.Builder
	b.WriteString("# lading command reference\n\n")
	b.WriteString("Generated from the commands' own help (`make docs`); a test fails when it is out of date.\n\n")
	fmt.Fprintf(&b, "Every command takes `--root DIR`: %s.\n", root.PersistentFlags().Lookup("root").Usage)
	var walk func(*cobra.Command)
	walk = func(parent *cobra.Command) {
		for _, cmd := range parent.Commands() {
			if !cmd.IsAvailableCommand() || cmd.Name() == "help" {
				continue
			}
			fmt.Fprintf(&b, "\n## %s\n\n%s.\n\n```\n%s\n```\n", cmd.CommandPath(), cmd.Short, cmd.UseLine())
			if cmd.Long != "" {
				fmt.Fprintf(&b, "\n```\n%s\n```\n", strings.TrimSpace(cmd.Long))
			}
			if flags := cmd.LocalFlags().FlagUsages(); flags != "" {
				fmt.Fprintf(&b, "\nFlags:\n\n```\n%s```\n", flags)
			}
			walk(cmd)
		}
	}
	walk(root)
	return b.String()
}

// TestCLIReference keeps docs/cli.md equal to the commands' help; run
// `go test ./cmd/lading -run TestCLIReference -update` (make docs) after
// changing a command.
func TestCLIReference(t *testing.T) {
	const path = "../../docs/cli.md"
	want := cliReference(newRootCmd())
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("docs/cli.md is out of date with the commands' flags: run make docs")
	}
}
