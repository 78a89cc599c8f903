package loadgen

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/httpapi"
	"indelible.dev/ledger"
)

// realLog serves a real ledger in a temporary directory through the real
// HTTP API (raw appends and /metrics) on a loopback port.
func realLog(t *testing.T) (string, *ledger.Log) {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "example.com/loadgen")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	m := httpapi.NewMetrics()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: s, OnCommit: m.ObserveCommit, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.New(httpapi.Config{Log: l, RawAppend: true, Metrics: m, Logger: logger})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		l.Close()
	})
	return hs.URL, l
}

// TestAppendRealLog runs every mode briefly against a real log: every
// append is acknowledged with a distinct index (the indexes of a run are
// consecutive, as nothing else writes), and the server-side histograms
// scraped from /metrics count exactly the run's requests.
func TestAppendRealLog(t *testing.T) {
	u, l := realLog(t)
	var total int64
	for _, cfg := range []AppendConfig{
		{Writers: 4, Size: 64, Duration: 300 * time.Millisecond, Client: ClientRaw},
		{Writers: 4, Size: 300, Duration: 300 * time.Millisecond, Client: ClientStd},
		{Writers: 4, Size: 16, Duration: 500 * time.Millisecond, Rate: 200, WaitCheckpoint: true},
	} {
		cfg.URL = u
		r, err := Append(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK == 0 || r.Errors != 0 || r.FirstErr != nil || r.Pushbacks != 0 {
			t.Fatalf("%+v: %d ok, %d errors (%v), %d pushbacks", cfg, r.OK, r.Errors, r.FirstErr, r.Pushbacks)
		}
		if r.MinIndex != total || r.MaxIndex != total+int64(r.OK)-1 || len(r.Latencies) != r.OK {
			t.Fatalf("%+v: %d ok with indexes %d..%d, after %d entries", cfg, r.OK, r.MinIndex, r.MaxIndex, total)
		}
		total += int64(r.OK)
		if cfg.Rate > 0 && (r.OK > 101 || r.OK < 50) {
			t.Errorf("open loop at 200/s for 0.5s acknowledged %d appends", r.OK)
		}
		if h := r.Server[MetricAddDuration]; int(h.Count()) != r.OK {
			t.Errorf("%+v: /metrics counted %v POST /add in the run, want %d", cfg, h.Count(), r.OK)
		}
		if h := r.Server[MetricCommitLatency]; h.Count() < 1 || int(h.Count()) > r.OK {
			t.Errorf("%+v: /metrics counted %v commits for %d appends", cfg, h.Count(), r.OK)
		}
		var out strings.Builder
		r.Print(&out)
		if !strings.Contains(out.String(), fmt.Sprintf("appended %d entries", r.OK)) || !strings.Contains(out.String(), "latency: p50 ") {
			t.Errorf("Print:\n%s", out.String())
		}
	}
	if cp, _ := l.Checkpoint(); cp.N != total {
		t.Fatalf("the log holds %d entries, the runs acknowledged %d", cp.N, total)
	}
}

func TestProofRealLog(t *testing.T) {
	u, l := realLog(t)
	if _, err := Proof(context.Background(), ProofConfig{URL: u, Readers: 2, Duration: 100 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("Proof on an empty log: %v", err)
	}
	entries := make([]ledger.Entry, 300)
	for i := range entries {
		entries[i] = ledger.Entry{Data: fmt.Appendf(nil, "entry %d", i)}
	}
	if _, err := l.AppendEntries(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []string{"", ClientRaw, ClientStd} {
		r, err := Proof(context.Background(), ProofConfig{URL: u, Readers: 4, Duration: 300 * time.Millisecond, Client: cl})
		if err != nil {
			t.Fatal(err)
		}
		if r.Size != 300 || r.Errors != 0 || len(r.Latencies) == 0 {
			t.Fatalf("client %s: size %d, %d errors, %d proofs", cl, r.Size, r.Errors, len(r.Latencies))
		}
		var out strings.Builder
		r.Print(&out)
		if !strings.Contains(out.String(), " proofs/s (0 errors)") {
			t.Errorf("Print:\n%s", out.String())
		}
	}
	if _, err := Proof(context.Background(), ProofConfig{URL: "https://127.0.0.1:1", Readers: 1, Duration: time.Second, Client: ClientRaw}); err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Errorf("raw client on an https URL: %v", err)
	}
	if _, err := Proof(context.Background(), ProofConfig{URL: u, Readers: 1, Duration: time.Second, Client: "curl"}); err == nil || !strings.Contains(err.Error(), "client") {
		t.Errorf("unknown client: %v", err)
	}
}

// TestRawProver checks the raw proof client's reading of replies: what it
// must accept, and what it must count as an error rather than a proof.
func TestRawProver(t *testing.T) {
	const i, n = 5, 11 // a 4-hash proof
	h := base64.StdEncoding.EncodeToString(make([]byte, 32))
	hashes := func(k int) string { return strings.TrimSuffix(strings.Repeat(`"`+h+`",`, k), ",") }
	reply := func(status int, body string) string {
		return fmt.Sprintf("HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s", status, len(body), body)
	}
	good := []string{
		reply(200, `{"index":5,"tree_size":11,"hashes":[`+hashes(4)+"]}\n"),
		reply(200, `{"hashes": [`+hashes(4)+`], "tree_size": 11, "index": 5}`), // another encoder's order
	}
	bad := []string{
		reply(200, `{"index":4,"tree_size":11,"hashes":[`+hashes(4)+"]}\n"),
		reply(200, `{"index":5,"tree_size":12,"hashes":[`+hashes(4)+"]}\n"),
		reply(200, `{"index":5,"tree_size":11,"hashes":[`+hashes(3)+"]}\n"),
		reply(200, `{"index":5,"tree_size":11,"hashes":[`+hashes(5)+"]}\n"),
		reply(200, `{"index":5,"tree_size":11,"hashes":["AAAA",`+hashes(3)+"]}\n"),
		reply(200, `{"index":5,"tree_size":11,"hashes":["!!!`+h[3:]+`",`+hashes(3)+"]}\n"),
		reply(200, `{"index":5,"tree_size":11,"hashes":[`+hashes(4)),
		reply(200, `{"index":5,"tree_size":11,"hashes":[`+h+`",`+hashes(3)+"]}\n"), // a quote missing
		reply(200, `{"hashes": [`+hashes(3)+`], "tree_size": 11, "index": 5}`),
		reply(500, `{"error":"boom"}`),
		reply(200, ``),
	}
	for _, r := range append(good, bad...) {
		u, _ := scripted(t, r)
		p := &rawProver{rawConn: rawConn{u: u}}
		err := p.prove(i, n)
		p.close()
		if isGood := slices.Contains(good, r); isGood != (err == nil) {
			t.Errorf("reply %q: %v (good: %v)", r, err, isGood)
		}
	}
}

// TestProofLen checks proofLen against x/mod's proofs for every entry of
// trees up to 130 entries.
func TestProofLen(t *testing.T) {
	zero := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) { return make([]tlog.Hash, len(ix)), nil })
	for n := int64(1); n <= 130; n++ {
		for i := range n {
			p, err := tlog.ProveRecord(n, i, zero)
			if err != nil {
				t.Fatal(err)
			}
			if got := proofLen(i, n); got != len(p) {
				t.Fatalf("proofLen(%d, %d) = %d, x/mod's proof has %d hashes", i, n, got, len(p))
			}
		}
	}
}

