package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"indelible.dev/api"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

// The active node: its writes are acknowledged only while it holds its
// lease (the append still commits: the index is used, the reply withheld);
// reads are not gated; /v1/cluster says who it is.
func TestClusterWriteGate(t *testing.T) {
	key := tlogtest.NewKey(t, testOrigin)
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: key.Signer})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var holding atomic.Bool
	holding.Store(true)
	status := api.Cluster{Node: "n1", Role: "active", Epoch: 7, Active: api.ClusterNode{Node: "n1", URL: "http://n1"}, Size: 3}
	srv := New(Config{Log: l, RawAppend: true, Cluster: &ClusterConfig{
		Status:  func() api.Cluster { return status },
		Holding: holding.Load,
	}})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	post := func() (int, http.Header, string) {
		resp, err := http.Post(hs.URL+"/add", "application/octet-stream", strings.NewReader("entry"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, h, body := post(); code != 200 || body != "0\n" || h.Get("Content-Type") == "" {
		t.Fatalf("holding: %d %q %v", code, body, h)
	}
	holding.Store(false)
	code, h, body := post()
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(body, "no longer the active node") || strings.Contains(body, "1\n") {
		t.Fatalf("lease lost: %d %q %v, want 503 naming the lost lease", code, body, h)
	}
	// The write committed (index 1 is taken) but was not acknowledged.
	if cp, _ := l.Published(); cp.N < 1 {
		t.Fatal("nothing committed")
	}
	// Reads are not gated.
	resp, err := http.Get(hs.URL + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /checkpoint while not holding: %s", resp.Status)
	}
	holding.Store(true)
	if code, _, body := post(); code != 200 || body != "2\n" {
		t.Fatalf("holding again: %d %q", code, body)
	}
	// A refused write is refused as before (no acknowledgement to hold).
	resp, err = http.Post(hs.URL+"/add", "application/octet-stream", bytes.NewReader(make([]byte, 70000)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized entry: %s", resp.Status)
	}

	resp, err = http.Get(hs.URL + "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got api.Cluster
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || got != status {
		t.Fatalf("GET /v1/cluster = %+v, %v; want %+v", got, err, status)
	}
}

// A standby forwards what it does not serve to the active node, with the
// caller's method, path, query, headers and body, and the answer back; it
// never forwards a forwarded request; with no active node known it answers
// 503; /readyz follows Ready.
func TestClusterForward(t *testing.T) {
	var got atomic.Pointer[http.Request]
	var gotBody atomic.Pointer[[]byte]
	active := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(r)
		gotBody.Store(&b)
		w.Header().Set("X-From", "active")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("ok from active"))
	}))
	defer active.Close()
	var known atomic.Bool
	known.Store(true)
	var readyErr atomic.Pointer[error]
	srv := New(Config{Cluster: &ClusterConfig{
		Status: func() api.Cluster { return api.Cluster{Node: "s1", Role: "standby"} },
		Active: func() (string, bool) { return active.URL, known.Load() },
		Ready: func() error {
			if p := readyErr.Load(); p != nil {
				return *p
			}
			return nil
		},
	}})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	big := bytes.Repeat([]byte("x"), 3<<20) // over MaxRequestBody: the active node decides
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/events?wait=checkpoint", bytes.NewReader(big))
	req.Header.Set("Authorization", "Bearer secret-token")
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(b) != "ok from active" || resp.Header.Get("X-From") != "active" {
		t.Fatalf("forwarded: %s %q %v", resp.Status, b, resp.Header)
	}
	r := got.Load()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/events" || r.URL.RawQuery != "wait=checkpoint" ||
		r.Header.Get("Authorization") != "Bearer secret-token" || r.Header.Get("Content-Type") != "application/x-ndjson" ||
		r.Header.Get(forwardedHeader) != "s1" || !bytes.Equal(*gotBody.Load(), big) {
		t.Fatalf("the active node got %s %s %v (%d bytes)", r.Method, r.URL, r.Header, len(*gotBody.Load()))
	}

	// Served locally, not forwarded.
	for _, p := range []string{"/v1/cluster", "/healthz", "/readyz"} {
		got.Store(nil)
		resp, err := http.Get(hs.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || got.Load() != nil {
			t.Fatalf("GET %s: %s, forwarded %v", p, resp.Status, got.Load() != nil)
		}
	}
	// Reads of the log go to the active node too.
	resp, err = http.Get(hs.URL + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := got.Load(); r == nil || r.URL.Path != "/checkpoint" {
		t.Fatal("GET /checkpoint not forwarded")
	}

	// Loop guard.
	req, _ = http.NewRequest(http.MethodPost, hs.URL+"/add", strings.NewReader("e"))
	req.Header.Set(forwardedHeader, "s2")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "no active node") {
		t.Fatalf("forwarded twice: %s %q", resp.Status, b)
	}
	known.Store(false)
	resp, err = http.Post(hs.URL+"/add", "application/octet-stream", strings.NewReader("e"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("no active node: %s", resp.Status)
	}
	e := errors.New("the active node does not answer")
	readyErr.Store(&e)
	resp, err = http.Get(hs.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("/readyz with the active node unreachable: %s", resp.Status)
	}
	// The active node down: 502, retryable.
	known.Store(true)
	active.Close()
	resp, err = http.Post(hs.URL+"/add", "application/octet-stream", strings.NewReader("e"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("active node down: %s", resp.Status)
	}
}

// TestClusterForwardAbandoned: a request forwarded to an active node that
// does not answer (a listener nobody accepts from: the kernel completes
// the connection, as for a SIGSTOPped process) is abandoned as soon as
// Watch says the active node changed: 503 with Retry-After and Watch's
// words, and the upstream request is cancelled (a handler that blocks
// sees its context end). One that cannot connect answers 502 at once,
// naming the failure.
func TestClusterForwardAbandoned(t *testing.T) {
	frozen, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer frozen.Close()
	cancelled, done := make(chan struct{}), make(chan struct{})
	blocking := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the server sees the connection close
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-done:
		}
	}))
	defer blocking.Close()
	defer close(done)
	var target atomic.Value
	var changed atomic.Pointer[error]
	srv := New(Config{Cluster: &ClusterConfig{
		Status: func() api.Cluster { return api.Cluster{Node: "s1", Role: "standby"} },
		Active: func() (string, bool) { return target.Load().(string), true },
		Watch: func(string) error {
			if p := changed.Load(); p != nil {
				return *p
			}
			return nil
		},
	}})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := &http.Client{Timeout: 30 * time.Second}
	post := func() (int, http.Header, string, time.Duration) {
		t.Helper()
		t0 := time.Now()
		resp, err := c.Post(hs.URL+"/v1/events?wait=checkpoint", "application/x-ndjson", strings.NewReader(`{"action":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b), time.Since(t0)
	}
	for _, tc := range []struct {
		name string
		url  string
	}{{"frozen", "http://" + frozen.Addr().String()}, {"blocking", blocking.URL}} {
		changed.Store(nil)
		target.Store(tc.url)
		cause := errors.New("the active node changed while the request was forwarded: b holds the lease now: retry")
		time.AfterFunc(300*time.Millisecond, func() { changed.Store(&cause) })
		code, h, body, took := post()
		if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body, "b holds the lease now") {
			t.Fatalf("%s: %d %v %q, want 503 with Retry-After naming the cause", tc.name, code, h, body)
		}
		if took > 5*time.Second {
			t.Fatalf("%s: answered after %v", tc.name, took)
		}
		t.Logf("%s: %d after %v: %s", tc.name, code, took.Round(time.Millisecond), strings.TrimSpace(body))
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}
	// Nothing listens: 502 at once, naming the failure.
	gone := frozen.Addr().String()
	frozen.Close()
	changed.Store(nil)
	target.Store("http://" + gone)
	code, h, body, took := post()
	if code != http.StatusBadGateway || h.Get("Retry-After") == "" || !strings.Contains(body, "connection refused") || !strings.Contains(body, gone) {
		t.Fatalf("nothing listening: %d %v %q, want 502 naming the refused connection", code, h, body)
	}
	if took > 2*time.Second {
		t.Fatalf("nothing listening: answered after %v", took)
	}
}
