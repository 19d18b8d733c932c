package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/builder"
)

// binfmtArchs are the architectures `lading binfmt` reports.
var binfmtArchs = []string{"amd64", "386", "arm64", "arm", "ppc64le", "s390x", "riscv64", "mips64le"}

func newBinfmtCmd() *cobra.Command {
	var install bool
	cmd := &cobra.Command{
		Use:   "binfmt [--install]",
		Short: "Show (or, as root, enable) QEMU emulation for RUN steps of other architectures",
		Long: `RUN steps of an image for another architecture run through the kernel's
binfmt_misc with QEMU user emulation. lading never registers handlers on its
own: this command shows which architectures have one, and with --install
mounts binfmt_misc when needed and enables the handlers Debian's
qemu-user-static package provides (update-binfmts, from binfmt-support).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if install {
				if err := installBinfmt(cmd); err != nil {
					return err
				}
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ARCH\tHANDLER\tSTATUS")
			for _, a := range binfmtArchs {
				status := "native"
				ok, name := builder.BinfmtEnabled(a)
				switch {
				case builder.NativeArch(a):
				case ok:
					status = "emulated"
				default:
					status = "unavailable"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", a, name, status)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&install, "install", false, "register the QEMU handlers of qemu-user-static (root)")
	return cmd
}

// installBinfmt mounts binfmt_misc if needed and enables every QEMU
// handler Debian's binfmt-support knows.
func installBinfmt(cmd *cobra.Command) error {
	if os.Geteuid() != 0 {
		return errors.New("binfmt --install needs root")
	}
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/register"); err != nil {
		if out, err := exec.Command("mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc").CombinedOutput(); err != nil {
			return fmt.Errorf("mounting binfmt_misc: %v: %s", err, out)
		}
	}
	if _, err := exec.LookPath("update-binfmts"); err != nil {
		return errors.New("update-binfmts is not installed: apt-get install qemu-user-static binfmt-support")
	}
	for _, a := range binfmtArchs {
		if builder.NativeArch(a) {
			continue
		}
		_, name := builder.BinfmtEnabled(a)
		if _, err := os.Stat("/usr/share/binfmts/" + name); err != nil {
			continue // qemu-user-static has no handler of that name
		}
		if out, err := exec.CommandContext(cmd.Context(), "update-binfmts", "--enable", name).CombinedOutput(); err != nil {
			return fmt.Errorf("update-binfmts --enable %s: %v: %s", name, err, out)
		}
	}
	return nil
}
