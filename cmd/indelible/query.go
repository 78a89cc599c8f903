package main

import (
	"bufio"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"indelible.dev/client"
	"indelible.dev/cmd/indelible/internal/recordfmt"
)

// queryFlags are the filters shared by query and tail.
type queryFlags struct {
	q            client.Query
	since, until string
	json         bool
}

func (qf *queryFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&qf.q.Actor, "actor", "", "only events by this actor.id")
	f.StringVar(&qf.q.Action, "action", "", "only events with this action")
	f.StringVar(&qf.q.Resource, "resource", "", "only events on this resource.id")
	f.StringVar(&qf.q.Outcome, "outcome", "", "only events with this outcome")
	f.StringVar(&qf.q.Source, "source", "", "only events from this source")
	f.StringVar(&qf.since, "since", "", "only events at or after this time (RFC 3339)")
	f.StringVar(&qf.until, "until", "", "only events before this time (RFC 3339)")
	f.BoolVar(&qf.json, "json", false, "print records as NDJSON instead of a table")
}

// query returns the filters, with the times parsed.
func (qf *queryFlags) query() (client.Query, error) {
	q := qf.q
	for _, t := range []struct {
		flag, s string
		to      *time.Time
	}{{"since", qf.since, &q.Since}, {"until", qf.until, &q.Until}} {
		if t.s == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.s)
		if err != nil {
			return q, fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-11-25T10:15:00Z", t.flag, t.s)
		}
		*t.to = v
	}
	return q, nil
}

func init() {
	var (
		api apiFlags
		qf  queryFlags
		all bool
	)
	cmd := &cobra.Command{
		Use:   "query [filters]",
		Short: "List events matching filters, newest first",
		Long: `query lists the events matching every filter given (exact match), newest
first, as a table (TIME, INDEX, ACTOR, SUBMITTED_BY, ACTION, RESOURCE, OUTCOME) or, with
--json, as NDJSON records (the event, its bytes, salt and commitment). It
prints one page of --limit events; --all follows the pages to the end.`,
		Args: cobra.NoArgs,
		RunE: api.runE(func(cmd *cobra.Command, args []string, c *client.Client) error {
			q, err := qf.query()
			if err != nil {
				return err
			}
			p := recordfmt.NewPrinter(cmd.OutOrStdout(), qf.json)
			for {
				page, err := c.Query(cmd.Context(), q)
				if err != nil {
					return err
				}
				for _, r := range page.Events {
					if err := p.Print(r); err != nil {
						return err
					}
				}
				if !all || page.NextCursor == "" {
					break
				}
				q.Cursor = page.NextCursor
			}
			return p.Flush()
		}),
	}
	qf.register(cmd)
	cmd.Flags().IntVar(&qf.q.Limit, "limit", 0, "events per page (default 100, at most 1000)")
	cmd.Flags().BoolVar(&all, "all", false, "follow the pages to the last one")
	api.register(cmd)
	rootCmd.AddCommand(cmd)

	var (
		tapi   apiFlags
		tqf    queryFlags
		n      int
		follow bool
	)
	tail := &cobra.Command{
		Use:   "tail [-n N] [-f] [filters]",
		Short: "Print the last events matching filters, oldest first; -f follows new ones",
		Args:  cobra.NoArgs,
		RunE: tapi.runE(func(cmd *cobra.Command, args []string, c *client.Client) error {
			q, err := tqf.query()
			if err != nil {
				return err
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			p := recordfmt.NewPrinter(out, tqf.json)
			after := int64(-1)
			if n > 0 {
				q.Limit = n
				page, err := c.Query(cmd.Context(), q)
				if err != nil {
					return err
				}
				slices.Reverse(page.Events)
				for _, r := range page.Events {
					after = max(after, r.Index)
					if err := p.Print(r); err != nil {
						return err
					}
				}
			}
			if err := recordfmt.FlushAll(p, out); err != nil || !follow {
				return err
			}
			return c.Stream(cmd.Context(), q, after, func(r client.Record) error {
				if err := p.Print(r); err != nil {
					return err
				}
				return recordfmt.FlushAll(p, out)
			})
		}),
	}
	tqf.register(tail)
	tail.Flags().IntVarP(&n, "lines", "n", 10, "how many of the last events to print first (at most 1000)")
	tail.Flags().BoolVarP(&follow, "follow", "f", false, "then print new events as they are appended, until interrupted")
	tapi.register(tail)
	rootCmd.AddCommand(tail)
}
