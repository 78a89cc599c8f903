// Package loadgen is Indelible's load generator: concurrent writers POSTing
// entries to a log's /add route (closed or open loop), and concurrent readers
// of its inclusion-proof endpoint. It measures what a client sees (throughput
// and latency percentiles) and, when the server exposes /metrics, the
// server-side histograms over the same run.
//
// The command `indelible bench` wires it to flags; the benchmarks in
// BENCHMARKS.md were measured with it.
//
//	res, err := loadgen.Append(ctx, loadgen.AppendConfig{URL: "http://127.0.0.1:8080",
//		Writers: 64, Size: 128, Duration: 10 * time.Second, Client: loadgen.ClientRaw})
//	res.Print(os.Stdout)
package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"indelible.dev/client"
)

// Limits and defaults.
const (
	// MaxWriters bounds AppendConfig.Writers.
	MaxWriters = 10000
	// MinEntrySize and MaxEntrySize bound AppendConfig.Size; entries start
	// with a 16-byte unique prefix, and the bundle format allows 65,535.
	MinEntrySize = 16
	MaxEntrySize = 65535
	// RequestTimeout bounds one request.
	RequestTimeout = 30 * time.Second
	// maxReply is the largest reply body read.
	maxReply = 64 << 10
	// pushbackPause and reconnectPause are how long a writer waits after a
	// 503 and after a connection failure.
	pushbackPause  = 10 * time.Millisecond
	reconnectPause = 100 * time.Millisecond
)

// HTTP clients for AppendConfig.Client.
const (
	// ClientRaw is a minimal HTTP/1.1 client (keep-alive, one request in
	// flight per connection, one write per request) that takes little CPU
	// from a server on the same machine.
	ClientRaw = "raw"
	// ClientStd is net/http.
	ClientStd = "std"
)

// AppendConfig configures Append.
type AppendConfig struct {
	URL            string         // the log's URL prefix (https only with ClientStd)
	Writers        int            // concurrent writers, each with its own connection: 1 to MaxWriters
	Size           int            // entry size in bytes: MinEntrySize to MaxEntrySize
	Duration       time.Duration  // how long to run
	Rate           float64        // offered appends/s over all writers; 0 = closed loop, as fast as possible
	WaitCheckpoint bool           // POST /add?wait=checkpoint: latency is POST-to-checkpoint
	Client         string         // ClientRaw or ClientStd
	RootCAs        *x509.CertPool // ClientStd: the only CAs trusted for HTTPS; nil means the system's
}

// AppendResult is what an Append run measured.
type AppendResult struct {
	Config    AppendConfig
	Elapsed   time.Duration
	OK        int             // acknowledged appends
	Errors    int             // failed appends (not pushbacks)
	Pushbacks int             // 503 answers
	FirstErr  error           // the first failure, if any
	Latencies []time.Duration // of the acknowledged appends, sorted
	MinIndex  int64           // smallest index acknowledged, -1 if none
	MaxIndex  int64           // largest index acknowledged, -1 if none
	// Server holds the server-side histograms over the run, by metric name
	// prefix (MetricAddDuration, MetricCommitLatency); nil if the server
	// has no /metrics.
	Server map[string]Histogram
}

// poster sends one entry and returns the index the server assigned and the
// HTTP status (0 if there was no answer).
type poster interface {
	post(entry []byte) (index int64, status int, err error)
	close()
}

// check validates cfg and returns the /add URL.
func (cfg AppendConfig) check() (*url.URL, error) {
	if cfg.Writers < 1 || cfg.Writers > MaxWriters {
		return nil, fmt.Errorf("loadgen: %d writers: want 1 to %d", cfg.Writers, MaxWriters)
	}
	if cfg.Size < MinEntrySize || cfg.Size > MaxEntrySize {
		return nil, fmt.Errorf("loadgen: entry size %d: want %d to %d", cfg.Size, MinEntrySize, MaxEntrySize)
	}
	if cfg.Duration <= 0 {
		return nil, errors.New("loadgen: the duration must be positive")
	}
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("loadgen: rate %v: want 0 (closed loop) or a positive rate", cfg.Rate)
	}
	u, err := url.Parse(strings.TrimSuffix(cfg.URL, "/") + "/add")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("loadgen: URL %q: want http://host:port or https://host:port", cfg.URL)
	}
	if u.Scheme == "https" && cfg.Client != ClientStd {
		return nil, fmt.Errorf("loadgen: URL %q: the raw client speaks plain HTTP only: use the std client for HTTPS", cfg.URL)
	}
	if cfg.WaitCheckpoint {
		u.RawQuery = "wait=checkpoint"
	}
	return u, nil
}

