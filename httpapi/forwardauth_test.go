package httpapi

import (
	"crypto/rand"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"indelible.dev/api"
)

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (all of 127.0.0.0/8 is loopback on Linux).
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

func getStatus(t *testing.T, c *http.Client, url string, header http.Header) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestForwardedRateLimit: the active node's --rate-limit counts a request
// forwarded by a standby against the caller, not the standby: two callers
// behind one standby each get their own bucket. A caller sending the
// header itself (directly, or through the standby, which replaces it)
// gains nothing: without a valid MAC the active node counts the
// connection's address.
func TestForwardedRateLimit(t *testing.T) {
	master := make([]byte, 32)
	rand.Read(master)
	key, err := ForwardAuthKey(master)
	if err != nil {
		t.Fatal(err)
	}
	active := New(Config{RateLimit: 0.001, RateBurst: 1, Cluster: &ClusterConfig{
		Status:     func() api.Cluster { return api.Cluster{Node: "a", Role: "active"} },
		Holding:    func() bool { return true },
		ForwardKey: key,
	}})
	ahs := httptest.NewServer(active.Handler())
	defer ahs.Close()
	standby := New(Config{Cluster: &ClusterConfig{
		Status:     func() api.Cluster { return api.Cluster{Node: "b", Role: "standby"} },
		Active:     func() (string, bool) { return ahs.URL, true },
		ForwardKey: key,
	}})
	shs := httptest.NewServer(standby.Handler())
	defer shs.Close()

	// A path no route of the standby serves: forwarded; the active node
	// answers 404 once per caller, then 429.
	const path = "/forwarded-path"
	a, b := clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.3")
	if code := getStatus(t, a, shs.URL+path, nil); code != http.StatusNotFound {
		t.Fatalf("caller A's first request through the standby: %d", code)
	}
	if code := getStatus(t, a, shs.URL+path, nil); code != http.StatusTooManyRequests {
		t.Fatalf("caller A's second request through the standby: %d, want 429", code)
	}
	if code := getStatus(t, b, shs.URL+path, nil); code != http.StatusNotFound {
		t.Fatalf("caller B's first request through the standby: %d, want 404 (B has its own bucket)", code)
	}
	// A forged header through the standby: replaced by the standby's own.
	forged := http.Header{forwardAuthHeader: {forwardAuthValue(make([]byte, 32), "b", "127.0.0.9", time.Now())}, "X-Forwarded-For": {"127.0.0.9"}}
	if code := getStatus(t, a, shs.URL+path, forged); code != http.StatusTooManyRequests {
		t.Fatalf("caller A with a forged header through the standby: %d, want 429", code)
	}
	// Directly to the active node: a header with a bad MAC, or a good one
	// for another node name, is ignored.
	c := clientFrom(t, "127.0.0.4")
	if code := getStatus(t, c, ahs.URL+path, nil); code != http.StatusNotFound {
		t.Fatalf("caller C's first request: %d", code)
	}
	forged = http.Header{forwardAuthHeader: {forwardAuthValue(make([]byte, 32), "b", "127.0.0.10", time.Now())}, forwardedHeader: {"b"}}
	if code := getStatus(t, c, ahs.URL+path, forged); code != http.StatusTooManyRequests {
		t.Fatalf("caller C with a forged MAC: %d, want 429", code)
	}
	forged = http.Header{forwardAuthHeader: {forwardAuthValue(key, "b", "127.0.0.11", time.Now())}, forwardedHeader: {"x"}}
	if code := getStatus(t, c, ahs.URL+path, forged); code != http.StatusTooManyRequests {
		t.Fatalf("caller C with a MAC for another node: %d, want 429", code)
	}
}

func TestVerifyForwardAuth(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	now := time.Unix(1_800_000_000, 0)
	v := forwardAuthValue(key, "b", "2001:db8::1", now)
	if a, ok := verifyForwardAuth(key, "b", v, now.Add(30*time.Second)); !ok || a != netip.MustParseAddr("2001:db8::1") {
		t.Fatalf("a valid header: %v %v", a, ok)
	}
	f := strings.Split(v, " ")
	for name, c := range map[string]struct {
		node, value string
		at          time.Time
	}{
		"too old":      {"b", v, now.Add(forwardAuthSkew + time.Second)},
		"too new":      {"b", v, now.Add(-forwardAuthSkew - time.Second)},
		"another node": {"c", v, now},
		"no node":      {"", v, now},
		"address":      {"b", strings.Join([]string{f[0], "2001:db8::2", f[2], f[3]}, " "), now},
		"time":         {"b", strings.Join([]string{f[0], f[1], "1800000001", f[3]}, " "), now},
		"version":      {"b", strings.Join([]string{"v2", f[1], f[2], f[3]}, " "), now},
		"mac":          {"b", strings.Join([]string{f[0], f[1], f[2], f[3][1:]}, " "), now},
		"extra field":  {"b", v + " x", now},
	} {
		if a, ok := verifyForwardAuth(key, c.node, c.value, c.at); ok {
			t.Errorf("%s: trusted %v", name, a)
		}
	}
	other := make([]byte, 32)
	rand.Read(other)
	if _, ok := verifyForwardAuth(other, "b", v, now); ok {
		t.Error("trusted under another key")
	}
}

// FuzzVerifyForwardAuth: the header is untrusted input: no value panics,
// and none is trusted unless it is exactly what the key's holder made.
func FuzzVerifyForwardAuth(f *testing.F) {
	key := make([]byte, 32)
	now := time.Unix(1_800_000_000, 0)
	f.Add("b", forwardAuthValue(key, "b", "10.0.0.1", now))
	f.Add("b", "v1 10.0.0.1 1800000000 AAAA")
	f.Add("", "v1  0 ")
	f.Fuzz(func(t *testing.T, node, value string) {
		a, ok := verifyForwardAuth(key, node, value, now)
		if !ok {
			return
		}
		f := strings.Split(value, " ")
		want := "v1 " + a.String() + " " + f[2] + " " + base64.RawURLEncoding.EncodeToString(forwardMAC(key, node, a.String(), f[2]))
		if value != want {
			t.Fatalf("trusted %q for node %q: %v (the header made for it: %q)", value, node, a, want)
		}
	})
}
