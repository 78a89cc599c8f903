// Package auditcli is the indelible audit command: it turns the flags into
// audit options, runs one audit or a watch loop with the state file, prints
// the report (text or JSON) and progress, and alerts and gossips on a
// verification failure.
package auditcli

import (
	"context"
	"crypto/x509"
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

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/audit"
	"indelible.dev/client"
	"indelible.dev/cmd/indelible/internal/exitcode"
)

// Audit defaults and limits.
const (
	DefaultInterval = time.Minute
	MinInterval     = time.Second
	// progressEvery is how often plain (non-terminal) progress lines are written.
	progressEvery = 5 * time.Second
	// barEvery is how often the terminal progress bar is redrawn.
	barEvery = 100 * time.Millisecond
	// maxKeyFile bounds a key read from a file.
	maxKeyFile = 64 << 10
)

// Config holds the flags of indelible audit.
type Config struct {
	URL        string
	Key        string
	Witnesses  []string
	Quorum     int
	State      string
	Watch      bool
	Interval   time.Duration
	Webhook    string
	Gossip     []string
	JSON       bool
	Parallel   int
	NoProgress bool
	Compress   bool
	MaxAge     time.Duration
	// Token, if set, is sent to the log (never to the webhook or the gossip
	// witnesses): a log run with --private-log needs one with the read scope.
	Token string
	// RootCAs, if set, are the only certificate authorities trusted for
	// HTTPS, to the log, the webhook and the gossip witnesses alike.
	RootCAs *x509.CertPool
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
func auditOptions(cfg Config) (audit.Options, error) {
	var opts audit.Options
	if cfg.Key == "" {
		return opts, exitcode.Usage("audit: --key (the log's verifier key) is required")
	}
	if cfg.Watch && cfg.Interval < MinInterval {
		return opts, exitcode.Usage("audit: --interval must be at least %v", MinInterval)
	}
	if cfg.MaxAge < 0 {
		return opts, exitcode.Usage("audit: --max-age must not be negative")
	}
	if cfg.MaxAge > 0 && len(cfg.Witnesses) == 0 {
		return opts, exitcode.Usage("audit: --max-age needs --witness: a checkpoint carries no time, only witness cosignatures do")
	}
	if cfg.Parallel < 1 || cfg.Parallel > 1024 {
		return opts, exitcode.Usage("audit: --parallel must be 1 to 1024")
	}
	c, err := client.New(cfg.URL, "", client.WithOptions(client.Options{DisableCompression: !cfg.Compress, Token: cfg.Token, RootCAs: cfg.RootCAs}))
	if err != nil {
		return opts, exitcode.Usage("audit: %v", err)
	}
	k, err := readKey(cfg.Key)
	if err != nil {
		return opts, exitcode.Usage("audit: --key: %v", err)
	}
	v, err := note.NewVerifier(k)
	if err != nil {
		return opts, exitcode.Usage("audit: --key %q is not a note verifier key: %v", k, err)
	}
	opts = audit.Options{Client: c, Log: v, Quorum: cfg.Quorum, Parallel: cfg.Parallel}
	for _, w := range cfg.Witnesses {
		k, err := readKey(w)
		if err != nil {
			return opts, exitcode.Usage("audit: --witness: %v", err)
		}
		wv, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			return opts, exitcode.Usage("audit: --witness %q is not a cosignature verifier key: %v", k, err)
		}
		opts.Witnesses = append(opts.Witnesses, wv)
	}
	if cfg.Quorum < 0 || cfg.Quorum > len(opts.Witnesses) {
		return opts, exitcode.Usage("audit: --quorum %d with %d witnesses", cfg.Quorum, len(opts.Witnesses))
	}
	return opts, nil
}

