package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

// TestRateLimit drives a real server with a per-client limit: requests over
// the bucket get 429 with Retry-After and a JSON error, append nothing, and
// health endpoints stay exempt.
func TestRateLimit(t *testing.T) {
	key := tlogtest.NewKey(t, testOrigin)
	signer := key.Signer
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

// TestRateLimiterIPv6Prefix: every address of one IPv6 /64 shares one
// bucket; another /64 and IPv4 clients have their own.
func TestRateLimiterIPv6Prefix(t *testing.T) {
	r := newRateLimiter(1, 1)
	now := time.Now()
	if !r.allow("2001:db8:1:2::1", now) {
		t.Fatal("first request refused")
	}
	for _, host := range []string{"2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::1%eth0"} {
		if r.allow(host, now) {
			t.Errorf("%s: a second address in the same /64 got a fresh bucket", host)
		}
	}
	for _, host := range []string{"2001:db8:1:3::1", "192.0.2.1", "::ffff:192.0.2.2"} {
		if !r.allow(host, now) {
			t.Errorf("%s: refused on another client's bucket", host)
		}
	}
	if r.allow("192.0.2.2", now) {
		t.Error("an IPv4-mapped address and its IPv4 form got two buckets")
	}
}

// TestRateLimiterEvictsLeastRecent: at the bound, the least recently seen
// client is forgotten, not every client: a busy client keeps its empty
// bucket while idle ones come and go.
func TestRateLimiterEvictsLeastRecent(t *testing.T) {
	r := newRateLimiter(0.001, 1)
	now := time.Now()
	const busy = "198.51.100.7"
	if !r.allow(busy, now) {
		t.Fatal("first request refused")
	}
	for i := 0; i < 3*maxRateClients; i++ {
		r.allow(fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), now)
		if i%1000 == 0 && r.allow(busy, now) {
			t.Fatalf("after %d other clients the busy client has a fresh bucket", i)
		}
	}
	if len(r.clients) > maxRateClients || r.lru.Len() != len(r.clients) {
		t.Fatalf("%d clients tracked (%d in the list), bound %d", len(r.clients), r.lru.Len(), maxRateClients)
	}
}