// Append runs the load cfg describes and returns what it measured. Entries
// are random bytes, each with a unique prefix. In an open loop (cfg.Rate >
// 0) latency is measured from each entry's scheduled send time, so a
// stalled server is charged for the queue it causes (no coordinated
// omission). It returns an error only for a bad cfg: failed appends are
// counted in the result.
func Append(ctx context.Context, cfg AppendConfig) (AppendResult, error) {
	u, err := cfg.check()
	if err != nil {
		return AppendResult{}, err
	}
	var newPoster func() (poster, error)
	switch cfg.Client {
	case ClientRaw, "":
		newPoster = func() (poster, error) { return dialRaw(u) }
	case ClientStd:
		tr := client.NewTransport(cfg.RootCAs)
		tr.MaxIdleConnsPerHost, tr.DisableCompression = cfg.Writers, true
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr, Timeout: RequestTimeout}
		newPoster = func() (poster, error) { return &stdPoster{c: hc, url: u.String()}, nil }
	default:
		return AppendResult{}, fmt.Errorf("loadgen: client %q: want %s or %s", cfg.Client, ClientRaw, ClientStd)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	// Open loop: a scheduler hands out send times at the offered rate.
	var sched chan time.Time
	if cfg.Rate > 0 {
		sched = make(chan time.Time, int(cfg.Rate)+cfg.Writers)
		go schedule(ctx, sched, start, deadline, cfg.Rate)
	}
	before := scrapeHistograms(u)
	results := make([]writerResult, cfg.Writers)
	var wg sync.WaitGroup
	var seq atomic.Uint64
	var nonce [8]byte
	rand.Read(nonce[:])
	for w := range cfg.Writers {
		wg.Go(func() {
			res := &results[w]
			res.minIndex, res.maxIndex = -1, -1
			p, err := newPoster()
			if err != nil {
				res.fail(err)
				return
			}
			defer p.close()
			entry := make([]byte, cfg.Size)
			rand.Read(entry)
			copy(entry, nonce[:])
			for {
				var t0 time.Time
				if sched != nil {
					var ok bool
					if t0, ok = <-sched; !ok {
						return
					}
				} else if t0 = time.Now(); !t0.Before(deadline) || ctx.Err() != nil {
					return
				}
				binary.BigEndian.PutUint64(entry[8:], seq.Add(1))
				idx, status, err := p.post(entry)
				res.record(idx, status, err, time.Since(t0))
			}
		})
	}
	wg.Wait()
	r := AppendResult{Config: cfg, Elapsed: time.Since(start), MinIndex: -1, MaxIndex: -1}
	for _, w := range results {
		r.OK += len(w.lat)
		r.Errors += w.errs
		r.Pushbacks += w.pushbacks
		if r.FirstErr == nil {
			r.FirstErr = w.firstErr
		}
		r.Latencies = append(r.Latencies, w.lat...)
		if w.minIndex >= 0 && (r.MinIndex < 0 || w.minIndex < r.MinIndex) {
			r.MinIndex = w.minIndex
		}
		r.MaxIndex = max(r.MaxIndex, w.maxIndex)
	}
	slices.Sort(r.Latencies)
	if before != nil {
		if after := scrapeHistograms(u); after != nil {
			r.Server = make(map[string]Histogram)
			for name, h := range after {
				r.Server[name] = h.Minus(before[name])
			}
		}
	}
	return r, nil
}

// writerResult is what one writer saw; only its goroutine touches it until
// Append's wg.Wait.
type writerResult struct {
	lat                []time.Duration
	errs, pushbacks    int
	firstErr           error
	minIndex, maxIndex int64
}

func (res *writerResult) fail(err error) {
	res.errs++
	if res.firstErr == nil {
		res.firstErr = err
	}
}

