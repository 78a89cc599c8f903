package main

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"indelible.dev/client"
)

func init() {
	exportCmd := &cobra.Command{
		Use:   "export",
		Short: "Inspect the exports of a running server (serve --exports)",
	}
	var api apiFlags
	status := &cobra.Command{
		Use:   "status",
		Short: "Print each export's cursor and lag, read from the server's /metrics",
		Long: `status prints, for each export of the running server, its cursor (the first
index it has not delivered), its lag (committed events not yet delivered), and
the events delivered and failed attempts since the server started. It reads them
from /metrics (a log run with --private-log needs a token with the read scope):
the cursor lives in the server's store, which a running server holds locked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url := api.url
			if url == "" {
				url = envURL()
			}
			pool, err := caPool(api.ca)
			if err != nil {
				return err
			}
			c, err := client.New(url, "", client.WithOptions(client.Options{Token: envToken(api.token), RootCAs: pool}))
			if err != nil {
				return err
			}
			b, err := c.Get(cmd.Context(), "metrics", nil, 64<<20)
			if err != nil {
				return certificateHint(err)
			}
			rows := exportMetrics(b)
			if len(rows) == 0 {
				return fmt.Errorf("%s/metrics shows no export: is the server run with --exports?", strings.TrimSuffix(url, "/"))
			}
			names := make([]string, 0, len(rows))
			for n := range rows {
				names = append(names, n)
			}
			sort.Strings(names)
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "EXPORT\tCURSOR\tLAG\tDELIVERED\tFAILURES")
			for _, n := range names {
				r := rows[n]
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", n, r["cursor"], r["lag"], r["delivered"], r["failures"])
			}
			return w.Flush()
		},
	}
	api.register(status)
	exportCmd.AddCommand(status, newExportVerifyCmd())
	rootCmd.AddCommand(exportCmd)
}

// exportMetrics returns, by export name, the export metrics' values of a
// Prometheus text exposition.
func exportMetrics(b []byte) map[string]map[string]string {
	names := map[string]string{
		"indelible_export_cursor":                 "cursor",
		"indelible_export_lag_events":             "lag",
		"indelible_export_delivered_events_total": "delivered",
		"indelible_export_failures_total":         "failures",
	}
	out := map[string]map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		brace := strings.IndexByte(line, '{')
		if brace < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		col, ok := names[line[:brace]]
		if !ok {
			continue
		}
		const lbl = `export="`
		rest := line[brace+1:]
		i := strings.Index(rest, lbl)
		end := strings.Index(rest, "}")
		if i < 0 || end < 0 {
			continue
		}
		name, _, _ := strings.Cut(rest[i+len(lbl):], `"`)
		v := strings.TrimSpace(rest[end+1:])
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			v = strconv.FormatFloat(f, 'f', -1, 64)
		}
		if out[name] == nil {
			out[name] = map[string]string{}
		}
		out[name][col] = v
	}
	return out
}
