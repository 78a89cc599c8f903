package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/cmd/indelible/internal/exitcode"
	"indelible.dev/receipt"
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
			policy, err := receipt.NewPolicy(vkey, witnesses, quorum)
			if err != nil {
				return err
			}
			return printVerified(cmd.OutOrStdout(), data, policy)
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

// printVerified verifies data (package receipt) and prints the event and
// what proves it. A failed verification exits with exitcode.Failure, naming
// the step.
func printVerified(w io.Writer, data []byte, policy receipt.Policy) error {
	v, err := receipt.Verify(data, policy)
	if err != nil {
		return exitcode.New(exitcode.Failure, fmt.Errorf("verify: %w", err))
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, v.EventBytes, "", "  "); err != nil {
		return exitcode.New(exitcode.Failure, fmt.Errorf("verify: decoding the event: %w", err))
	}
	cosigned := ""
	if len(v.Cosigners) > 0 {
		cosigned = ", cosigned by " + strings.Join(v.Cosigners, ", ")
	}
	_, err = fmt.Fprintf(w, "%s\nverified: event %d (action %q) is in %s at tree size %d%s\ncommitment %s\n",
		pretty.Bytes(), v.Index, v.Event.Action, v.Checkpoint.Origin, v.Checkpoint.N, cosigned, base64.StdEncoding.EncodeToString(v.Commitment[:]))
	return err
}
