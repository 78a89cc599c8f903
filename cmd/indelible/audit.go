package main

import (
	"net"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"indelible.dev/client"
	"indelible.dev/cmd/indelible/internal/auditcli"
)

func init() { rootCmd.AddCommand(newAuditCmd()) }

// newAuditCmd returns a fresh indelible audit command (tests run several).
func newAuditCmd() *cobra.Command {
	var cfg auditcli.Config
	var ca string
	cmd := &cobra.Command{
		Use:   "audit --url URL --key VKEY [--witness VKEY]... [--quorum K] [--state FILE] [--watch --interval D]",
		Short: "Replay a log from its tiles and verify it was never rewritten",
		Long: `audit downloads every entry bundle and hash tile of a c2sp.org/tlog-tiles log,
recomputes every leaf hash and every tile, and checks the root against the
checkpoint, whose log signature (--key) and witness cosignatures (--witness,
at least --quorum of them, default all) it verifies first. It works against
any C2SP tlog-tiles log, not only Indelible.

With --state FILE it remembers the last verified checkpoint: the next run
checks the new checkpoint is consistent with it (by recomputing the old root
from the tiles and with the log's consistency proof, which must agree) and
replays only the new part.

With --watch it repeats every --interval; on an inconsistency it alerts on
stderr, POSTs a JSON alert to --alert-webhook, and submits both checkpoints
to each --gossip witness's observe endpoint so the witnesses record the fork.

A log run with --private-log needs a token with the read scope (--token, or
$INDELIBLE_TOKEN, which is sent to the log whenever it is set, never to the
webhook or the witnesses). --ca (or $INDELIBLE_CA) names the certificate
authorities trusted for HTTPS to the log, the webhook and the witnesses.

Exit status: 0 verified, 1 a verification failure (the message names the
tile, bundle, entry or checkpoint), 2 usage or network trouble.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.URL == "" {
				cfg.URL = envURL()
			}
			cfg.Token = envToken(cfg.Token)
			if !cmd.Flags().Changed("compression") && loopbackURL(cfg.URL) {
				// Compressing bundles for a client on the same machine costs
				// the server and the auditor CPU and saves nothing: on a
				// 10M-entry log it halved the replay rate (BENCHMARKS.md).
				cfg.Compress = false
			}
			pool, err := caPool(ca)
			if err != nil {
				return err
			}
			cfg.RootCAs = pool
			return auditcli.Run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.URL, "url", "", "the log's URL prefix (default $INDELIBLE_URL or "+defaultURL+")")
	f.StringVar(&cfg.Key, "key", "", "the log's verifier key (vkey), or a file holding it (required)")
	f.StringArrayVar(&cfg.Witnesses, "witness", nil, "a witness's cosignature verifier key, or a file holding it (repeatable)")
	f.IntVar(&cfg.Quorum, "quorum", 0, "how many of the --witness keys must have cosigned (default: all)")
	f.StringVar(&cfg.State, "state", "", "file keeping the last verified checkpoint, for incremental audits")
	f.BoolVar(&cfg.Watch, "watch", false, "repeat every --interval until interrupted")
	f.DurationVar(&cfg.Interval, "interval", auditcli.DefaultInterval, "time between runs with --watch")
	f.StringVar(&cfg.Webhook, "alert-webhook", "", "URL to POST a JSON alert to on a verification failure")
	f.StringArrayVar(&cfg.Gossip, "gossip", nil, "a witness's base URL to submit inconsistent checkpoints to (repeatable)")
	f.BoolVar(&cfg.JSON, "json", false, "print one JSON object per run instead of text")
	f.IntVar(&cfg.Parallel, "parallel", client.DefaultParallelism, "requests in flight")
	f.BoolVar(&cfg.NoProgress, "no-progress", false, "do not report progress on stderr")
	f.DurationVar(&cfg.MaxAge, "max-age", 0, "fail (exit 1) when the newest witness cosignature is older than this (needs --witness; default 0: no limit)")
	f.StringVar(&cfg.Token, "token", "", "token with the read scope, for a log run with --private-log (default $"+envTokenVar+")")
	caFlag(f, &ca)
	f.BoolVar(&cfg.Compress, "compression", true, "accept gzip-compressed bundles (turn off on fast links to save CPU; default off for a log on a loopback address)")
	return cmd
}

// auditReport is the --json output of one run.
type auditReport = auditcli.Report

// loopbackURL reports whether rawURL's host is localhost or a loopback
// address.
func loopbackURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
