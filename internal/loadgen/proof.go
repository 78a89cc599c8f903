package loadgen

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"indelible.dev/client"
	itlog "indelible.dev/tlog"
)

// ProofConfig configures Proof.
type ProofConfig struct {
	URL      string         // the log's URL prefix
	Readers  int            // concurrent clients (keep-alive): 1 to MaxWriters
	Duration time.Duration  // how long to run
	Token    string         // sent as a Bearer token if set (a log run with --private-log)
	RootCAs  *x509.CertPool // the only CAs trusted for HTTPS; nil means the system's
}

// ProofResult is what a Proof run measured.
type ProofResult struct {
	Config    ProofConfig
	Size      int64 // the tree size proofs were asked in
	Elapsed   time.Duration
	Errors    int             // requests that failed or answered wrong
	Latencies []time.Duration // of the good answers, sorted
}

// Proof loads the log's GET /v1/proof/inclusion: cfg.Readers clients ask,
// for cfg.Duration, for the inclusion proof of random entries in the tree of
// the log's current checkpoint size. An answer counts only if it is a 200
// with the index and size asked for and well-formed hashes; the proofs are
// not checked against a root. It fails if the log is empty or its
// checkpoint cannot be read; failed requests are counted in the result.
func Proof(ctx context.Context, cfg ProofConfig) (ProofResult, error) {
	if cfg.Readers < 1 || cfg.Readers > MaxWriters || cfg.Duration <= 0 {
		return ProofResult{}, fmt.Errorf("loadgen: %d readers for %v: want 1 to %d readers and a positive duration", cfg.Readers, cfg.Duration, MaxWriters)
	}
	tr := client.NewTransport(cfg.RootCAs)
	tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = cfg.Readers, cfg.Readers
	defer tr.CloseIdleConnections()
	c, err := client.New(cfg.URL, client.Options{HTTPClient: &http.Client{Transport: tr, Timeout: RequestTimeout}, Retries: -1, Token: cfg.Token})
	if err != nil {
		return ProofResult{}, fmt.Errorf("loadgen: %w", err)
	}
	size, err := checkpointSize(ctx, c)
	if err != nil {
		return ProofResult{}, err
	}
	if size == 0 {
		return ProofResult{}, fmt.Errorf("loadgen: the log at %s is empty: append entries first", cfg.URL)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var (
		mu  sync.Mutex
		res = ProofResult{Config: cfg, Size: size}
		wg  sync.WaitGroup
	)
	start := time.Now()
	for range cfg.Readers {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for ctx.Err() == nil {
				i := rand.Int64N(size)
				t0 := time.Now()
				_, err := c.InclusionProof(ctx, i, size)
				if ctx.Err() != nil {
					break
				}
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			res.Latencies = append(res.Latencies, mine...)
			res.Errors += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.Latencies)
	return res, nil
}

// checkpointSize reads the size of the log's checkpoint, without verifying
// its signature (the load generator has no key; it needs only a size the
// log can prove in).
func checkpointSize(ctx context.Context, c *client.Client) (int64, error) {
	b, err := c.Checkpoint(ctx)
	if err != nil {
		return 0, fmt.Errorf("loadgen: fetching the checkpoint: %w", err)
	}
	text, _, ok := itlog.SplitNote(b)
	if !ok {
		return 0, errors.New("loadgen: the checkpoint is not a signed note")
	}
	cp, err := itlog.ParseCheckpoint(string(text))
	if err != nil {
		return 0, fmt.Errorf("loadgen: %w", err)
	}
	return cp.N, nil
}

// Print writes the result for people.
func (r ProofResult) Print(w io.Writer) {
	fmt.Fprintf(w, "bench proof: %d readers, %s, tree size %d\n", r.Config.Readers, r.Config.Duration, r.Size)
	fmt.Fprintf(w, "%d proofs in %.2fs: %.0f proofs/s (%d errors)\n",
		len(r.Latencies), r.Elapsed.Seconds(), float64(len(r.Latencies))/r.Elapsed.Seconds(), r.Errors)
	if l := r.Latencies; len(l) > 0 {
		fmt.Fprintf(w, "latency: p50 %v  p90 %v  p99 %v  max %v\n", Percentile(l, 50), Percentile(l, 90), Percentile(l, 99), l[len(l)-1])
	}
}
