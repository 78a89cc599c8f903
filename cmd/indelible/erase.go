package main

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func init() {
	var (
		api    apiFlags
		reason string
	)
	cmd := &cobra.Command{
		Use:   "erase INDEX --reason TEXT",
		Short: "Erase an event (admin): destroy its bytes, keep its commitment",
		Long: `erase destroys the event at INDEX: its bytes, salt and event key are deleted
and purged from the server's files, its index entries go, and a tombstone
(when, by which token, why) stays. The erasure is itself recorded as an
indelible.erase event. The log entry (the commitment) stays, so every proof
and checkpoint remains valid. Afterwards reading the event answers 410.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || i < 0 {
				return fmt.Errorf("INDEX %q: want a non-negative integer", args[0])
			}
			if reason == "" {
				return errors.New("--reason is required: say why the event is erased")
			}
			c, err := api.client()
			if err != nil {
				return err
			}
			ts, err := c.Erase(cmd.Context(), i, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "erased event %d at %s by %s (reason: %s); recorded as event %d\n",
				ts.Index, ts.ErasedAt.Format(time.RFC3339), ts.ErasedBy, ts.Reason, ts.EraseIndex)
			return nil
		},
	}
	api.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why the event is erased (required; recorded)")
	rootCmd.AddCommand(cmd)
}
