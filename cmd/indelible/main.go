// Command indelible is the Indelible audit ledger: the log server, the
// witness, and the client commands. Each subcommand lives in its own file and
// registers itself on rootCmd in an init function.
package main

import (
	"errors"
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

// Exit codes of every command. The commands that verify something (audit,
// checkpoint) exit with exitFailure when it does not verify.
const (
	exitVerified = 0 // success; for a verifying command, it verified
	exitFailure  = 1 // a verification failure: what was checked is wrong
	exitTrouble  = 2 // usage, network or other trouble: nothing was concluded
)

// exitError is an error with the process exit code main should use; any
// other error exits with exitTrouble.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode returns the process exit code for a command's error.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitVerified
	case errors.As(err, &ee):
		return ee.code
	default:
		return exitTrouble
	}
}

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "indelible:", err)
		os.Exit(exitCode(err))
	}
}