// Report is the --json output of one run.
type Report struct {
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

// Run runs one audit, or a watch loop, as Config says, printing to stdout
// and stderr. Its error is an *exitcode.Error.
func Run(ctx context.Context, stdout, stderr io.Writer, cfg Config) error {
	opts, err := auditOptions(cfg)
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var lastAlert string
	if !cfg.Watch {
		_, err := auditOnce(ctx, stdout, stderr, cfg, opts, &lastAlert)
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed := false
	for {
		code, err := auditOnce(ctx, stdout, stderr, cfg, opts, &lastAlert)
		if code == exitcode.Failure {
			failed = true
		}
		if err != nil && !cfg.JSON {
			fmt.Fprintln(stderr, "indelible:", err)
		}
		select {
		case <-ctx.Done():
			if failed {
				return exitcode.New(exitcode.Failure, errors.New("audit: a verification failure was seen while watching"))
			}
			return nil
		case <-time.After(cfg.Interval):
		}
	}
}

// auditOnce runs one audit with the state file, reports it, and on a
// verification failure alerts and gossips, unless the failure is the one
// *lastAlert already reported (a watch keeps failing the same way until
// someone acts: one alert is enough). It returns the exit code and the error
// (an *exitcode.Error) if the run did not verify.
func auditOnce(ctx context.Context, stdout, stderr io.Writer, cfg Config, opts audit.Options, lastAlert *string) (int, error) {
	var prev *audit.State
	if cfg.State != "" {
		s, err := audit.LoadState(cfg.State)
		if err != nil {
			return exitcode.Trouble, report(stdout, cfg, nil, exitcode.New(exitcode.Trouble, err), opts)
		}
		prev = s
	}
	var p *progress
	if !cfg.NoProgress && !cfg.JSON {
		p = newProgress(stderr)
		opts.Progress = p.update
	}
	res, err := audit.Audit(ctx, opts, prev)
	if p != nil {
		p.done()
	}
	if err == nil {
		if cfg.State != "" {
			if err := audit.SaveState(cfg.State, audit.NewState(res)); err != nil {
				return exitcode.Trouble, report(stdout, cfg, res, exitcode.New(exitcode.Trouble, err), opts)
			}
		}
		*lastAlert = ""
		if age := time.Since(res.CosignedAt); cfg.MaxAge > 0 && age > cfg.MaxAge {
			// The log may be replaying an old checkpoint forever: what it
			// serves verifies, but nobody vouched for it recently.
			err := fmt.Errorf("audit: the newest witness cosignature of %s is from %s, %s old, older than --max-age %s",
				res.Origin, res.CosignedAt.UTC().Format(time.RFC3339), age.Round(time.Second), cfg.MaxAge)
			return exitcode.Failure, report(stdout, cfg, res, exitcode.New(exitcode.Failure, err), opts)
		}
		return exitcode.Verified, report(stdout, cfg, res, nil, opts)
	}
	var f *audit.Failure
	if !errors.As(err, &f) {
		return exitcode.Trouble, report(stdout, cfg, nil, exitcode.New(exitcode.Trouble, err), opts)
	}
	if msg := f.Error(); msg != *lastAlert {
		*lastAlert = msg
		alert(ctx, stderr, cfg, opts, f)
	}
	return exitcode.Failure, report(stdout, cfg, nil, exitcode.New(exitcode.Failure, err), opts)
}

// alert reports a verification failure on stderr, to the webhook and, for
// an inconsistency between checkpoints, to the gossip witnesses.
func alert(ctx context.Context, stderr io.Writer, cfg Config, opts audit.Options, f *audit.Failure) {
	fmt.Fprintf(stderr, "ALERT: log %s (%s): %v\n", cfg.URL, opts.Log.Name(), f)
	if cfg.Webhook != "" {
		if err := audit.SendAlert(ctx, opts.Client, cfg.Webhook, audit.NewAlert(cfg.URL, opts.Log.Name(), f)); err != nil {
			fmt.Fprintf(stderr, "indelible: alert webhook: %v\n", err)
		}
	}
	if len(cfg.Gossip) > 0 && audit.IsInconsistency(f) {
		answers, err := audit.Gossip(ctx, opts.Client, cfg.Gossip, f)
		for _, a := range answers {
			fmt.Fprintf(stderr, "submitted to witness %s\n", a)
		}
		if err != nil {
			fmt.Fprintf(stderr, "indelible: %v\n", err)
		}
	}
}

// report prints the outcome of one run and returns runErr.
func report(w io.Writer, cfg Config, res *audit.Result, runErr *exitcode.Error, opts audit.Options) error {
	if cfg.JSON {
		r := Report{OK: runErr == nil, URL: cfg.URL, Origin: opts.Log.Name()}
		if res != nil {
			r.Size, r.Root, r.From = res.Size, base64.StdEncoding.EncodeToString(res.Root[:]), res.From
			r.Entries, r.Tiles, r.Bundles, r.Cosigners = res.Entries, res.Tiles, res.Bundles, res.Cosigners
			r.ProofSource, r.Seconds, r.Rate = res.ProofSource, res.Duration.Seconds(), res.Rate()
		}
		if runErr != nil {
			r.Error, r.ExitCode = runErr.Error(), runErr.Code
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
