package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"indelible.dev/cmd/indelible/internal/loadgen"
)

// benchEventsCmd is `indelible bench events`: audit events at a fixed rate
// (loadgen.EventsAtRate).
func benchEventsCmd() *cobra.Command {
	var cfg loadgen.RateConfig
	var ca string
	var events float64
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Send audit events at a fixed rate (open loop) and report POST-to-durable or POST-to-checkpoint latency",
		Long: `bench events POSTs generated audit events (about 300 bytes each, every one
with an id) to <url>/v1/events at --rate events/s in total, as requests of
--per-request events (NDJSON; 1 sends single JSON objects), for --duration,
and prints the events/s acknowledged and latency percentiles.

It is an open loop: requests are scheduled at --rate / --per-request per
second whatever the server's latency, up to --max-in-flight at once, and
each request's latency runs from its scheduled send time to its reply, so a
stalled server is charged for the queue it causes (no coordinated omission).
The reply follows the commit (POST-to-durable); with --wait-checkpoint it
follows a published checkpoint covering the events and carries their
receipts (POST-to-checkpoint).

The token needs the append scope (default $INDELIBLE_TOKEN).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.URL == "" {
				cfg.URL = envURL()
			}
			cfg.Token = envToken(cfg.Token)
			if cfg.Token == "" {
				return fmt.Errorf("bench events: no token: pass --token or set $%s (a token with the append scope)", envTokenVar)
			}
			if events <= 0 || cfg.PerRequest < 1 {
				return fmt.Errorf("bench events --rate %v --per-request %d: want a positive rate and at least 1 event a request", events, cfg.PerRequest)
			}
			cfg.Rate = events / float64(cfg.PerRequest)
			var err error
			if cfg.RootCAs, err = caPool(ca); err != nil {
				return err
			}
			res, err := loadgen.EventsAtRate(cmd.Context(), cfg)
			if err != nil {
				return fmt.Errorf("bench events --url %s --rate %v --per-request %d --duration %v --max-in-flight %d: %w",
					cfg.URL, events, cfg.PerRequest, cfg.Duration, cfg.MaxInFlight, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), res)
			if res.FirstErr != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "first error: %v\n", res.FirstErr)
			}
			if res.Errors > 0 {
				return fmt.Errorf("%d of %d requests failed", res.Errors, res.Requests)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.URL, "url", "", "server URL (default $INDELIBLE_URL or "+defaultURL+")")
	f.StringVar(&cfg.Token, "token", "", "token with the append scope (default $"+envTokenVar+")")
	f.Float64Var(&events, "rate", 5000, "offered events/s in total")
	f.IntVar(&cfg.PerRequest, "per-request", 100, "events a request (1: single JSON objects)")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send")
	f.IntVar(&cfg.MaxInFlight, "max-in-flight", loadgen.DefaultMaxInFlight, "requests in flight at most (connections)")
	f.BoolVar(&cfg.WaitCheckpoint, "wait-checkpoint", false, "POST /v1/events?wait=checkpoint: measure POST-to-checkpoint latency")
	caFlag(f, &ca)
	cfg.IDs = true
	return cmd
}
