package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"indelible.dev/cmd/indelible/internal/loadgen"
)

// indelible bench: flags for the load generator in cmd/indelible/internal/loadgen.
func init() {
	bench := &cobra.Command{Use: "bench", Short: "Load generators"}
	var cfg loadgen.AppendConfig
	var ca string
	appendCmd := &cobra.Command{
		Use:   "append",
		Short: "Append entries with concurrent writers (one entry per POST /add) and report throughput and latency",
		Long: `bench append runs --writers concurrent writers, each with its own keep-alive
connection, POSTing one --size byte entry per request to <url>/add for
--duration, and prints the entries/s acknowledged and latency percentiles.
Entries are random bytes with a unique prefix.

Closed loop (default): each writer sends its next entry as soon as the last
is answered. Open loop (--rate R): entries are scheduled at R per second in
total and latency is measured from each entry's scheduled time, so a stalled
server is charged for the queue it causes (no coordinated omission).

--wait-checkpoint adds ?wait=checkpoint: the server answers once a published
checkpoint covers the entry, so the latency reported is POST-to-checkpoint.

--client raw (default) is a minimal HTTP/1.1 client (keep-alive, one request
in flight per connection) so the generator takes little CPU from a server on
the same machine; --client std uses net/http.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.URL == "" {
				cfg.URL = envURL()
			}
			var err error
			if cfg.RootCAs, err = caPool(ca); err != nil {
				return err
			}
			res, err := loadgen.Append(cmd.Context(), cfg)
			if err != nil {
				return fmt.Errorf("bench append --url %s --writers %d --size %d --duration %v --rate %v --client %s: %w",
					cfg.URL, cfg.Writers, cfg.Size, cfg.Duration, cfg.Rate, cfg.Client, err)
			}
			res.Print(cmd.OutOrStdout())
			if res.OK == 0 {
				return errors.New("no append succeeded")
			}
			return nil
		},
	}
	f := appendCmd.Flags()
	f.StringVar(&cfg.URL, "url", "", "log URL (default $INDELIBLE_URL or "+defaultURL+")")
	f.IntVar(&cfg.Writers, "writers", 256, "concurrent writers (connections)")
	f.IntVar(&cfg.Size, "size", 128, fmt.Sprintf("entry size in bytes (%d to %d)", loadgen.MinEntrySize, loadgen.MaxEntrySize))
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to run")
	f.Float64Var(&cfg.Rate, "rate", 0, "offered load in appends/s over all writers (0: closed loop, as fast as possible)")
	f.BoolVar(&cfg.WaitCheckpoint, "wait-checkpoint", false, "POST /add?wait=checkpoint: measure POST-to-checkpoint latency")
	f.StringVar(&cfg.Client, "client", loadgen.ClientRaw, `HTTP client: "raw" (minimal HTTP/1.1, plain HTTP only) or "std" (net/http, needed for HTTPS)`)
	caFlag(f, &ca)

	var pcfg loadgen.ProofConfig
	var pca string
	proofCmd := &cobra.Command{
		Use:   "proof",
		Short: "Load a log's inclusion-proof endpoint and report requests/s and latency",
		Long: `bench proof runs --readers concurrent clients (keep-alive), each asking
GET <url>/v1/proof/inclusion?index=I&size=S for random entries I of the
log's current size S, for --duration, and prints requests/s and latency
percentiles. Every reply must be a 200 with the requested index and size
and the right number of well-formed hashes. --client raw (the default for
http:// URLs) is a minimal HTTP/1.1 client that checks replies without
decoding them, so that the load generator leaves most of the machine to the
server; --client std uses net/http (the default for https:// URLs).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if pcfg.URL == "" {
				pcfg.URL = envURL()
			}
			pcfg.Token = envToken(pcfg.Token)
			var err error
			if pcfg.RootCAs, err = caPool(pca); err != nil {
				return err
			}
			res, err := loadgen.Proof(cmd.Context(), pcfg)
			if err != nil {
				return fmt.Errorf("bench proof --url %s --readers %d --duration %v: %w", pcfg.URL, pcfg.Readers, pcfg.Duration, err)
			}
			res.Print(cmd.OutOrStdout())
			if res.Errors > 0 {
				return fmt.Errorf("%d proof requests failed", res.Errors)
			}
			return nil
		},
	}
	f = proofCmd.Flags()
	f.StringVar(&pcfg.URL, "url", "", "log URL (default $INDELIBLE_URL or "+defaultURL+")")
	f.IntVar(&pcfg.Readers, "readers", 64, "concurrent clients")
	f.DurationVar(&pcfg.Duration, "duration", 10*time.Second, "how long to run")
	f.StringVar(&pcfg.Token, "token", "", "token with the read scope, for a log run with --private-log (default $"+envTokenVar+")")
	f.StringVar(&pcfg.Client, "client", "", `HTTP client: "raw" (minimal HTTP/1.1, plain HTTP only) or "std" (net/http) (default: raw for http://, std for https://)`)
	caFlag(f, &pca)

	bench.AddCommand(appendCmd, proofCmd, benchEventsCmd())
	rootCmd.AddCommand(bench)
}