// record counts one post and pauses after a pushback or a broken connection.
func (res *writerResult) record(idx int64, status int, err error, d time.Duration) {
	switch {
	case err == nil:
		res.lat = append(res.lat, d)
		if res.minIndex < 0 || idx < res.minIndex {
			res.minIndex = idx
		}
		res.maxIndex = max(res.maxIndex, idx)
	case status == http.StatusServiceUnavailable:
		res.pushbacks++
		time.Sleep(pushbackPause)
	default:
		res.fail(err)
		if status == 0 {
			// Connection trouble: pause; the next post reconnects.
			time.Sleep(reconnectPause)
		}
	}
}

// Print writes the result for people.
func (r AppendResult) Print(w io.Writer) {
	cfg := r.Config
	mode := "closed loop"
	if cfg.Rate > 0 {
		mode = fmt.Sprintf("open loop, offered %.0f/s", cfg.Rate)
	}
	fmt.Fprintf(w, "bench append: %d writers, %d-byte entries, %s, %s, client %s\n",
		cfg.Writers, cfg.Size, cfg.Duration, mode, orDefault(cfg.Client, ClientRaw))
	fmt.Fprintf(w, "appended %d entries in %.2fs: %.0f entries/s (%d errors, %d pushbacks; indexes %d..%d)\n",
		r.OK, r.Elapsed.Seconds(), float64(r.OK)/r.Elapsed.Seconds(), r.Errors, r.Pushbacks, r.MinIndex, r.MaxIndex)
	if r.FirstErr != nil {
		fmt.Fprintf(w, "first error: %v\n", r.FirstErr)
	}
	what := "POST (durable ack)"
	if cfg.WaitCheckpoint {
		what = "POST-to-checkpoint"
	}
	if len(r.Latencies) > 0 {
		fmt.Fprintf(w, "%s latency: p50 %s  p90 %s  p99 %s  max %s\n", what,
			Percentile(r.Latencies, 50), Percentile(r.Latencies, 90), Percentile(r.Latencies, 99), r.Latencies[len(r.Latencies)-1])
	}
	for _, m := range []struct{ name, what string }{
		{MetricAddDuration, "server-side POST /add handling"},
		{MetricCommitLatency, "server-side commit (batch to fsync)"},
	} {
		if h, ok := r.Server[m.name]; ok && h.Count() > 0 {
			fmt.Fprintf(w, "%s (/metrics buckets, upper bounds): p50 <= %s  p90 <= %s  p99 <= %s  (%d observed)\n",
				m.what, h.Quantile(0.50), h.Quantile(0.90), h.Quantile(0.99), int64(h.Count()))
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted ds by the
// nearest-rank method, rounded to 10µs; 0 for no durations.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	k := int(float64(len(ds))*p/100+0.5) - 1
	k = max(0, min(k, len(ds)-1))
	return ds[k].Round(10 * time.Microsecond)
}

// schedule sends the scheduled time of each append, rate per second, from
// start until deadline, then closes ch. Several times are sent per wake-up
// when the sleep overshoots, so the offered rate holds.
func schedule(ctx context.Context, ch chan<- time.Time, start, deadline time.Time, rate float64) {
	defer close(ch)
	interval := time.Duration(float64(time.Second) / rate)
	next := start
	for next.Before(deadline) {
		now := time.Now()
		for !next.After(now) && next.Before(deadline) {
			select {
			case ch <- next:
			case <-ctx.Done():
				return
			}
			next = next.Add(interval)
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(min(d, time.Millisecond))
		}
	}
}

// stdPoster posts with net/http.
type stdPoster struct {
	c   *http.Client
	url string
}

func (p *stdPoster) close() {}

func (p *stdPoster) post(entry []byte) (int64, int, error) {
	resp, err := p.c.Post(p.url, "application/octet-stream", bytes.NewReader(entry))
	if err != nil {
		return 0, 0, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	resp.Body.Close()
	if err != nil {
		return 0, 0, err
	}
	return parseAddReply(resp.StatusCode, body)
}

// parseAddReply interprets the reply to POST /add: a 200 with the index and
// a newline.
func parseAddReply(status int, body []byte) (int64, int, error) {
	if status != http.StatusOK {
		return 0, status, fmt.Errorf("POST /add: status %d: %s", status, bytes.TrimSpace(body))
	}
	idx, err := strconv.ParseInt(string(bytes.TrimSuffix(body, []byte("\n"))), 10, 64)
	if err != nil {
		return 0, status, fmt.Errorf("POST /add: reply %q is not an index", body)
	}
	return idx, status, nil
}
