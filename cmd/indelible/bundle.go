package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"indelible.dev/cmd/indelible/internal/exitcode"
	"indelible.dev/evidence"
	itlog "indelible.dev/tlog"
)

// Evidence bundles (docs/evidence.md): indelible bundle fetches one,
// indelible verify-bundle checks one offline.

func init() {
	var (
		api                    apiFlags
		since, until, from, to string
		pinned, out            string
		size                   int64
		noProgress             bool
	)
	cmd := &cobra.Command{
		Use:   "bundle (--since T --until T | --from A --to B) [--pinned CP] -o FILE",
		Short: "Fetch an evidence bundle: a period's complete population of events, with its proof",
		Long: `bundle fetches GET /v1/bundle (read scope) into FILE: every entry of the log
received in [--since, --until) (RFC 3339 times), or of the index range
[--from, --to), with the signed checkpoint, the range proof and a summary,
for indelible verify-bundle to check offline (docs/evidence.md). With
--pinned CP (a checkpoint an earlier verify-bundle --emit-pin wrote), the
bundle carries the consistency proof from it. --size N builds the bundle
against the checkpoint of size N the server served (default: the newest), so
the same request gives the same bytes. FILE is written only once the whole
bundle has arrived, with mode 0600 (it holds the events). A progress bar is shown on a terminal for large bundles.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			switch {
			case since != "" || until != "":
				if since == "" || until == "" || from != "" || to != "" {
					return exitcode.Usage("give --since and --until, or --from and --to")
				}
				q.Set("since", since)
				q.Set("until", until)
			case from != "" && to != "":
				q.Set("from", from)
				q.Set("to", to)
			default:
				return exitcode.Usage("give --since and --until, or --from and --to")
			}
			if size >= 0 {
				q.Set("size", strconv.FormatInt(size, 10))
			}
			if pinned != "" {
				b, err := os.ReadFile(pinned)
				if err != nil {
					return exitcode.Usage("--pinned: %v", err)
				}
				text, _, ok := itlog.SplitNote(b)
				if !ok {
					return exitcode.Usage("--pinned %s is not a signed checkpoint", pinned)
				}
				cp, err := itlog.ParseCheckpoint(string(text))
				if err != nil {
					return exitcode.Usage("--pinned %s: %v", pinned, err)
				}
				q.Set("pinned_size", strconv.FormatInt(cp.N, 10))
			}
			if out == "" {
				return exitcode.Usage("-o FILE is required")
			}
			return fetchBundle(cmd, &api, q, out, !noProgress)
		},
	}
	f := cmd.Flags()
	api.register(cmd)
	f.StringVar(&since, "since", "", "start of the time window (RFC 3339), by received_at")
	f.StringVar(&until, "until", "", "end of the time window (RFC 3339, excluded)")
	f.StringVar(&from, "from", "", "first index of the range")
	f.StringVar(&to, "to", "", "end of the index range (excluded)")
	f.StringVar(&pinned, "pinned", "", "a checkpoint file from an earlier audit: include the consistency proof from it")
	f.Int64Var(&size, "size", -1, "build against the checkpoint of this tree size the server served (-1: the newest)")
	f.StringVarP(&out, "output", "o", "", "the file to write (required)")
	f.BoolVar(&noProgress, "no-progress", false, "no progress bar")
	rootCmd.AddCommand(cmd)
}

// fetchBundle downloads the bundle into a temporary file beside out and
// renames it once complete.
func fetchBundle(cmd *cobra.Command, api *apiFlags, q url.Values, out string, progress bool) error {
	base := api.url
	if base == "" {
		base = envURL()
	}
	token := api.token
	if token == "" {
		token = os.Getenv(envTokenVar)
	}
	if token == "" {
		return exitcode.Usage("no token: set %s or pass --token", envTokenVar)
	}
	pool, err := caPool(api.ca)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, strings.TrimSuffix(base, "/")+"/v1/bundle?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return fmt.Errorf("GET /v1/bundle: %s: %s", resp.Status, msg)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	var w io.Writer = tmp
	var bar *progressBar
	if progress && resp.ContentLength > 8<<20 && isTerminal(os.Stderr) {
		bar = &progressBar{w: os.Stderr, total: resp.ContentLength, start: time.Now()}
		w = io.MultiWriter(tmp, bar)
	}
	n, err := io.Copy(w, resp.Body)
	if bar != nil {
		bar.finish()
	}
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("downloading the bundle: %w (nothing written to %s)", err, out)
	}
	// The file stays 0600 (os.CreateTemp's mode): it holds events in the
	// clear.
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d bytes); check it with: indelible verify-bundle %s --key <log.pub>\n", out, n, out)
	return nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws the bytes received on a terminal, at most 5 times a
// second.
type progressBar struct {
	w     io.Writer
	total int64
	done  int64
	start time.Time
	last  time.Time
}

func (p *progressBar) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond {
		p.last = now
		p.draw()
	}
	return len(b), nil
}

func (p *progressBar) draw() {
	const width = 30
	frac := float64(p.done) / float64(p.total)
	fill := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %5.1f%% %d/%d MiB", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), 100*frac, p.done>>20, p.total>>20)
}

func (p *progressBar) finish() {
	p.draw()
	fmt.Fprintln(p.w)
}

func init() {
	var (
		key       string
		witnesses []string
		quorum    int
		pinned    string
		emitPin   string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "verify-bundle FILE --key VKEY [--witness VKEY]... [--quorum K] [--pinned CP] [--emit-pin OUT] [--json]",
		Short: "Verify an evidence bundle offline",
		Long: `verify-bundle checks an evidence bundle (indelible bundle; FILE - reads standard
input) with no network (docs/evidence.md): the manifest's file hashes; the
checkpoint's signature by the log key --key (the key or a file holding it)
and cosignatures by at least --quorum of the --witness keys (default: all);
every event's commitment and canonical bytes; that the range proof and the
entries give the checkpoint's root, so no entry is missing, added, altered,
reordered or duplicated; each erased entry against its indelible.erase
record when that is in the bundle; the summary and counts; and with --pinned
CP, the consistency of the bundle's checkpoint with CP. It prints one line
per failed check and, if all pass, the erased entries, the shredded days and

  N/N entries accounted for: x open, y erased, z shredded; witnessed k/w[; consistent with pin M]

Exit status: 0 verified, 1 a check failed, 2 unusable input. --emit-pin OUT
writes the bundle's checkpoint, once verified, for the next period's --pinned.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vkey, err := verifierKeyArg(key)
			if err != nil {
				return exitcode.Usage("%v", err)
			}
			policy, err := itlog.NewPolicy(vkey, witnesses, quorum)
			if err != nil {
				return exitcode.Usage("%v", err)
			}
			opts := evidence.Options{Policy: policy}
			if pinned != "" {
				if opts.Pinned, err = os.ReadFile(pinned); err != nil {
					return exitcode.Usage("--pinned: %v", err)
				}
			}
			var in io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return exitcode.Usage("%v", err)
				}
				defer f.Close()
				in = f
			}
			rep, err := evidence.Verify(in, opts)
			if err != nil {
				return exitcode.New(exitcode.Trouble, err)
			}
			return reportBundle(cmd.OutOrStdout(), rep, asJSON, emitPin)
		},
	}
	f := cmd.Flags()
	f.StringVar(&key, "key", "", "the log's verifier key, or a file holding it (required)")
	f.StringArrayVar(&witnesses, "witness", nil, "a witness's cosignature/v1 verifier key (repeatable)")
	f.IntVar(&quorum, "quorum", 0, "witness cosignatures required (default: all --witness keys)")
	f.StringVar(&pinned, "pinned", "", "the checkpoint an earlier audit ended on (from --emit-pin)")
	f.StringVar(&emitPin, "emit-pin", "", "write the bundle's checkpoint here once verified, for the next --pinned")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.MarkFlagRequired("key")
	rootCmd.AddCommand(cmd)
}

