package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

// FuzzRequests sends arbitrary request targets and bodies to the handler of a
// small real log. Nothing may produce a 5xx, a tile is served only at its
// canonical path, every error is a JSON body, and the tree only changes
// through a successful POST /add.
func FuzzRequests(f *testing.F) {
	for _, seed := range []string{
		"/tile/0/000.p/3", "/tile/entries/000.p/3", "/tile/0/x001/000", "/tile/../checkpoint",
		"/tile/%2e%2e/checkpoint", "/tile/0/000.p/0", "/tile/63/000", "/tile/entries/000.p/256",
		"/v1/proof/inclusion?index=0&size=3", "/v1/proof/inclusion?hash=%zz&size=1",
		"/v1/proof/consistency?from=1&to=3", "/v1/proof/consistency?from=3&to=1",
		"/checkpoint", "/add", "/add?wait=checkpoint", "/metrics?x=1", "//tile/0/000",
	} {
		f.Add("GET", seed, []byte(nil))
	}
	f.Add("POST", "/add", []byte("entry"))
	f.Add("POST", "/add", []byte{})
	f.Add("POST", "/add?wait=x", []byte("entry"))

	tl := newTestLog(f, ledger.Options{})
	tl.addN(3)
	h := tl.srv.Handler()
	f.Fuzz(func(t *testing.T, method, target string, body []byte) {
		if method != "GET" && method != "POST" {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(target, "/") || len(body) > 1<<17 {
			return
		}
		req := httptest.NewRequest(method, "http://test/", bytes.NewReader(body))
		req.URL, req.RequestURI = u, target
		before, _ := tl.l.Checkpoint()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		after, _ := tl.l.Checkpoint()
		if rec.Code >= 500 {
			t.Fatalf("%s %q: status %d: %s", method, target, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" || !bytes.HasPrefix(rec.Body.Bytes(), []byte(`{"error":"`)) {
				t.Fatalf("%s %q: status %d with %q %q", method, target, rec.Code, ct, rec.Body)
			}
		}
		if after.N != before.N && !(method == "POST" && u.Path == "/add" && rec.Code == http.StatusOK) {
			t.Fatalf("%s %q (status %d) changed the tree from %d to %d", method, target, rec.Code, before.N, after.N)
		}
		if rest, ok := strings.CutPrefix(u.EscapedPath(), "/tile/"); ok && rec.Code == http.StatusOK && method == "GET" {
			tile, err := itlog.ParseTilePath("tile/" + rest)
			if err != nil || itlog.TilePath(tile) != "tile/"+rest {
				t.Fatalf("served non-canonical tile path %q", target)
			}
		}
	})
}
