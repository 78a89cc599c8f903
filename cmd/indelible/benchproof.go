package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// bench proof: load on GET /v1/proof/inclusion, the endpoint clients hit to
// turn an index into a proof (DESIGN.md target: >= 30,000 req/s, p99 <= 5 ms).
func init() {
	var (
		url      string
		readers  int
		duration time.Duration
	)
	cmd := &cobra.Command{
		Use:   "proof",
		Short: "Load a log's inclusion-proof endpoint and report requests/s and latency",
		Long: `bench proof runs --readers concurrent clients (keep-alive), each asking
GET <url>/v1/proof/inclusion?index=I&size=S for random entries I of the
log's current size S, for --duration, and prints requests/s and latency
percentiles. Every reply must be a 200 with the requested index and size.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if readers < 1 || duration <= 0 {
				return fmt.Errorf("--readers and --duration must be positive")
			}
			if url == "" {
				url = envURL()
			}
			return runBenchProof(cmd.Context(), cmd.OutOrStdout(), strings.TrimSuffix(url, "/"), readers, duration)
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", "log URL (default $INDELIBLE_URL or "+defaultURL+")")
	f.IntVar(&readers, "readers", 64, "concurrent clients")
	f.DurationVar(&duration, "duration", 10*time.Second, "how long to run")
	for _, c := range rootCmd.Commands() {
		if c.Name() == "bench" {
			c.AddCommand(cmd)
			return
		}
	}
	panic("bench proof: no bench command to join")
}

func runBenchProof(ctx context.Context, out io.Writer, base string, readers int, duration time.Duration) error {
	tr := &http.Transport{MaxIdleConnsPerHost: readers, MaxConnsPerHost: readers}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	size, err := checkpointSize(ctx, client, base)
	if err != nil {
		return err
	}
	if size == 0 {
		return fmt.Errorf("the log at %s is empty: append entries first", base)
	}
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	start := time.Now()
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for ctx.Err() == nil {
				i := rand.Int64N(size)
				t0 := time.Now()
				ok := proofOK(ctx, client, base, i, size)
				if ctx.Err() != nil {
					break
				}
				if !ok {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	fmt.Fprintf(out, "bench proof: %d readers, %s, tree size %d\n", readers, duration, size)
	fmt.Fprintf(out, "%d proofs in %.2fs: %.0f proofs/s (%d errors)\n", len(lats), elapsed.Seconds(), float64(len(lats))/elapsed.Seconds(), errs)
	if len(lats) > 0 {
		fmt.Fprintf(out, "latency: p50 %v  p90 %v  p99 %v  max %v\n", pct(lats, 50), pct(lats, 90), pct(lats, 99), lats[len(lats)-1])
	}
	if errs > 0 {
		return fmt.Errorf("%d proof requests failed", errs)
	}
	return nil
}

func checkpointSize(ctx context.Context, client *http.Client, base string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/checkpoint", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("fetching the checkpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("fetching the checkpoint: status %d, %v", resp.StatusCode, err)
	}
	lines := strings.SplitN(string(body), "\n", 3)
	if len(lines) < 3 {
		return 0, fmt.Errorf("malformed checkpoint")
	}
	var n int64
	if _, err := fmt.Sscan(lines[1], &n); err != nil {
		return 0, fmt.Errorf("malformed checkpoint size %q", lines[1])
	}
	return n, nil
}

func proofOK(ctx context.Context, client *http.Client, base string, i, n int64) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/proof/inclusion?index=%d&size=%d", base, i, n), nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var p struct {
		Index    int64    `json:"index"`
		TreeSize int64    `json:"tree_size"`
		Hashes   []string `json:"hashes"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&p) != nil {
		return false
	}
	return p.Index == i && p.TreeSize == n && len(p.Hashes) > 0
}
