package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/client"
	"indelible.dev/cmd/indelible/internal/exitcode"
	itlog "indelible.dev/tlog"
)

// Client defaults shared by the client commands.
const (
	defaultURL = "http://127.0.0.1:8080"
	// clientTimeout bounds one client request.
	clientTimeout = 30 * time.Second
)

// envURL returns $INDELIBLE_URL, or the default server URL.
func envURL() string {
	if u := os.Getenv(envURLVar); u != "" {
		return u
	}
	return defaultURL
}

func init() {
	var url, key, token, ca string
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Fetch the log's checkpoint, verify its signature, print its origin, size and root",
		Long: `checkpoint fetches <url>/checkpoint, verifies the log's signature with the
verifier key --key (the key itself, or a file holding it, e.g.
indelible-data/log.pub), and prints the origin, the tree size and the root hash.
It exits with status 1 if the checkpoint does not verify. --url defaults to
$INDELIBLE_URL, or ` + defaultURL + `. A log run with --private-log needs a
token with the read scope (--token, or $INDELIBLE_TOKEN, which is sent
whenever it is set).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if url == "" {
				url = envURL()
			}
			v, err := parseVerifierArg(key)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), clientTimeout)
			defer cancel()
			pool, err := caPool(ca)
			if err != nil {
				return err
			}
			cp, err := fetchCheckpoint(ctx, url, v, client.Options{Token: envToken(token), RootCAs: pool})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "origin %s\nsize %d\nroot %s\n",
				cp.Origin, cp.N, base64.StdEncoding.EncodeToString(cp.Hash[:]))
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "log URL (default $INDELIBLE_URL or "+defaultURL+")")
	cmd.Flags().StringVar(&key, "key", "", "the log's verifier key, or a file holding it (required)")
	cmd.Flags().StringVar(&token, "token", "", "token with the read scope, for a log run with --private-log (default $"+envTokenVar+")")
	caFlag(cmd.Flags(), &ca)
	cmd.MarkFlagRequired("key")
	rootCmd.AddCommand(cmd)
}

// parseVerifierArg parses a verifier key given inline or as a file name.
func parseVerifierArg(arg string) (note.Verifier, error) {
	arg = strings.TrimSpace(arg)
	if v, err := note.NewVerifier(arg); err == nil {
		return v, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return nil, fmt.Errorf("--key %q is neither a verifier key nor a readable file", arg)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("--key file %s: %w", arg, err)
	}
	return v, nil
}

// fetchCheckpoint GETs <url>/checkpoint, once, and verifies it was signed by
// v, whose name must be the checkpoint's origin. opts gives the token and
// the certificate authorities; fetchCheckpoint sets the rest.
func fetchCheckpoint(ctx context.Context, url string, v note.Verifier, opts client.Options) (itlog.Checkpoint, error) {
	opts.Retries = -1
	opts.HTTPClient = &http.Client{Timeout: clientTimeout, Transport: client.NewTransport(opts.RootCAs)}
	c, err := client.New(url, "", client.WithOptions(opts))
	if err != nil {
		return itlog.Checkpoint{}, err
	}
	body, err := c.Checkpoint(ctx)
	if err != nil {
		return itlog.Checkpoint{}, err
	}
	cp, _, err := itlog.OpenCheckpoint(body, v)
	if err != nil {
		return itlog.Checkpoint{}, exitcode.New(exitFailure, fmt.Errorf("checkpoint from %s does not verify: %w", url, err))
	}
	return cp, nil
}
