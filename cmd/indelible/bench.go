package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

// Load generator limits.
const (
	benchMaxWriters = 10000
	benchMaxReply   = 64 << 10 // largest reply body the raw client reads
)

// benchConfig configures indelible bench append.
type benchConfig struct {
	url            string
	writers        int
	size           int
	duration       time.Duration
	rate           float64 // offered appends/s over all writers; 0 = as fast as possible
	waitCheckpoint bool
	client         string // "raw" or "std"
}

func init() {
	bench := &cobra.Command{
		Use:   "bench",
		Short: "Load generators",
	}
	var cfg benchConfig
	appendCmd := &cobra.Command{
		Use:   "append",
		Short: "Append entries with concurrent writers (one entry per POST /add) and report throughput and latency",
		Long: `bench append runs --writers concurrent writers, each with its own keep-alive
connection, POSTing one --size byte entry per request to <url>/add for
--duration, and prints the entries/s acknowledged and latency percentiles.
Entries are random bytes with a unique prefix.

Closed loop (default): each writer sends its next entry as soon as the last
is answered. Open loop (--rate R): entries are scheduled at R per second in
total and latency is measured from each entry's scheduled time, so a stalled
server is charged for the queue it causes (no coordinated omission).

--wait-checkpoint adds ?wait=checkpoint: the server answers once a published
checkpoint covers the entry, so the latency reported is POST-to-checkpoint.

--client raw (default) is a minimal HTTP/1.1 client (keep-alive, one request
in flight per connection) so the generator takes little CPU from a server on
the same machine; --client std uses net/http.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.url == "" {
				cfg.url = envURL()
			}
			res, err := runBench(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			res.print(cmd.OutOrStdout(), cfg)
			if res.ok == 0 {
				return errors.New("no append succeeded")
			}
			return nil
		},
	}
	f := appendCmd.Flags()
	f.StringVar(&cfg.url, "url", "", "log URL (default $INDELIBLE_URL or "+defaultURL+")")
	f.IntVar(&cfg.writers, "writers", 256, "concurrent writers (connections)")
	f.IntVar(&cfg.size, "size", 128, "entry size in bytes (16 to 65535)")
	f.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to run")
	f.Float64Var(&cfg.rate, "rate", 0, "offered load in appends/s over all writers (0: closed loop, as fast as possible)")
	f.BoolVar(&cfg.waitCheckpoint, "wait-checkpoint", false, "POST /add?wait=checkpoint: measure POST-to-checkpoint latency")
	f.StringVar(&cfg.client, "client", "raw", `HTTP client: "raw" (minimal HTTP/1.1) or "std" (net/http)`)
	bench.AddCommand(appendCmd)
	rootCmd.AddCommand(bench)
}

// benchResult is what a run measured.
type benchResult struct {
	elapsed   time.Duration
	ok        int
	errors    int
	pushbacks int
	firstErr  error
	latencies []time.Duration // of successful appends, sorted
	minIndex  int64
	maxIndex  int64
	server    map[string]histogram // server-side histograms over the run, by metric; nil if unavailable
}

func (r benchResult) print(w io.Writer, cfg benchConfig) {
	mode := "closed loop"
	if cfg.rate > 0 {
		mode = fmt.Sprintf("open loop, offered %.0f/s", cfg.rate)
	}
	fmt.Fprintf(w, "bench append: %d writers, %d-byte entries, %s, %s, client %s\n",
		cfg.writers, cfg.size, cfg.duration, mode, cfg.client)
	fmt.Fprintf(w, "appended %d entries in %.2fs: %.0f entries/s (%d errors, %d pushbacks; indexes %d..%d)\n",
		r.ok, r.elapsed.Seconds(), float64(r.ok)/r.elapsed.Seconds(), r.errors, r.pushbacks, r.minIndex, r.maxIndex)
	if r.firstErr != nil {
		fmt.Fprintf(w, "first error: %v\n", r.firstErr)
	}
	what := "POST (durable ack)"
	if cfg.waitCheckpoint {
		what = "POST-to-checkpoint"
	}
	if len(r.latencies) > 0 {
		fmt.Fprintf(w, "%s latency: p50 %s  p90 %s  p99 %s  max %s\n", what,
			pct(r.latencies, 50), pct(r.latencies, 90), pct(r.latencies, 99), r.latencies[len(r.latencies)-1])
	}
	for _, m := range []struct{ name, what string }{
		{metricAddDuration, "server-side POST /add handling"},
		{metricCommitLatency, "server-side commit (batch to fsync)"},
	} {
		if h, ok := r.server[m.name]; ok && h.count() > 0 {
			fmt.Fprintf(w, "%s (/metrics buckets, upper bounds): p50 <= %s  p90 <= %s  p99 <= %s  (%d observed)\n",
				m.what, h.quantile(0.50), h.quantile(0.90), h.quantile(0.99), int64(h.count()))
		}
	}
}

// pct returns the p-th percentile of sorted ds (nearest rank).
func pct(ds []time.Duration, p float64) time.Duration {
	k := int(float64(len(ds))*p/100+0.5) - 1
	k = max(0, min(k, len(ds)-1))
	return ds[k].Round(10 * time.Microsecond)
}

// poster sends one entry and returns the index the server assigned.
type poster interface {
	post(entry []byte) (index int64, status int, err error)
	close()
}

// runBench runs the load described by cfg.
func runBench(ctx context.Context, cfg benchConfig) (benchResult, error) {
	if cfg.writers < 1 || cfg.writers > benchMaxWriters {
		return benchResult{}, fmt.Errorf("--writers %d: want 1 to %d", cfg.writers, benchMaxWriters)
	}
	if cfg.size < 16 || cfg.size > 65535 {
		return benchResult{}, fmt.Errorf("--size %d: want 16 to 65535", cfg.size)
	}
	if cfg.duration <= 0 {
		return benchResult{}, errors.New("--duration must be positive")
	}
	u, err := url.Parse(strings.TrimSuffix(cfg.url, "/") + "/add")
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return benchResult{}, fmt.Errorf("--url %q: want http://host:port", cfg.url)
	}
	if cfg.waitCheckpoint {
		u.RawQuery = "wait=checkpoint"
	}
	var newPoster func() (poster, error)
	switch cfg.client {
	case "raw":
		newPoster = func() (poster, error) { return dialRaw(u) }
	case "std":
		tr := &http.Transport{MaxIdleConnsPerHost: cfg.writers, DisableCompression: true}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr, Timeout: clientTimeout}
		newPoster = func() (poster, error) { return &stdPoster{c: hc, url: u.String()}, nil }
	default:
		return benchResult{}, fmt.Errorf("--client %q: want raw or std", cfg.client)
	}

	// Open loop: a scheduler hands out send times at the offered rate.
	var sched chan time.Time
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	deadline := start.Add(cfg.duration)
	if cfg.rate > 0 {
		sched = make(chan time.Time, int(cfg.rate)+cfg.writers)
		go schedule(ctx, sched, start, deadline, cfg.rate)
	}

	type workerResult struct {
		lat                []time.Duration
		errs, pushbacks    int
		firstErr           error
		minIndex, maxIndex int64
	}
	before := scrapeHistograms(u)
	results := make([]workerResult, cfg.writers)
	var wg sync.WaitGroup
	var seq atomic.Uint64
	var nonce [8]byte
	rand.Read(nonce[:])
	for w := range cfg.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[w]
			res.minIndex, res.maxIndex = -1, -1
			p, err := newPoster()
			if err != nil {
				res.errs++
				res.firstErr = err
				return
			}
			defer p.close()
			entry := make([]byte, cfg.size)
			rand.Read(entry)
			copy(entry, nonce[:])
			for {
				var t0 time.Time
				if sched != nil {
					var ok bool
					if t0, ok = <-sched; !ok {
						return
					}
				} else {
					t0 = time.Now()
					if !t0.Before(deadline) {
						return
					}
				}
				binary.BigEndian.PutUint64(entry[8:], seq.Add(1))
				idx, status, err := p.post(entry)
				d := time.Since(t0)
				switch {
				case err == nil:
					res.lat = append(res.lat, d)
					if res.minIndex < 0 || idx < res.minIndex {
						res.minIndex = idx
					}
					res.maxIndex = max(res.maxIndex, idx)
				case status == http.StatusServiceUnavailable:
					res.pushbacks++
					time.Sleep(10 * time.Millisecond)
				default:
					res.errs++
					if res.firstErr == nil {
						res.firstErr = err
					}
					if status == 0 {
						// Connection trouble: pause; the next post reconnects.
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
		}()
	}
	wg.Wait()
	var r benchResult
	r.elapsed = time.Since(start)
	r.minIndex = -1
	for _, w := range results {
		r.ok += len(w.lat)
		r.errors += w.errs
		r.pushbacks += w.pushbacks
		if r.firstErr == nil {
			r.firstErr = w.firstErr
		}
		r.latencies = append(r.latencies, w.lat...)
		if w.minIndex >= 0 && (r.minIndex < 0 || w.minIndex < r.minIndex) {
			r.minIndex = w.minIndex
		}
		r.maxIndex = max(r.maxIndex, w.maxIndex)
	}
	slices.Sort(r.latencies)
	if before != nil {
		if after := scrapeHistograms(u); after != nil {
			r.server = make(map[string]histogram)
			for name, h := range after {
				r.server[name] = h.minus(before[name])
			}
		}
	}
	return r, nil
}

// Server metrics the bench reads from /metrics, when the server exposes them.
const (
	metricAddDuration   = `indelible_http_request_duration_seconds_bucket{route="/add",`
	metricCommitLatency = `indelible_commit_latency_seconds_bucket{`
)

// histogram is a Prometheus cumulative histogram: upper bounds (seconds,
// ascending, +Inf last) and cumulative counts.
type histogram struct {
	le     []float64
	counts []float64
}

func (h histogram) count() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// minus returns h - old, bucket by bucket (old may be empty).
func (h histogram) minus(old histogram) histogram {
	out := histogram{le: h.le, counts: slices.Clone(h.counts)}
	if len(old.counts) == len(h.counts) {
		for i := range out.counts {
			out.counts[i] -= old.counts[i]
		}
	}
	return out
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h histogram) quantile(q float64) string {
	want := q * h.count()
	for i, c := range h.counts {
		if c >= want {
			if math.IsInf(h.le[i], 1) {
				return "+Inf"
			}
			return time.Duration(h.le[i] * float64(time.Second)).String()
		}
	}
	return "+Inf"
}

// scrapeHistograms reads the bench's histograms from the server's /metrics,
// or returns nil if it cannot.
func scrapeHistograms(add *url.URL) map[string]histogram {
	u := *add
	u.Path, u.RawQuery = "/metrics", ""
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u.String())
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	out := make(map[string]histogram)
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range []string{metricAddDuration, metricCommitLatency} {
			rest, ok := strings.CutPrefix(line, name)
			if !ok {
				continue
			}
			// le="0.0001"} 123
			le, rest, ok1 := strings.Cut(strings.TrimPrefix(rest, `le="`), `"} `)
			bound, err1 := strconv.ParseFloat(le, 64)
			count, err2 := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if !ok1 || err1 != nil || err2 != nil {
				continue
			}
			h := out[name]
			h.le = append(h.le, bound)
			h.counts = append(h.counts, count)
			out[name] = h
		}
	}
	if sc.Err() != nil || len(out) == 0 {
		return nil
	}
	return out
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

// rawPoster is a minimal HTTP/1.1 keep-alive client for POST /add: it writes
// the request with one syscall and parses just enough of the reply.
type rawPoster struct {
	u    *url.URL
	conn net.Conn // nil after the server closed it: the next post redials
	br   *bufio.Reader
	head []byte // request line and headers up to "Content-Length: "
	req  []byte
	body []byte
}

func dialRaw(u *url.URL) (*rawPoster, error) {
	head := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: indelible-bench\r\nContent-Type: application/octet-stream\r\nContent-Length: ",
		u.RequestURI(), u.Host)
	p := &rawPoster{u: u, head: head}
	if err := p.dial(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *rawPoster) dial() error {
	conn, err := net.DialTimeout("tcp", p.u.Host, clientTimeout)
	if err != nil {
		return err
	}
	p.conn = conn
	p.br = bufio.NewReaderSize(conn, 4096)
	return nil
}

func (p *rawPoster) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

func (p *rawPoster) post(entry []byte) (int64, int, error) {
	req := append(p.req[:0], p.head...)
	req = strconv.AppendInt(req, int64(len(entry)), 10)
	req = append(req, "\r\n\r\n"...)
	req = append(req, entry...)
	p.req = req
	if p.conn == nil {
		if err := p.dial(); err != nil {
			return 0, 0, err
		}
	}
	p.conn.SetDeadline(time.Now().Add(clientTimeout))
	if _, err := p.conn.Write(req); err != nil {
		p.close()
		return 0, 0, err
	}
	status, body, err := p.readReply()
	if err != nil {
		p.close()
		return 0, 0, err
	}
	if status != http.StatusOK {
		return 0, status, fmt.Errorf("POST /add: status %d: %s", status, bytes.TrimSpace(body))
	}
	idx, err := strconv.ParseInt(string(bytes.TrimSuffix(body, []byte("\n"))), 10, 64)
	if err != nil {
		return 0, status, fmt.Errorf("POST /add: reply %q is not an index", body)
	}
	return idx, status, nil
}

// readReply reads one response with a Content-Length body.
func (p *rawPoster) readReply() (int, []byte, error) {
	line, err := p.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("malformed status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("malformed status line %q", line)
	}
	length, closing := -1, false
	for {
		line, err := p.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.Atoi(string(value))
			if err != nil || length < 0 || length > benchMaxReply {
				return 0, nil, fmt.Errorf("unsupported Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, nil, fmt.Errorf("unsupported Transfer-Encoding %q", value)
		}
	}
	if length < 0 {
		return 0, nil, errors.New("reply without Content-Length")
	}
	if cap(p.body) < length {
		p.body = make([]byte, length)
	}
	body := p.body[:length]
	if _, err := io.ReadFull(p.br, body); err != nil {
		return 0, nil, err
	}
	if closing {
		// The server closes the connection: the next post redials.
		p.close()
	}
	return status, body, nil
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, benchMaxReply))
	resp.Body.Close()
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, resp.StatusCode, fmt.Errorf("POST /add: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	idx, err := strconv.ParseInt(string(bytes.TrimSuffix(body, []byte("\n"))), 10, 64)
	if err != nil {
		return 0, resp.StatusCode, fmt.Errorf("POST /add: reply %q is not an index", body)
	}
	return idx, resp.StatusCode, nil
}
