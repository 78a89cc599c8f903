package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"indelible.dev/otlp"
)

func init() {
	ingest := &cobra.Command{
		Use:   "ingest",
		Short: "Tools for the ingest endpoints (OpenTelemetry logs)",
	}
	var explain, defaultAction string
	otlpCmd := &cobra.Command{
		Use:   "otlp --explain FILE",
		Short: "Show the events a captured OTLP logs request maps to",
		Long: `otlp --explain FILE reads a captured OTLP/HTTP logs request body (an
ExportLogsServiceRequest, protobuf or OTLP JSON, plain, gzip or zstd: all
detected from the bytes; - for stdin) and prints, one JSON object a line and
in request order, what POST /v1/logs makes of each log record:
{"record":N,"event":{...}} with the event as it would be stored (less
received_at, submitted_by, and time when the record has none), or
{"record":N,"refused":"why"}. No server is needed. --default-action does
what serve --otlp-default-action does. docs/otlp.md has the mapping.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if explain == "" {
				return errors.New("give --explain FILE (the only mode: to send logs, point an OpenTelemetry exporter at POST /v1/logs, see docs/otlp.md)")
			}
			if err := checkOTLPFlags(serveConfig{mode: "events", otlpDefaultAction: defaultAction}); err != nil {
				return err
			}
			var wire []byte
			var err error
			if explain == "-" {
				wire, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), otlp.MaxWireBytes+1))
			} else {
				wire, err = os.ReadFile(explain)
			}
			if err != nil {
				return err
			}
			body, err := otlp.ReadBody(bytes.NewReader(wire), otlp.Sniff(wire))
			if err != nil {
				return fmt.Errorf("%s: %w", explain, err)
			}
			logs, err := otlp.Decode(otlp.SniffEncoding(body), body)
			if err != nil {
				return fmt.Errorf("%s: %w", explain, err)
			}
			res := otlp.Map(logs, otlp.Options{DefaultAction: defaultAction})
			if err := otlp.Explain(cmd.OutOrStdout(), res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d records: %d events, %d refused\n", res.Total, len(res.Events), res.Rejected())
			return nil
		},
	}
	otlpCmd.Flags().StringVar(&explain, "explain", "", "the captured request body (- for stdin)")
	otlpCmd.Flags().StringVar(&defaultAction, "default-action", "", "action of a record naming none, as serve --otlp-default-action (default: such records are refused)")
	ingest.AddCommand(otlpCmd)
	rootCmd.AddCommand(ingest)
}
