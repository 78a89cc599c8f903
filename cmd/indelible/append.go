package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"indelible.dev/client"
)

func init() {
	var (
		api             apiFlags
		ev              client.Event
		file            string
		meta            string
		actor, resource string
	)
	cmd := &cobra.Command{
		Use:   "append --action A [--actor ID] [--resource ID] [flags] | append --file F",
		Short: "Append one event, or NDJSON events from a file or stdin; print their indexes",
		Long: `append sends one event built from the flags, or, with --file, the NDJSON
events (one JSON object per line) of a file or of standard input (--file -),
in batches of ` + fmt.Sprint(client.AppendBatch) + ` events. It prints each event's index, one per line,
in order, once the server has stored them durably.`,
		Args: cobra.NoArgs,
		RunE: api.runE(func(cmd *cobra.Command, args []string, c *client.Client) error {
			out := cmd.OutOrStdout()
			if file != "" {
				if ev.Action != "" {
					return errors.New("give either --file or the flags of one event, not both")
				}
				r := cmd.InOrStdin()
				if file != "-" {
					f, err := os.Open(file)
					if err != nil {
						return err
					}
					defer f.Close()
					r = f
				}
				return appendNDJSON(cmd.Context(), c, r, out)
			}
			if ev.Action == "" {
				return errors.New("--action is required (or --file for NDJSON)")
			}
			if actor != "" {
				ev.Actor = &client.Actor{ID: actor}
			}
			if resource != "" {
				ev.Resource = &client.Resource{ID: resource}
			}
			if meta != "" {
				if !json.Valid([]byte(meta)) {
					return fmt.Errorf("--metadata %q is not JSON", meta)
				}
				ev.Metadata = json.RawMessage(meta)
			}
			res, err := c.Append(cmd.Context(), []client.Event{ev}, false)
			if err != nil {
				return err
			}
			return printIndexes(out, res)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&ev.Action, "action", "", "what was done, e.g. deploy.start (required for one event)")
	f.StringVar(&actor, "actor", "", "who did it (actor.id)")
	f.StringVar(&resource, "resource", "", "what it was done to (resource.id)")
	f.StringVar(&ev.Outcome, "outcome", "", "success, failure, denied or unknown")
	f.StringVar(&ev.Source, "source", "", "the system reporting it")
	f.StringVar(&ev.Reason, "reason", "", "why, e.g. a ticket")
	f.StringVar(&ev.ID, "id", "", "idempotency key: sending the same id again returns the original index")
	f.StringVar(&ev.Time, "time", "", "when it happened, RFC 3339 (default: when the server receives it)")
	f.StringVar(&meta, "metadata", "", "a JSON object of anything else")
	f.StringVar(&file, "file", "", "append the NDJSON events of this file (- for standard input)")
	api.register(cmd)
	rootCmd.AddCommand(cmd)
}

// appendNDJSON sends the NDJSON of r in batches and prints the indexes.
func appendNDJSON(ctx context.Context, c *client.Client, r io.Reader, out io.Writer) error {
	return c.AppendNDJSONReader(ctx, r, func(res []client.Appended) error { return printIndexes(out, res) })
}

func printIndexes(w io.Writer, res []client.Appended) error {
	bw := bufio.NewWriter(w)
	for _, r := range res {
		fmt.Fprintln(bw, r.Index)
	}
	return bw.Flush()
}
