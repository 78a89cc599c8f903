package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
	"indelible.dev/cmd/indelible/internal/exitcode"
	"indelible.dev/event"
	itlog "indelible.dev/tlog"
)

// siemDoc is an exported document as a SIEM holds it.
type siemDoc struct {
	Index      *int64 `json:"index"`
	EventBytes []byte `json:"event_bytes"`
	Salt       []byte `json:"salt"`
	Commitment []byte `json:"commitment"`
}

// readSIEMCopy reads NDJSON of exported documents, bare or wrapped as
// Splunk ({"event": doc}) or Elasticsearch ({"_source": doc}) return them.
// It returns index -> commitment, and the indexes whose document is
// altered (its commitment does not open its event bytes and salt, or two
// copies differ).
func readSIEMCopy(r io.Reader) (map[int64][]byte, map[int64]string, error) {
	got, altered := map[int64][]byte{}, map[int64]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var wrap struct {
			Index  json.RawMessage `json:"index"`
			Event  json.RawMessage `json:"event"`
			Source json.RawMessage `json:"_source"`
		}
		if err := json.Unmarshal(line, &wrap); err != nil {
			return nil, nil, fmt.Errorf("line %d: not a JSON object: %v", n, err)
		}
		doc := line
		switch {
		case len(wrap.Source) > 0:
			doc = wrap.Source
		case len(wrap.Index) == 0 && len(wrap.Event) > 0:
			doc = wrap.Event
		}
		var d siemDoc
		if err := json.Unmarshal(doc, &d); err != nil || d.Index == nil || *d.Index < 0 {
			return nil, nil, fmt.Errorf("line %d: not an exported event (want index, event_bytes, salt, commitment)", n)
		}
		i := *d.Index
		if len(d.Salt) != event.SaltSize || len(d.Commitment) != 32 {
			altered[i] = "salt or commitment of the wrong size"
			continue
		}
		c := event.Commitment([event.SaltSize]byte(d.Salt), d.EventBytes)
		if !bytes.Equal(c[:], d.Commitment) {
			altered[i] = "its event bytes and salt do not open its commitment"
			continue
		}
		if prev, ok := got[i]; ok && !bytes.Equal(prev, d.Commitment) {
			altered[i] = "two copies with different commitments"
			continue
		}
		got[i] = d.Commitment
	}
	return got, altered, sc.Err()
}

// newExportVerifyCmd returns `indelible export verify`.
func newExportVerifyCmd() *cobra.Command {
	var (
		url, key, token, ca string
		from, to            int64
	)
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check a SIEM's copy of exported events (NDJSON) against the log: missing, altered, extra",
		Long: `verify reads FILE ("-" for stdin): the exported events a SIEM holds, one JSON
document per line, bare (http_ndjson), as Splunk returns them ({"event": ...}) or as
Elasticsearch does ({"_source": ...}). Against the log's entries in [--from, --to)
(default: the whole log at its signed checkpoint, verified with --key) it reports
  missing  an index of the range the copy does not hold (filtered out, or erased,
           or lost);
  altered  a document whose event bytes and salt do not open its commitment, or
           whose commitment is not the log's entry at its index;
  extra    a document whose index is past the log.
It exits 0 when the copy is complete and unaltered, 1 otherwise. It reads only
the public log (tiles): no event is read, so nothing is decrypted or audited.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			v, err := parseVerifierArg(key)
			if err != nil {
				return err
			}
			if url == "" {
				url = envURL()
			}
			pool, err := caPool(ca)
			if err != nil {
				return err
			}
			in := io.Reader(os.Stdin)
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			got, altered, err := readSIEMCopy(in)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			opts := client.Options{Token: envToken(token), RootCAs: pool}
			cp, err := fetchCheckpoint(ctx, url, v, opts)
			if err != nil {
				return certificateHint(err)
			}
			if to < 0 || to > cp.N {
				to = cp.N
			}
			if from < 0 || from > to {
				return fmt.Errorf("--from %d: want 0 to %d", from, to)
			}
			c, err := client.New(url, "", client.WithOptions(opts))
			if err != nil {
				return err
			}
			var missing []int64
			for n := from / itlog.TileWidth; n*itlog.TileWidth < to; n++ {
				w := min(int64(itlog.TileWidth), cp.N-n*itlog.TileWidth)
				b, err := c.Tile(ctx, tlog.Tile{H: itlog.TileHeight, L: itlog.EntriesLevel, N: n, W: int(w)}, nil)
				if err != nil {
					return certificateHint(err)
				}
				entries, err := itlog.ParseBundle(b, int(w))
				if err != nil {
					return fmt.Errorf("entry bundle %d: %w", n, err)
				}
				for k, e := range entries {
					i := n*itlog.TileWidth + int64(k)
					if i < from || i >= to {
						continue
					}
					if _, bad := altered[i]; bad {
						continue
					}
					sc, ok := got[i]
					switch {
					case !ok:
						missing = append(missing, i)
					case !bytes.Equal(sc, e):
						altered[i] = "its commitment is not the log's entry"
					}
				}
			}
			var extra []int64
			for i := range got {
				if i >= cp.N {
					extra = append(extra, i)
				}
			}
			for i := range altered {
				if i >= cp.N {
					delete(altered, i)
					extra = append(extra, i)
				}
			}
			slices.Sort(extra)
			alt := make([]int64, 0, len(altered))
			for i := range altered {
				if i >= from && i < to {
					alt = append(alt, i)
				}
			}
			slices.Sort(alt)
			out := cmd.OutOrStdout()
			for _, i := range missing {
				fmt.Fprintf(out, "missing %d\n", i)
			}
			for _, i := range alt {
				fmt.Fprintf(out, "altered %d: %s\n", i, altered[i])
			}
			for _, i := range extra {
				fmt.Fprintf(out, "extra %d: past the log's size %d\n", i, cp.N)
			}
			fmt.Fprintf(out, "range [%d, %d) of a log of %d: %d missing, %d altered, %d extra\n",
				from, to, cp.N, len(missing), len(alt), len(extra))
			if len(missing)+len(alt)+len(extra) > 0 {
				return exitcode.New(exitFailure, errors.New("the copy is not the log's"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", "log URL (default $INDELIBLE_URL or "+defaultURL+")")
	f.StringVar(&key, "key", "", "the log's verifier key, or a file holding it (required)")
	f.StringVar(&token, "token", "", "token with the read scope, for a log run with --private-log (default $"+envTokenVar+")")
	f.Int64Var(&from, "from", 0, "first index of the range")
	f.Int64Var(&to, "to", -1, "end of the range, exclusive (default: the checkpoint's size)")
	caFlag(f, &ca)
	cmd.MarkFlagRequired("key")
	return cmd
}
