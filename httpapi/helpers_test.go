package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

const testOrigin = "example.com/indelible-test"

// testLog is a real ledger in a temporary directory served over real HTTP on
// a loopback port.
type testLog struct {
	t        testing.TB
	l        *ledger.Log
	srv      *Server
	hs       *httptest.Server
	url      string
	verifier note.Verifier
	entries  [][]byte // appended through HTTP, by index
}

func newTestLog(t testing.TB, opts ledger.Options) *testLog {
	t.Helper()
	key := tlogtest.NewKey(t, testOrigin)
	signer, verifier := key.Signer, key.Verifier
	metrics := NewMetrics()
	opts.Signer = signer
	opts.OnCommit = metrics.ObserveCommit
	logger, _, secrets := checkedLogger(t)
	secrets.AddNoteKey("the log's signer key", key.SKey)
	opts.Logger = logger
	l, err := ledger.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{Log: l, RawAppend: true, Metrics: metrics, Logger: opts.Logger})
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config = srv.HTTPServer("")
	hs.Start() // httptest listens on 127.0.0.1:0
	tl := &testLog{t: t, l: l, srv: srv, hs: hs, url: hs.URL, verifier: verifier}
	t.Cleanup(func() {
		hs.Close()
		l.Close()
	})
	return tl
}

// add appends entry over HTTP and checks the reply is the next index.
func (tl *testLog) add(entry []byte) int64 {
	tl.t.Helper()
	resp, err := http.Post(tl.url+"/add", "application/octet-stream", bytes.NewReader(entry))
	if err != nil {
		tl.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tl.t.Fatalf("POST /add: %s: %s", resp.Status, body)
	}
	idx, err := strconv.ParseInt(strings.TrimSuffix(string(body), "\n"), 10, 64)
	if err != nil || !strings.HasSuffix(string(body), "\n") {
		tl.t.Fatalf("POST /add reply %q: want a decimal index and a newline", body)
	}
	if idx != int64(len(tl.entries)) {
		tl.t.Fatalf("POST /add: index %d, want %d", idx, len(tl.entries))
	}
	tl.entries = append(tl.entries, bytes.Clone(entry))
	return idx
}

// addN appends n entries "entry <index>".
func (tl *testLog) addN(n int) {
	tl.t.Helper()
	for range n {
		tl.add(fmt.Appendf(nil, "entry %d", len(tl.entries)))
	}
}

// get fetches path and returns status, headers and body.
func (tl *testLog) get(path string, hdr ...string) (int, http.Header, []byte) {
	tl.t.Helper()
	return tl.do(http.MethodGet, path, nil, hdr...)
}

func (tl *testLog) do(method, path string, body io.Reader, hdr ...string) (int, http.Header, []byte) {
	tl.t.Helper()
	req, err := http.NewRequest(method, tl.url+path, body)
	if err != nil {
		tl.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// A transport of its own, so Accept-Encoding is exactly what the test says.
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		tl.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tl.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// checkpoint fetches and verifies /checkpoint.
func (tl *testLog) checkpoint() (itlog.Checkpoint, []byte) {
	tl.t.Helper()
	status, _, body := tl.get("/checkpoint")
	if status != http.StatusOK {
		tl.t.Fatalf("GET /checkpoint: %d %s", status, body)
	}
	cp, _, err := itlog.OpenCheckpoint(body, tl.verifier)
	if err != nil {
		tl.t.Fatalf("checkpoint does not verify: %v\n%s", err, body)
	}
	return cp, body
}

// proofJSON fetches a /v1/proof URL and decodes its hashes.
func (tl *testLog) proofJSON(path string, into any) {
	tl.t.Helper()
	status, hdr, body := tl.get(path)
	if status != http.StatusOK {
		tl.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tl.t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		tl.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

func decodeHashes(t testing.TB, hs []string) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(hs))
	for i, s := range hs {
		h, err := itlog.ParseHash(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = h
	}
	return out
}

func ctxT(t testing.TB) context.Context { return t.Context() }
