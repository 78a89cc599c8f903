package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/internal/receipt"
	itlog "indelible.dev/tlog"
)

func init() {
	var (
		key       string
		witnesses []string
		quorum    int
	)
	cmd := &cobra.Command{
		Use:   "verify FILE --key VKEY [--witness VKEY]... [--quorum K]",
		Short: "Verify an event's receipt offline and print the event",
		Long: `verify checks a receipt (GET /v1/events/{index}/receipt, a c2sp.org/tlog-proof
document; FILE - reads standard input) with no network: the checkpoint it
carries is signed by the log key --key (the key or a file holding it, e.g.
indelible-data/log.pub) and cosigned by at least --quorum of the --witness
keys (default: all of them); the event bytes and salt it carries recompute
the commitment; and the inclusion proof leads from the commitment's RFC 6962
leaf hash to the checkpoint's root. It prints the event and exits with
status 1, naming the step, if any check fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if args[0] == "-" {
				data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4<<20))
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			vkey, err := verifierKeyArg(key)
			if err != nil {
				return err
			}
			policy, err := itlog.NewPolicy(vkey, witnesses, quorum)
			if err != nil {
				return err
			}
			return receipt.Verify(cmd.OutOrStdout(), data, policy)
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the log's verifier key, or a file holding it (required)")
	cmd.Flags().StringArrayVar(&witnesses, "witness", nil, "a witness's cosignature/v1 verifier key (repeatable)")
	cmd.Flags().IntVar(&quorum, "quorum", 0, "witness cosignatures required (default: all --witness keys)")
	cmd.MarkFlagRequired("key")
	rootCmd.AddCommand(cmd)
}

// verifierKeyArg returns the verifier key arg is, or the one in the file arg
// names.
func verifierKeyArg(arg string) (string, error) {
	arg = strings.TrimSpace(arg)
	if _, err := note.NewVerifier(arg); err == nil {
		return arg, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return "", fmt.Errorf("--key %q is neither a verifier key nor a readable file", arg)
	}
	return strings.TrimSpace(string(b)), nil
}