func TestConfigErrors(t *testing.T) {
	ok := AppendConfig{URL: "http://127.0.0.1:1", Writers: 1, Size: 16, Duration: time.Second}
	for _, c := range []struct {
		mut  func(*AppendConfig)
		want string
	}{
		{func(c *AppendConfig) { c.Writers = 0 }, "writers"},
		{func(c *AppendConfig) { c.Writers = MaxWriters + 1 }, "writers"},
		{func(c *AppendConfig) { c.Size = MinEntrySize - 1 }, "entry size"},
		{func(c *AppendConfig) { c.Size = MaxEntrySize + 1 }, "entry size"},
		{func(c *AppendConfig) { c.Duration = 0 }, "duration"},
		{func(c *AppendConfig) { c.Rate = -1 }, "rate"},
		{func(c *AppendConfig) { c.URL = "https://example.com" }, "URL"},
		{func(c *AppendConfig) { c.URL = "127.0.0.1:8080" }, "URL"},
		{func(c *AppendConfig) { c.Client = "curl" }, "client"},
	} {
		cfg := ok
		c.mut(&cfg)
		if _, err := Append(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %s", cfg, err, c.want)
		}
	}
	if _, err := Proof(context.Background(), ProofConfig{URL: "http://127.0.0.1:1", Readers: 0, Duration: time.Second}); err == nil {
		t.Error("Proof with no readers")
	}
}

// scripted is a loopback TCP server that answers each request on a
// connection with the next of replies, and counts connections.
func scripted(t *testing.T, replies ...string) (*url.URL, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := new(atomic.Int32)
	next := make(chan string, len(replies))
	for _, r := range replies {
		next <- r
	}
	close(next)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					r, ok := <-next
					if !ok {
						return
					}
					c.Write([]byte(r))
					if strings.Contains(r, "Connection: close") {
						return
					}
				}
			}()
		}
	}()
	u, _ := url.Parse("http://" + ln.Addr().String() + "/add")
	return u, conns
}

