package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// privateRoutes returns the log's read routes for the published tree of
// te, which must hold at least 2 entries.
func privateRoutes(t *testing.T, te *testEvents) []string {
	t.Helper()
	var n int64
	tlogtest.Eventually(t, 10*time.Second, "a published checkpoint of 2 entries", func() (bool, string) {
		cp, _ := te.l.Published()
		n = cp.N
		return n >= 2, fmt.Sprintf("size %d", n)
	})
	if n >= itlog.TileWidth {
		t.Fatalf("tree size %d: the test reads partial tiles", n)
	}
	return []string{
		"/checkpoint",
		"/" + itlog.TilePath(tlog.Tile{H: itlog.TileHeight, L: 0, N: 0, W: int(n)}),
		"/" + itlog.TilePath(tlog.Tile{H: itlog.TileHeight, L: itlog.EntriesLevel, N: 0, W: int(n)}),
		fmt.Sprintf("/v1/proof/inclusion?index=0&size=%d", n),
		fmt.Sprintf("/v1/proof/consistency?from=1&to=%d", n),
		"/metrics",
	}
}

// TestPrivateLogAuth: with PrivateLog, every read route of the log (the
// checkpoint, hash tiles, entry bundles, both proofs) and /metrics answer
// 401 without a token or with a revoked one, 403 to a token without the read
// scope, and 200 to read and admin tokens, never with a "public"
// Cache-Control; the health checks, the console page and the verifier keys
// stay open. The same routes of a public log answer everyone.
func TestPrivateLogAuth(t *testing.T) {
	te := newTestEvents(t, func(c *Config) {
		c.PrivateLog = true
		c.Console = &ConsoleConfig{LogVKey: "example.com/indelible-test+00000000+AA"}
	})
	te.append("application/json", `[{"action":"a"},{"action":"b"}]`)
	for _, path := range privateRoutes(t, te) {
		for _, c := range []struct {
			token string
			want  int
		}{{"", 401}, {"revoked", 401}, {"not-a-token", 401}, {"append", 403}, {"read", 200}, {"admin", 200}} {
			status, hdr, body := te.req(http.MethodGet, path, c.token, "", nil)
			if status != c.want {
				t.Errorf("private GET %s as %q: %d %s, want %d", path, c.token, status, body, c.want)
				continue
			}
			if status == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("private GET %s as %q: 401 without a Bearer challenge", path, c.token)
			}
			if cc := hdr.Get("Cache-Control"); strings.Contains(cc, "public") {
				t.Errorf("private GET %s as %q: Cache-Control %q lets shared caches keep it", path, c.token, cc)
			}
		}
	}
	// A tile stays cacheable, privately.
	_, hdr, _ := te.req(http.MethodGet, privateRoutes(t, te)[1], "read", "", nil)
	if cc := hdr.Get("Cache-Control"); !strings.HasPrefix(cc, "private") {
		t.Errorf("private tile Cache-Control %q, want private", cc)
	}
	for _, path := range []string{"/healthz", "/readyz", "/", "/v1/keys"} {
		if status, _, body := te.req(http.MethodGet, path, "", "", nil); status != 200 {
			t.Errorf("GET %s without a token on a private log: %d %s, want 200", path, status, body)
		}
	}

	pub := newTestEvents(t)
	pub.append("application/json", `[{"action":"a"},{"action":"b"}]`)
	for _, path := range privateRoutes(t, pub) {
		if status, _, body := pub.req(http.MethodGet, path, "", "", nil); status != 200 {
			t.Errorf("public GET %s without a token: %d %s, want 200", path, status, body)
		}
	}
	if _, hdr, _ := pub.req(http.MethodGet, privateRoutes(t, pub)[1], "", "", nil); !strings.HasPrefix(hdr.Get("Cache-Control"), "public") {
		t.Errorf("public tile Cache-Control %q, want public", hdr.Get("Cache-Control"))
	}
}

// TestPrivateLogWithoutTokens: a private log given no token store fails
// closed: its read routes answer 401 to everyone.
func TestPrivateLogWithoutTokens(t *testing.T) {
	te := newTestEvents(t)
	te.append("application/json", `[{"action":"a"},{"action":"b"}]`)
	routes := privateRoutes(t, te)
	srv := New(Config{Log: te.l, PrivateLog: true})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for _, path := range routes {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+te.tok["admin"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("GET %s on a private log without a token store: %d, want 401", path, resp.StatusCode)
		}
	}
}
