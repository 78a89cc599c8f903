package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/audited"
	"indelible.dev/auth"
	"indelible.dev/client"
	"indelible.dev/eventstore"
	"indelible.dev/httpapi"
	"indelible.dev/ledger"
	"indelible.dev/receipt"
)

const testOrigin = "example.com/indelible-client-test"

// testServer is a real ledger on a temporary pebble store, a real events
// layer and token store, served by the real HTTP API on a loopback port.
type testServer struct {
	url   string
	token string // scopes append and read
	vkey  string
	l     *ledger.Log
	layer *eventstore.Layer
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return newTestServerKey(t, skey, vkey)
}

// newTestServerKey is newTestServer with the log's key given: two such
// servers under one key are two histories of one log (a fork).
func newTestServerKey(t testing.TB, skey, vkey string) *testServer {
	t.Helper()
	signer, _ := note.NewSigner(skey)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	master := make([]byte, 32)
	rand.Read(master)
	kr, err := eventstore.NewKeyring(master)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := eventstore.Open(eventstore.Config{Log: l, Keyring: kr, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := audited.OpenTokens(l, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := tokens.Create("app", []auth.Scope{auth.ScopeAppend, auth.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.New(httpapi.Config{Log: l, Events: layer, Tokens: tokens, Logger: logger})
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config = srv.HTTPServer("")
	hs.Start()
	t.Cleanup(func() {
		srv.SetShuttingDown()
		hs.Close()
		layer.Close()
		l.Close()
	})
	return &testServer{url: hs.URL, token: secret, vkey: vkey, l: l, layer: layer}
}

// chaosProxy forwards requests to target and, at random, answers 503 with
// Retry-After: 1 without forwarding (pushback; the server stores nothing),
// or forwards the request and then drops the server's reply, closing the
// connection (the events are stored; the client does not know).
type chaosProxy struct {
	target            string
	p503, pDrop       float64
	n503, nDrop, nFwd atomic.Int64
	nPost             atomic.Int64
}

func (p *chaosProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := mrand.Float64()
	if r.Method == http.MethodPost {
		// The first POST is answered 503 and the second one's reply is
		// dropped, whatever the dice say: a run always has both kinds of
		// chaos (with 40 requests and p503 0.05, one run in eight had no
		// 503 at all).
		switch p.nPost.Add(1) {
		case 1:
			x = 0
		case 2:
			x = p.p503
		}
	}
	if x < p.p503 {
		p.n503.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if x < p.p503+p.pDrop && r.Method == http.MethodPost {
		p.nDrop.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	p.nFwd.Add(1)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(b)
}

// TestChaosExactlyOnce: 10,000 events logged by 8 goroutines through a
// proxy that answers 503 + Retry-After and drops replies after the server
// stored the batch arrive exactly once, and Close returns only after all
// are durable.
func TestChaosExactlyOnce(t *testing.T) {
	ts := newTestServer(t)
	proxy := &chaosProxy{target: ts.url, p503: 0.05, pDrop: 0.25}
	ps := httptest.NewServer(proxy)
	defer ps.Close()
	c, err := client.New(ps.URL, ts.token, client.WithOptions(client.Options{Backoff: 5 * time.Millisecond}),
		client.WithBatch(250, 5*time.Millisecond), client.WithQueueSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, per = 8, 1250
	run := fmt.Sprintf("run-%d", mrand.Int64())
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range per {
				ev := client.Event{Action: "doc.read", Source: run,
					Actor:    &client.Actor{ID: fmt.Sprintf("user-%d", g)},
					Resource: &client.Resource{ID: fmt.Sprintf("doc-%d", i)}}
				if err := c.Log(context.Background(), ev); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Close returned: every event is in the log already, read straight
	// from the layer (no wait).
	_, cp := ts.l.Checkpoint()
	_ = cp
	seen := map[string]int{}
	var ours int
	for i := int64(0); ; i++ {
		r, err := ts.layer.Get(i)
		if err != nil {
			break
		}
		if r.Event.Source != run {
			continue
		}
		ours++
		key := r.Event.Actor.ID + "/" + r.Event.Resource.ID
		seen[key]++
		if seen[key] > 1 {
			t.Errorf("event %s stored twice (index %d)", key, i)
		}
		if len(r.Event.ID) != 32 {
			t.Errorf("event %d: id %q not filled in", i, r.Event.ID)
		}
	}
	if ours != goroutines*per || len(seen) != goroutines*per {
		t.Fatalf("%d events stored, %d distinct, want %d", ours, len(seen), goroutines*per)
	}
	if c.Stored() != goroutines*per || c.Dropped() != 0 {
		t.Errorf("Stored %d Dropped %d", c.Stored(), c.Dropped())
	}
	t.Logf("proxy: %d forwarded, %d answered 503, %d replies dropped", proxy.nFwd.Load(), proxy.n503.Load(), proxy.nDrop.Load())
	if proxy.n503.Load() == 0 || proxy.nDrop.Load() == 0 {
		t.Fatal("the proxy caused no chaos: the test proves nothing")
	}
}

// TestLogSyncReceipt: LogSync returns the event's index once durable, and
// Receipt returns a receipt the public verifier accepts for that event.
func TestLogSyncReceipt(t *testing.T) {
	ts := newTestServer(t)
	c, err := client.New(ts.url, ts.token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lg, err := c.LogSync(ctx, client.Event{ID: "approval-42", Action: "payment.approved", Actor: &client.Actor{ID: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ts.layer.Get(lg.Index)
	if err != nil || r.Event.ID != "approval-42" || lg.ID != "approval-42" {
		t.Fatalf("index %d: %+v %v", lg.Index, r.Event, err)
	}
	rc, err := lg.Receipt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := receipt.NewPolicy(ts.vkey, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := receipt.Verify(rc, pol)
	if err != nil {
		t.Fatal(err)
	}
	if v.Index != lg.Index || v.Event.Action != "payment.approved" {
		t.Fatalf("receipt for %d %q", v.Index, v.Event.Action)
	}
	// The same id again from the same token: the original index.
	lg2, err := c.LogSync(ctx, client.Event{ID: "approval-42", Action: "payment.approved", Actor: &client.Actor{ID: "alice"}})
	if err != nil || lg2.Index != lg.Index {
		t.Fatalf("repeated id: %d %v, want %d", lg2.Index, err, lg.Index)
	}
}

// TestRefused: an event the server refuses is reported with its position
// and the server's message, not retried, and the rest of its batch is
// stored.
func TestRefused(t *testing.T) {
	ts := newTestServer(t)
	var reqs atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		u, _ := url.Parse(ts.url)
		r.URL.Scheme, r.URL.Host, r.Host, r.RequestURI = u.Scheme, u.Host, u.Host, ""
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	var handled []error
	var mu sync.Mutex
	c, err := client.New(proxy.URL, ts.token, client.WithBatch(10, time.Second),
		client.WithErrorHandler(func(err error) { mu.Lock(); handled = append(handled, err); mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 10 {
		ev := client.Event{Action: "doc.read", Resource: &client.Resource{ID: fmt.Sprint(i)}}
		if i == 3 {
			ev.Action = "" // refused: an event needs an action
		}
		if err := c.Log(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	err = c.Flush(ctx)
	var ue *client.UndeliveredError
	if !errors.As(err, &ue) || len(ue.Refused) != 1 || len(ue.Events) != 0 {
		t.Fatalf("Flush: %v", err)
	}
	re := ue.Refused[0]
	if re.Seq != 3 || re.Status != http.StatusBadRequest && re.Status != http.StatusUnprocessableEntity || !strings.Contains(re.Message, "action") {
		t.Fatalf("refused: %+v", re)
	}
	if reqs.Load() != 2 || c.Stored() != 9 {
		t.Fatalf("%d requests, %d stored; want 2 and 9", reqs.Load(), c.Stored())
	}
	var rerr *client.RefusedError
	if len(handled) != 1 || !errors.As(handled[0], &rerr) || rerr.Seq != 3 {
		t.Fatalf("error handler got %v", handled)
	}
	// LogSync gets the refusal itself.
	_, err = c.LogSync(ctx, client.Event{})
	if !errors.As(err, &rerr) || !strings.Contains(rerr.Error(), "action") {
		t.Fatalf("LogSync: %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close after Flush reported: %v", err)
	}
	if err := c.Log(ctx, client.Event{Action: "x.y"}); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Log after Close: %v", err)
	}
}
