// Command indelible is the Indelible audit ledger: the log server, the
// witness, and the client commands. Each subcommand lives in its own file and
// registers itself on rootCmd in an init function.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"indelible.dev/cmd/indelible/internal/exitcode"
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

// Exit codes of every command (cmd/indelible/internal/exitcode).
const (
	exitVerified = exitcode.Verified
	exitFailure  = exitcode.Failure
	exitTrouble  = exitcode.Trouble
)

// exitCode returns the process exit code for a command's error.
func exitCode(err error) int { return exitcode.Of(err) }

func main() {
	if err := rootCmd.Execute(); err != nil {
		err = certificateHint(err)
		fmt.Fprintln(os.Stderr, "indelible:", err)
		os.Exit(exitCode(err))
	}
}
