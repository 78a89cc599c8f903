package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"indelible.dev/api"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
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
