package main

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"indelible.dev/api"
	"indelible.dev/internal/pgtest"
)

// httpFrom is an HTTP client whose connections come from the loopback
// address ip (all of 127.0.0.0/8 is loopback on Linux).
func httpFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// TestClusterForwardedRateLimit: two events-mode nodes with --rate-limit;
// two callers at different addresses each send one request through the
// standby: the active node counts each against its caller (the standby
// vouches for the address, under a key derived from the shared master key),
// so both pass. Counted against the standby's address, as before, the
// second would get 429.
func TestClusterForwardedRateLimit(t *testing.T) {
	store := pgtest.DSN(t)
	keyFile, _ := newLogKey(t, "example.com/cluster-ratelimit")
	master := filepath.Join(t.TempDir(), "master.key")
	mk := make([]byte, 32)
	rand.Read(mk)
	if err := os.WriteFile(master, []byte(hex.EncodeToString(mk)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// 0.5 requests a second, bursts of 1: one request per caller, then
	// one every 2 s.
	args := []string{"--mode", "events", "--master-key", master, "--rate-limit", "0.5"}
	poll := httpFrom("127.0.0.6")
	a := startClusterNode(t, "a", store, keyFile, append([]string{"--init"}, args...)...)
	b := startClusterNode(t, "b", store, keyFile, args...)
	// The polls are limited too: keep each node's last answer.
	var sa, sb api.Cluster
	for deadline := time.Now().Add(30 * time.Second); sa.Role != "active" || sb.Role != "standby" || sb.Active.Node != "a"; time.Sleep(200 * time.Millisecond) {
		if s, err := a.status(poll); err == nil {
			sa = s
		}
		if s, err := b.status(poll); err == nil {
			sb = s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pair within 30s: a %+v, b %+v", sa, sb)
		}
	}
	get := func(c *http.Client) int {
		resp, err := c.Get(b.url + "/not-a-route")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ca, cb := httpFrom("127.0.0.2"), httpFrom("127.0.0.3")
	if code := get(ca); code != http.StatusNotFound {
		t.Fatalf("caller A through the standby: %d, want the active node's 404", code)
	}
	if code := get(cb); code != http.StatusNotFound {
		t.Fatalf("caller B through the standby right after A: %d, want the active node's 404 (429: counted as the standby)", code)
	}
	if code := get(ca); code != http.StatusTooManyRequests {
		t.Fatalf("caller A again: %d, want 429", code)
	}
}
