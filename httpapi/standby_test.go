package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"indelible.dev/api"
	"indelible.dev/internal/nettest"
	"indelible.dev/internal/pgtest"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
	"indelible.dev/ledger/kv/pgkv"
)

// A standby serving reads (ClusterConfig.Hold, with a Log) answers the
// log's public reads itself, under Hold, and forwards every other request:
// writes, reads of event content (audited: the active node records them),
// routes it does not serve, and its own routes under another method. The
// forwarded ones are labelled "forwarded" in the metrics.
func TestClusterStandbyReads(t *testing.T) {
	key := tlogtest.NewKey(t, testOrigin)
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: key.Signer})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(context.Background(), []byte("entry")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var forwarded []string
	active := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		forwarded = append(forwarded, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Write([]byte("from active"))
	}))
	defer active.Close()
	var closing, unknown atomic.Bool
	var held atomic.Int64
	srv := New(Config{Log: l, Cluster: &ClusterConfig{
		Status: func() api.Cluster { return api.Cluster{Node: "s1", Role: "standby"} },
		Active: func() (string, bool) { return active.URL, !unknown.Load() },
		Hold: func() (func(), bool) {
			if closing.Load() {
				return nil, false
			}
			held.Add(1)
			return func() { held.Add(-1) }, true
		},
	}})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	do := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader("body"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, signed := l.Checkpoint()
	for _, p := range []string{"/checkpoint", "/tile/entries/000.p/1", "/tile/0/000.p/1",
		"/v1/proof/inclusion?index=0&size=1", "/v1/proof/consistency?from=1&to=1", "/v1/cluster", "/healthz", "/readyz", "/metrics"} {
		code, body := do(http.MethodGet, p)
		if code != 200 || body == "from active" {
			t.Fatalf("GET %s: %d %q, want a local 200", p, code, body)
		}
		if p == "/checkpoint" && body != string(signed) {
			t.Fatalf("GET /checkpoint: %q, want the log's %q", body, signed)
		}
	}
	if held.Load() != 0 {
		t.Fatalf("%d holds not released", held.Load())
	}
	mu.Lock()
	if len(forwarded) != 0 {
		t.Fatalf("local reads forwarded: %v", forwarded)
	}
	mu.Unlock()
	want := []string{"POST /checkpoint", "POST /add", "GET /v1/events", "GET /v1/events/0", "GET /v1/events/0/receipt",
		"GET /v1/tokens", "DELETE /v1/events/0", "POST /v1/tokens", "GET /v1/bundle", "PUT /tile/0/000"}
	for _, r := range want {
		method, path, _ := strings.Cut(r, " ")
		if code, body := do(method, path); code != 200 || body != "from active" {
			t.Fatalf("%s: %d %q, want forwarded", r, code, body)
		}
	}
	mu.Lock()
	if strings.Join(forwarded, ",") != strings.Join(want, ",") {
		t.Fatalf("forwarded %v, want %v", forwarded, want)
	}
	mu.Unlock()
	// No active node known: reads still answer here, writes get 503.
	unknown.Store(true)
	if code, body := do(http.MethodGet, "/checkpoint"); code != 200 || body != string(signed) {
		t.Fatalf("GET /checkpoint with no active node known: %d %q", code, body)
	}
	if code, body := do(http.MethodPost, "/add"); code != 503 || !strings.Contains(body, "no active node") {
		t.Fatalf("POST /add with no active node known: %d %q, want 503", code, body)
	}
	unknown.Store(false)
	closing.Store(true)
	if code, body := do(http.MethodGet, "/checkpoint"); code != 503 || !strings.Contains(body, "changing its role") {
		t.Fatalf("GET /checkpoint with the view closing: %d %q, want 503", code, body)
	}
	if code, _ := do(http.MethodGet, "/healthz"); code != 200 {
		t.Fatalf("GET /healthz with the view closing: %d", code)
	}
	_, metrics := do(http.MethodGet, "/metrics")
	for _, want := range []string{`route="forwarded"`, `route="/checkpoint"`} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics has no %s", want)
		}
	}
}

// TestClusterStandbyStoreDown: a standby's reads of its view's store fail
// (the view's PostgreSQL connections cut, as by a restart or a lost
// network): the log's reads that need the store answer 503 with
// Retry-After naming the store, never 500; the checkpoint (in memory)
// is still served; once the network heals, the reads succeed again.
func TestClusterStandbyStoreDown(t *testing.T) {
	dsn := pgtest.DSN(t)
	key := tlogtest.NewKey(t, testOrigin)
	ws, err := pgkv.Open(context.Background(), dsn, pgkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := ledger.Open("", ledger.Options{Signer: key.Signer, Store: ws, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	entries := make([]ledger.Entry, 600)
	for i := range entries {
		entries[i] = ledger.Entry{Data: fmt.Appendf(nil, "entry %d", i)}
	}
	if _, err := w.AppendEntries(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := nettest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	rs, err := pgkv.Open(context.Background(), u.String(), pgkv.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	view, err := ledger.OpenReader(rs, ledger.ReaderOptions{Verifier: key.Verifier, Refresh: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()
	srv := New(Config{Log: view, Logger: slog.New(slog.DiscardHandler), Cluster: &ClusterConfig{
		Status: func() api.Cluster { return api.Cluster{Node: "s1", Role: "standby"} },
		Active: func() (string, bool) { return "http://127.0.0.1:1", true },
		Hold:   func() (func(), bool) { return func() {}, true },
	}})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	get := func(path string) (int, http.Header, string) {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	tlogtest.Eventually(t, 10*time.Second, "the view serves 600 entries", func() (bool, string) {
		cp, _ := view.Checkpoint()
		return cp.N == 600, fmt.Sprint(cp.N)
	})
	// Reads of the store: full bundles and tiles (read from the store at
	// each request), a proof.
	paths := []string{"/tile/entries/000", "/tile/entries/001", "/tile/0/000", "/tile/0/001", "/v1/proof/inclusion?index=5&size=600"}
	for _, p := range paths {
		if code, _, body := get(p); code != 200 {
			t.Fatalf("GET %s with the store up: %d %q", p, code, body)
		}
	}
	proxy.Blackhole()
	codes := map[int]int{}
	for _, p := range paths[:4] {
		code, h, body := get(p)
		codes[code]++
		if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body, "store (PostgreSQL)") {
			t.Errorf("GET %s with the store cut off: %d %v %q, want 503 with Retry-After naming the store", p, code, h, body)
		}
	}
	if code, _, _ := get("/checkpoint"); code != 200 {
		t.Errorf("GET /checkpoint with the store cut off: %d, want 200 (from memory)", code)
	}
	proxy.Heal()
	healed := time.Now()
	tlogtest.Eventually(t, 20*time.Second, "reads succeed again", func() (bool, string) {
		for _, p := range paths {
			if code, _, body := get(p); code != 200 {
				if code != http.StatusServiceUnavailable {
					t.Errorf("GET %s while the view reconnects: %d %q", p, code, body)
				}
				return false, fmt.Sprintf("GET %s: %d %s", p, code, body)
			}
		}
		return true, ""
	})
	t.Logf("statuses with the store cut off: %v; reads succeed again %v after the heal", codes, time.Since(healed).Round(time.Millisecond))
}