// maxErasedShown bounds the erased entries listed in the text report.
const maxErasedShown = 50

func reportBundle(w io.Writer, rep *evidence.Report, asJSON bool, emitPin string) error {
	if rep.OK() && emitPin != "" {
		if err := os.WriteFile(emitPin, rep.Checkpoint, 0o644); err != nil {
			return exitcode.New(exitcode.Trouble, fmt.Errorf("--emit-pin: %w", err))
		}
	}
	if asJSON {
		out := struct {
			OK      bool   `json:"ok"`
			Summary string `json:"summary"`
			*evidence.Report
		}{rep.OK(), rep.SummaryLine(), rep}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\n", b)
	} else {
		for _, f := range rep.Failures {
			fmt.Fprintf(w, "FAIL %s\n", f)
		}
		if rep.OK() {
			for k, e := range rep.ErasedEntries {
				if k == maxErasedShown {
					fmt.Fprintf(w, "erased: ... and %d more (--json lists them)\n", len(rep.ErasedEntries)-k)
					break
				}
				rec := "its indelible.erase record is not in this bundle"
				if e.EraseIndex >= 0 {
					rec = fmt.Sprintf("matches its indelible.erase record %d", e.EraseIndex)
				}
				fmt.Fprintf(w, "erased: entry %d at %s by %s, reason %q (%s)\n", e.Index, e.Erasure.At.Format(time.RFC3339), e.Erasure.By, e.Erasure.Reason, rec)
			}
			days := make([]string, 0, len(rep.ShreddedDays))
			for d := range rep.ShreddedDays {
				days = append(days, d)
			}
			slices.Sort(days)
			for _, d := range days {
				fmt.Fprintf(w, "shredded: %d entries received on %s (retention destroyed their content; counted, not shown)\n", rep.ShreddedDays[d], d)
			}
			fmt.Fprintln(w, rep.SummaryLine())
		}
	}
	if !rep.OK() {
		return exitcode.New(exitcode.Failure, errors.New("verify-bundle: "+strconv.Itoa(len(rep.Failures))+" check(s) failed"))
	}
	return nil
}
