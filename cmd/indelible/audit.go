package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/audit"
	"indelible.dev/client"
)

// Audit defaults and limits.
const (
	defaultAuditInterval = time.Minute
	minAuditInterval     = time.Second
	// progressEvery is how often plain (non-terminal) progress lines are written.
	progressEvery = 5 * time.Second
	// barEvery is how often the terminal progress bar is redrawn.
	barEvery = 100 * time.Millisecond
	// maxKeyFile bounds a key read from a file.
	maxKeyFile = 64 << 10
)

func usageErr(format string, args ...any) error {
	return &exitError{exitTrouble, fmt.Errorf(format, args...)}
}

// auditConfig holds the flags of indelible audit.
type auditConfig struct {
	url        string
	key        string
	witnesses  []string
	quorum     int
	state      string
	watch      bool
	interval   time.Duration
	webhook    string
	gossip     []string
	jsonOut    bool
	parallel   int
	noProgress bool
	compress   bool
	maxAge     time.Duration
}

func init() { rootCmd.AddCommand(newAuditCmd()) }

// newAuditCmd returns a fresh indelible audit command (tests run several).
func newAuditCmd() *cobra.Command {
	var cfg auditConfig
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

Exit status: 0 verified, 1 a verification failure (the message names the
tile, bundle, entry or checkpoint), 2 usage or network trouble.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.url == "" {
				cfg.url = envURL()
			}
			return runAudit(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.url, "url", "", "the log's URL prefix (default $INDELIBLE_URL or "+defaultURL+")")
	f.StringVar(&cfg.key, "key", "", "the log's verifier key (vkey), or a file holding it (required)")
	f.StringArrayVar(&cfg.witnesses, "witness", nil, "a witness's cosignature verifier key, or a file holding it (repeatable)")
	f.IntVar(&cfg.quorum, "quorum", 0, "how many of the --witness keys must have cosigned (default: all)")
	f.StringVar(&cfg.state, "state", "", "file keeping the last verified checkpoint, for incremental audits")
	f.BoolVar(&cfg.watch, "watch", false, "repeat every --interval until interrupted")
	f.DurationVar(&cfg.interval, "interval", defaultAuditInterval, "time between runs with --watch")
	f.StringVar(&cfg.webhook, "alert-webhook", "", "URL to POST a JSON alert to on a verification failure")
	f.StringArrayVar(&cfg.gossip, "gossip", nil, "a witness's base URL to submit inconsistent checkpoints to (repeatable)")
	f.BoolVar(&cfg.jsonOut, "json", false, "print one JSON object per run instead of text")
	f.IntVar(&cfg.parallel, "parallel", client.DefaultParallelism, "requests in flight")
	f.BoolVar(&cfg.noProgress, "no-progress", false, "do not report progress on stderr")
	f.DurationVar(&cfg.maxAge, "max-age", 0, "fail (exit 1) when the newest witness cosignature is older than this (needs --witness; default 0: no limit)")
	f.BoolVar(&cfg.compress, "compression", true, "accept gzip-compressed bundles (turn off on fast links to save CPU)")
	return cmd
}

// readKey returns s, or the first line of the file s names if it exists.
func readKey(s string) (string, error) {
	if fi, err := os.Stat(s); err == nil && fi.Mode().IsRegular() {
		if fi.Size() > maxKeyFile {
			return "", fmt.Errorf("key file %s is larger than %d bytes", s, maxKeyFile)
		}
		b, err := os.ReadFile(s)
		if err != nil {
			return "", err
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimSpace(line), nil
	}
	return s, nil
}

// auditOptions builds the audit options from the flags; any error is a
// usage error.
func auditOptions(cfg auditConfig) (audit.Options, error) {
	var opts audit.Options
	if cfg.key == "" {
		return opts, usageErr("audit: --key (the log's verifier key) is required")
	}
	if cfg.watch && cfg.interval < minAuditInterval {
		return opts, usageErr("audit: --interval must be at least %v", minAuditInterval)
	}
	if cfg.maxAge < 0 {
		return opts, usageErr("audit: --max-age must not be negative")
	}
	if cfg.maxAge > 0 && len(cfg.witnesses) == 0 {
		return opts, usageErr("audit: --max-age needs --witness: a checkpoint carries no time, only witness cosignatures do")
	}
	if cfg.parallel < 1 || cfg.parallel > 1024 {
		return opts, usageErr("audit: --parallel must be 1 to 1024")
	}
	c, err := client.New(cfg.url, client.Options{DisableCompression: !cfg.compress})
	if err != nil {
		return opts, usageErr("audit: %v", err)
	}
	k, err := readKey(cfg.key)
	if err != nil {
		return opts, usageErr("audit: --key: %v", err)
	}
	v, err := note.NewVerifier(k)
	if err != nil {
		return opts, usageErr("audit: --key %q is not a note verifier key: %v", k, err)
	}
	opts = audit.Options{Client: c, Log: v, Quorum: cfg.quorum, Parallel: cfg.parallel}
	for _, w := range cfg.witnesses {
		k, err := readKey(w)
		if err != nil {
			return opts, usageErr("audit: --witness: %v", err)
		}
		wv, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			return opts, usageErr("audit: --witness %q is not a cosignature verifier key: %v", k, err)
		}
		opts.Witnesses = append(opts.Witnesses, wv)
	}
	if cfg.quorum < 0 || cfg.quorum > len(opts.Witnesses) {
		return opts, usageErr("audit: --quorum %d with %d witnesses", cfg.quorum, len(opts.Witnesses))
	}
	return opts, nil
}

