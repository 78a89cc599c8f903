// Command indelible is the Indelible audit ledger: the log server, the
// witness, and the client commands. Each subcommand lives in its own file and
// registers itself on rootCmd in an init function.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:   "indelible",
	Short: "A verifiable, append-only audit ledger (a C2SP transparency log)",
	Long: `Indelible sequences audit events into a Merkle tree, signs checkpoints, has
independent witnesses cosign them, and serves proofs.

Start a log:   indelible serve
Run the tests: ./scripts/test.sh`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

// exitCoder lets a command choose its process exit code (audit uses 1 for a
// verification failure and 2 for usage or network trouble).
type exitCoder interface{ ExitCode() int }

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "indelible:", err)
		if ec, ok := err.(exitCoder); ok {
			os.Exit(ec.ExitCode())
		}
		os.Exit(2)
	}
}
