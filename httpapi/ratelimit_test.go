package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/ledger"
)

// TestRateLimit drives a real server with a per-client limit: requests over
// the bucket get 429 with Retry-After and a JSON error, append nothing, and
// health endpoints stay exempt.
func TestRateLimit(t *testing.T) {
	skey, _, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := New(Config{Log: l, RawAppend: true, Logger: quiet, RateLimit: 0.001, RateBurst: 3})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	var ok, limited int
	for i := 0; i < 10; i++ {
		resp, err := http.Post(hs.URL+"/add", "application/octet-stream", bytes.NewReader([]byte{'a', byte(i)}))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			var e errorBody
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Errorf("429 body %q is not a JSON error", body)
			}
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	if ok != 3 || limited != 7 {
		t.Fatalf("%d accepted and %d limited, want 3 and 7", ok, limited)
	}
	if cp, _ := l.Checkpoint(); cp.N != 3 {
		t.Fatalf("tree size %d after 3 accepted appends", cp.N)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(hs.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d while rate limited", p, resp.StatusCode)
		}
	}
}

func TestRateLimiterEvicts(t *testing.T) {
	r := newRateLimiter(1, 1)
	now := time.Now()
	for i := 0; i < maxRateClients+10; i++ {
		r.allow(string(rune(i))+"x", now)
	}
	if len(r.clients) > maxRateClients {
		t.Fatalf("%d clients tracked, bound %d", len(r.clients), maxRateClients)
	}
}