// TestRawPoster checks the raw HTTP/1.1 client on the replies it must read
// and on those it must refuse rather than misread.
func TestRawPoster(t *testing.T) {
	ok := func(body string) string {
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	u, conns := scripted(t, ok("7\n"), ok("8\n"),
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n9\n",
		ok("10\n"),
		"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\n\r\nbusy\n")
	p, err := dialRaw(u)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for want := int64(7); want <= 10; want++ {
		idx, status, err := p.post([]byte("entry"))
		if err != nil || status != 200 || idx != want {
			t.Fatalf("post: %d %d %v, want index %d", idx, status, err, want)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections: Connection: close should cause exactly one redial", n)
	}
	if _, status, err := p.post([]byte("entry")); status != 503 || err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("503: status %d, %v", status, err)
	}

	for _, bad := range []string{
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n7\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n7\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTQ/1.1 200 OK\r\nContent-Length: 2\r\n\r\n7\n",
		"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n7\n",
		ok("seven\n"),
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n7\n",
	} {
		u, _ := scripted(t, bad)
		p, err := dialRaw(u)
		if err != nil {
			t.Fatal(err)
		}
		if idx, status, err := p.post([]byte("entry")); err == nil {
			t.Errorf("reply %q read as index %d (status %d)", bad, idx, status)
		}
		p.close()
	}
}

func TestParseHistograms(t *testing.T) {
	text := `# HELP indelible_commit_latency_seconds Commit latency.
# TYPE indelible_commit_latency_seconds histogram
indelible_commit_latency_seconds_bucket{le="0.001"} 2
indelible_commit_latency_seconds_bucket{le="0.01"} 8
indelible_commit_latency_seconds_bucket{le="+Inf"} 10
indelible_commit_latency_seconds_sum 0.05
indelible_http_request_duration_seconds_bucket{route="/add",le="0.005"} 1
indelible_http_request_duration_seconds_bucket{route="/add",le="+Inf"} 4
indelible_http_request_duration_seconds_bucket{route="/checkpoint",le="+Inf"} 99
indelible_commit_latency_seconds_bucket{le="garbage"} 1
`
	hs := ParseHistograms(strings.NewReader(text), MetricAddDuration, MetricCommitLatency)
	c := hs[MetricCommitLatency]
	if len(c.LE) != 3 || c.Count() != 10 {
		t.Fatalf("commit histogram %+v", c)
	}
	if q := c.Quantile(0.5); q != "10ms" {
		t.Errorf("p50 %s, want 10ms", q)
	}
	if q := c.Quantile(0.1); q != "1ms" {
		t.Errorf("p10 %s, want 1ms", q)
	}
	if q := c.Quantile(0.99); q != "+Inf" {
		t.Errorf("p99 %s, want +Inf", q)
	}
	if a := hs[MetricAddDuration]; a.Count() != 4 {
		t.Fatalf("/add histogram %+v (the /checkpoint series must not count)", a)
	}
	d := c.Minus(Histogram{LE: c.LE, Counts: []float64{1, 2, 3}})
	if d.Count() != 7 || d.Counts[0] != 1 || c.Counts[0] != 2 {
		t.Errorf("Minus: %+v (and the original is now %+v)", d, c)
	}
	if d := c.Minus(Histogram{}); d.Count() != 10 {
		t.Errorf("Minus of an empty histogram: %+v", d)
	}
	if hs := ParseHistograms(strings.NewReader("go_goroutines 12\n"), MetricCommitLatency); hs != nil {
		t.Errorf("no buckets: %v", hs)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if Percentile(nil, 50) != 0 || Percentile(ds[:1], 99) != time.Millisecond {
		t.Error("percentiles of short lists")
	}
}

// TestSchedule checks the open loop's scheduler: rate*duration send times,
// evenly spaced from the start, then a closed channel.
func TestSchedule(t *testing.T) {
	start := time.Now()
	ch := make(chan time.Time, 1000)
	schedule(context.Background(), ch, start, start.Add(100*time.Millisecond), 1000)
	var got []time.Time
	for tm := range ch {
		got = append(got, tm)
	}
	if len(got) != 100 {
		t.Fatalf("%d send times, want 100", len(got))
	}
	for i, tm := range got {
		if want := start.Add(time.Duration(i) * time.Millisecond); !tm.Equal(want) {
			t.Fatalf("send time %d is %v after the start, want %v", i, tm.Sub(start), want.Sub(start))
		}
	}
	// A cancelled context stops it at once, even with nobody reading.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ch = make(chan time.Time)
	done := make(chan struct{})
	go func() { schedule(ctx, ch, time.Now(), time.Now().Add(time.Hour), 1000); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("schedule did not stop on a cancelled context")
	}
}