// auditReport is the --json output of one run.
type auditReport struct {
	OK          bool     `json:"ok"`
	URL         string   `json:"url"`
	Origin      string   `json:"origin"`
	Size        int64    `json:"size,omitempty"`
	Root        string   `json:"root,omitempty"`
	From        int64    `json:"from"`
	Entries     int64    `json:"entries_verified"`
	Tiles       int64    `json:"tiles_verified"`
	Bundles     int64    `json:"bundles_verified"`
	Cosigners   []string `json:"cosigners,omitempty"`
	ProofSource string   `json:"consistency_proof,omitempty"`
	Seconds     float64  `json:"seconds"`
	Rate        float64  `json:"entries_per_second"`
	Error       string   `json:"error,omitempty"`
	Failure     *struct {
		Kind     string `json:"kind"`
		Resource string `json:"resource"`
	} `json:"failure,omitempty"`
	ExitCode int `json:"exit_code"`
}

// runAudit runs one audit, or a watch loop.
func runAudit(ctx context.Context, stdout, stderr io.Writer, cfg auditConfig) error {
	opts, err := auditOptions(cfg)
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var lastAlert string
	if !cfg.watch {
		_, err := auditOnce(ctx, stdout, stderr, cfg, opts, &lastAlert)
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed := false
	for {
		code, err := auditOnce(ctx, stdout, stderr, cfg, opts, &lastAlert)
		if code == exitFailure {
			failed = true
		}
		if err != nil && !cfg.jsonOut {
			fmt.Fprintln(stderr, "indelible:", err)
		}
		select {
		case <-ctx.Done():
			if failed {
				return &exitError{exitFailure, errors.New("audit: a verification failure was seen while watching")}
			}
			return nil
		case <-time.After(cfg.interval):
		}
	}
}

// auditOnce runs one audit with the state file, reports it, and on a
// verification failure alerts and gossips, unless the failure is the one
// *lastAlert already reported (a watch keeps failing the same way until
// someone acts: one alert is enough). It returns the exit code and the error
// (an *exitError) if the run did not verify.
func auditOnce(ctx context.Context, stdout, stderr io.Writer, cfg auditConfig, opts audit.Options, lastAlert *string) (int, error) {
	var prev *audit.State
	if cfg.state != "" {
		s, err := audit.LoadState(cfg.state)
		if err != nil {
			return exitTrouble, report(stdout, cfg, nil, &exitError{exitTrouble, err}, opts)
		}
		prev = s
	}
	var p *progress
	if !cfg.noProgress && !cfg.jsonOut {
		p = newProgress(stderr)
		opts.Progress = p.update
	}
	res, err := audit.Audit(ctx, opts, prev)
	if p != nil {
		p.done()
	}
	if err == nil {
		if cfg.state != "" {
			if err := audit.SaveState(cfg.state, audit.NewState(res)); err != nil {
				return exitTrouble, report(stdout, cfg, res, &exitError{exitTrouble, err}, opts)
			}
		}
		*lastAlert = ""
		if age := time.Since(res.CosignedAt); cfg.maxAge > 0 && age > cfg.maxAge {
			// The log may be replaying an old checkpoint forever: what it
			// serves verifies, but nobody vouched for it recently.
			err := fmt.Errorf("audit: the newest witness cosignature of %s is from %s, %s old, older than --max-age %s",
				res.Origin, res.CosignedAt.UTC().Format(time.RFC3339), age.Round(time.Second), cfg.maxAge)
			return exitFailure, report(stdout, cfg, res, &exitError{exitFailure, err}, opts)
		}
		return exitVerified, report(stdout, cfg, res, nil, opts)
	}
	var f *audit.Failure
	if !errors.As(err, &f) {
		return exitTrouble, report(stdout, cfg, nil, &exitError{exitTrouble, err}, opts)
	}
	if msg := f.Error(); msg != *lastAlert {
		*lastAlert = msg
		alert(ctx, stderr, cfg, opts, f)
	}
	return exitFailure, report(stdout, cfg, nil, &exitError{exitFailure, err}, opts)
}

// alert reports a verification failure on stderr, to the webhook and, for
// an inconsistency between checkpoints, to the gossip witnesses.
func alert(ctx context.Context, stderr io.Writer, cfg auditConfig, opts audit.Options, f *audit.Failure) {
	fmt.Fprintf(stderr, "ALERT: log %s (%s): %v\n", cfg.url, opts.Log.Name(), f)
	if cfg.webhook != "" {
		if err := audit.SendAlert(ctx, opts.Client, cfg.webhook, audit.NewAlert(cfg.url, opts.Log.Name(), f)); err != nil {
			fmt.Fprintf(stderr, "indelible: alert webhook: %v\n", err)
		}
	}
	if len(cfg.gossip) > 0 && audit.IsInconsistency(f) {
		answers, err := audit.Gossip(ctx, opts.Client, cfg.gossip, f)
		for _, a := range answers {
			fmt.Fprintf(stderr, "submitted to witness %s\n", a)
		}
		if err != nil {
			fmt.Fprintf(stderr, "indelible: %v\n", err)
		}
	}
}

// report prints the outcome of one run and returns runErr.
func report(w io.Writer, cfg auditConfig, res *audit.Result, runErr *exitError, opts audit.Options) error {
	if cfg.jsonOut {
		r := auditReport{OK: runErr == nil, URL: cfg.url, Origin: opts.Log.Name()}
		if res != nil {
			r.Size, r.Root, r.From = res.Size, base64.StdEncoding.EncodeToString(res.Root[:]), res.From
			r.Entries, r.Tiles, r.Bundles, r.Cosigners = res.Entries, res.Tiles, res.Bundles, res.Cosigners
			r.ProofSource, r.Seconds, r.Rate = res.ProofSource, res.Duration.Seconds(), res.Rate()
		}
		if runErr != nil {
			r.Error, r.ExitCode = runErr.Error(), runErr.code
			var f *audit.Failure
			if errors.As(runErr, &f) {
				r.Failure = &struct {
					Kind     string `json:"kind"`
					Resource string `json:"resource"`
				}{f.Kind, f.Resource}
			}
		}
		b, _ := json.Marshal(r)
		fmt.Fprintf(w, "%s\n", b)
	} else if res != nil && runErr == nil {
		fmt.Fprintf(w, "verified %s: size %d, root %s\n", res.Origin, res.Size, base64.StdEncoding.EncodeToString(res.Root[:]))
		fmt.Fprintf(w, "  replayed %d entries (from size %d) in %.2fs: %.0f entries/s; %d bundles, %d tiles compared\n",
			res.Entries, res.From, res.Duration.Seconds(), res.Rate(), res.Bundles, res.Tiles)
		if len(opts.Witnesses) > 0 {
			q := opts.Quorum
			if q == 0 {
				q = len(opts.Witnesses)
			}
			fmt.Fprintf(w, "  cosigned by %s (policy: %d of %d)\n", strings.Join(res.Cosigners, ", "), q, len(opts.Witnesses))
		}
		if res.ProofSource != "" {
			fmt.Fprintf(w, "  consistent with the previously verified size %d: old root recomputed from tiles, %s consistency proof verified\n",
				res.From, res.ProofSource)
		}
	}
	if runErr == nil {
		return nil
	}
	return runErr
}

// progress reports replay progress: a bar redrawn in place on a terminal,
// a plain line every progressEvery otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time

	mu          sync.Mutex
	last        time.Time
	done_, tot_ int64
	drawn       bool
}

