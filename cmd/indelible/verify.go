package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/event"
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
			return verifyReceipt(cmd.OutOrStdout(), data, policy)
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

// verifyReceipt checks an event receipt against policy, step by step, and
// prints the event. Any failure is an exitError with exitFailure (status 1) naming the
// step that failed.
func verifyReceipt(w io.Writer, data []byte, policy itlog.Policy) error {
	fail := func(step string, err error) error {
		return &exitError{exitFailure, fmt.Errorf("verify: %s: %w", step, err)}
	}
	r, err := itlog.ParseReceipt(data)
	if err != nil {
		return fail("parsing the receipt", err)
	}
	cp, cosigners, err := policy.Open(r.Checkpoint)
	if err != nil {
		return fail("checking the checkpoint's signatures", err)
	}
	if r.Extra == nil {
		return fail("opening the commitment", errors.New("the receipt carries no extra line (salt and event bytes)"))
	}
	op, err := event.ParseOpening(r.Extra)
	if err != nil {
		return fail("opening the commitment", err)
	}
	ev, err := event.Decode(op.Bytes)
	if err != nil {
		return fail("decoding the event", err)
	}
	commitment := op.Commitment()
	leaf := tlog.RecordHash(commitment[:])
	if err := itlog.CheckInclusion(r.Proof, r.Index, cp.N, leaf, cp.Hash); err != nil {
		return fail(fmt.Sprintf("checking the inclusion proof of index %d in tree size %d", r.Index, cp.N), err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, op.Bytes, "", "  "); err != nil {
		return fail("decoding the event", err)
	}
	cosigned := ""
	if len(cosigners) > 0 {
		cosigned = ", cosigned by " + strings.Join(cosigners, ", ")
	}
	_, err = fmt.Fprintf(w, "%s\nverified: event %d (action %q) is in %s at tree size %d%s\ncommitment %s\n",
		pretty.Bytes(), r.Index, ev.Action, cp.Origin, cp.N, cosigned, base64.StdEncoding.EncodeToString(commitment[:]))
	return err
}
