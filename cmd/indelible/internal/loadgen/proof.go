package loadgen

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
	itlog "indelible.dev/tlog"
)

// ProofConfig configures Proof.
type ProofConfig struct {
	URL      string         // the log's URL prefix
	Readers  int            // concurrent clients (keep-alive): 1 to MaxWriters
	Duration time.Duration  // how long to run
	Token    string         // sent as a Bearer token if set (a log run with --private-log)
	Client   string         // ClientRaw (plain HTTP only) or ClientStd; default: raw for http://, std for https://
	RootCAs  *x509.CertPool // ClientStd: the only CAs trusted for HTTPS; nil means the system's
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
	u, err := url.Parse(strings.TrimSuffix(cfg.URL, "/") + "/")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ProofResult{}, fmt.Errorf("loadgen: URL %q: want http://host:port or https://host:port", cfg.URL)
	}
	raw := false
	switch cfg.Client {
	case "":
		raw = u.Scheme == "http"
	case ClientRaw:
		if u.Scheme == "https" {
			return ProofResult{}, fmt.Errorf("loadgen: URL %q: the raw client speaks plain HTTP only: use the std client for HTTPS", cfg.URL)
		}
		raw = true
	case ClientStd:
	default:
		return ProofResult{}, fmt.Errorf("loadgen: client %q: want %s or %s", cfg.Client, ClientRaw, ClientStd)
	}
	tr := client.NewTransport(cfg.RootCAs)
	tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = cfg.Readers, cfg.Readers
	defer tr.CloseIdleConnections()
	c, err := client.New(cfg.URL, "", client.WithOptions(client.Options{HTTPClient: &http.Client{Transport: tr, Timeout: RequestTimeout}, Retries: -1, Token: cfg.Token}))
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
			prove := func(i int64) error {
				_, err := c.InclusionProof(ctx, i, size)
				return err
			}
			if raw {
				p := &rawProver{rawConn: rawConn{u: u}, token: cfg.Token}
				defer p.close()
				prove = func(i int64) error { return p.prove(i, size) }
			}
			for ctx.Err() == nil {
				i := rand.Int64N(size)
				t0 := time.Now()
				err := prove(i)
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

// rawProver asks for inclusion proofs over a rawConn and checks each reply
// as strictly as the std client does (a 200 with the index and size asked
// for and the right number of well-formed hashes), without decoding it
// into a value: the load generator shares the machine with the server.
type rawProver struct {
	rawConn
	token string
	req   []byte
	dec   [tlog.HashSize + 2]byte
}

func (p *rawProver) prove(i, n int64) error {
	req := append(p.req[:0], "GET "...)
	req = append(req, p.u.Path...)
	req = append(req, "v1/proof/inclusion?index="...)
	req = strconv.AppendInt(req, i, 10)
	req = append(req, "&size="...)
	req = strconv.AppendInt(req, n, 10)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, p.u.Host...)
	req = append(req, "\r\nUser-Agent: indelible-bench\r\n"...)
	if p.token != "" {
		req = append(req, "Authorization: Bearer "...)
		req = append(req, p.token...)
		req = append(req, "\r\n"...)
	}
	req = append(req, "\r\n"...)
	p.req = req
	status, body, err := p.roundTrip(req)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("inclusion proof %d in %d: status %d: %.200s", i, n, status, body)
	}
	return p.check(body, i, n)
}

// check verifies an inclusion-proof body: the fields in the order the
// server writes them, or else any JSON encoding of the same object.
func (p *rawProver) check(body []byte, i, n int64) error {
	want := proofLen(i, n)
	rest, ok := bytes.CutPrefix(body, []byte(`{"index":`))
	var num []byte
	if ok {
		num, rest, ok = bytes.Cut(rest, []byte(`,"tree_size":`))
		ok = ok && string(num) == strconv.FormatInt(i, 10)
	}
	if ok {
		num, rest, ok = bytes.Cut(rest, []byte(`,"hashes":[`))
		ok = ok && string(num) == strconv.FormatInt(n, 10)
	}
	if ok {
		rest, ok = bytes.CutSuffix(bytes.TrimRight(rest, "\n"), []byte("]}"))
	}
	if !ok {
		var r client.InclusionProof
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("inclusion proof %d in %d: %w", i, n, err)
		}
		if r.Index != i || r.TreeSize != n {
			return fmt.Errorf("inclusion proof for %d in %d answered for %d in %d", i, n, r.Index, r.TreeSize)
		}
		if _, err := r.Proof(); err != nil {
			return err
		}
		if len(r.Hashes) != want {
			return fmt.Errorf("inclusion proof %d in %d: %d hashes, want %d", i, n, len(r.Hashes), want)
		}
		return nil
	}
	got := 0
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte(","))
		q, ok1 := bytes.CutPrefix(h, []byte(`"`))
		q, ok2 := bytes.CutSuffix(q, []byte(`"`))
		if !ok1 || !ok2 {
			return fmt.Errorf("inclusion proof %d in %d: malformed hash %.60q", i, n, h)
		}
		if k, err := base64.StdEncoding.Decode(p.dec[:], q); err != nil || k != tlog.HashSize {
			return fmt.Errorf("inclusion proof %d in %d: malformed hash %.60q", i, n, h)
		}
		got++
	}
	if got != want {
		return fmt.Errorf("inclusion proof %d in %d: %d hashes, want %d", i, n, got, want)
	}
	return nil
}

// proofLen is the number of hashes in the RFC 6962 inclusion proof of
// entry i in a tree of size n.
func proofLen(i, n int64) int {
	l := 0
	for n > 1 {
		k := int64(1) << (bits.Len64(uint64(n-1)) - 1) // the largest power of two below n
		if i < k {
			n = k
		} else {
			i, n = i-k, n-k
		}
		l++
	}
	return l
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