func newProgress(w io.Writer) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	now := time.Now()
	// The first report comes one period after the start: short runs print
	// only their summary.
	return &progress{w: w, tty: tty, start: now, last: now}
}

// update is audit.Options.Progress.
func (p *progress) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done_, p.tot_ = done, total
	now := time.Now()
	every := progressEvery
	if p.tty {
		every = barEvery
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	p.draw(now)
}

func (p *progress) draw(now time.Time) {
	el := now.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.done_) / el
	}
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(p.tot_-p.done_)/rate) * time.Second).Round(time.Second).String()
	}
	pct := 100.0
	if p.tot_ > 0 {
		pct = 100 * float64(p.done_) / float64(p.tot_)
	}
	if p.tty {
		const width = 30
		n := int(pct / 100 * width)
		bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
		fmt.Fprintf(p.w, "\r[%s] %5.1f%% %d/%d entries  %.0f/s  ETA %s ", bar, pct, p.done_, p.tot_, rate, eta)
		p.drawn = true
		return
	}
	fmt.Fprintf(p.w, "audit: %d/%d entries (%.1f%%), %.0f entries/s, ETA %s\n", p.done_, p.tot_, pct, rate, eta)
}

// done ends the bar's line.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		p.draw(time.Now())
		fmt.Fprintln(p.w)
	}
}
