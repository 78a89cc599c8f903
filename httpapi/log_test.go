package httpapi

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

// TestTileHeaders checks content types, caching, gzip negotiation and that
// partial tiles are served at every width up to the current one.
func TestTileHeaders(t *testing.T) {
	tl := newTestLog(t, ledger.Options{})
	tl.addN(260)

	status, hdr, body := tl.get("/checkpoint")
	if status != 200 || hdr.Get("Content-Type") != "text/plain; charset=utf-8" || hdr.Get("Cache-Control") != "no-cache" {
		t.Fatalf("checkpoint: %d %v", status, hdr)
	}
	if cp, _ := tl.checkpoint(); !bytes.HasPrefix(body, []byte(cp.String())) {
		t.Fatalf("checkpoint body %q", body)
	}

	// Full tile: immutable, exactly 256 hashes.
	status, hdr, body = tl.get("/tile/0/000")
	if status != 200 || hdr.Get("Content-Type") != "application/octet-stream" ||
		hdr.Get("Cache-Control") != "public, max-age=31536000, immutable" || len(body) != 256*32 {
		t.Fatalf("full tile: %d %v %d bytes", status, hdr, len(body))
	}
	for i := 0; i < 256; i++ {
		if h := tlog.RecordHash(tl.entries[i]); !bytes.Equal(body[i*32:(i+1)*32], h[:]) {
			t.Fatalf("tile/0/000 hash %d is not the leaf hash of entry %d", i, i)
		}
	}
	// Every partial width up to the current one (4) is served, short-lived.
	for w := 1; w <= 4; w++ {
		status, hdr, body = tl.get(fmt.Sprintf("/tile/0/001.p/%d", w))
		if status != 200 || len(body) != w*32 || hdr.Get("Cache-Control") != cachePartial {
			t.Fatalf("tile/0/001.p/%d: %d %v %d bytes", w, status, hdr, len(body))
		}
	}
	if status, _, _ = tl.get("/tile/0/001.p/5"); status != 404 {
		t.Fatalf("tile/0/001.p/5 beyond the tree: %d", status)
	}
	if status, _, body = tl.get("/tile/1/000.p/1"); status != 200 || len(body) != 32 {
		t.Fatalf("tile/1/000.p/1: %d %d bytes", status, len(body))
	}

	// Bundles: identity without Accept-Encoding, gzip when accepted.
	status, hdr, plain := tl.get("/tile/entries/000")
	if status != 200 || hdr.Get("Content-Encoding") != "" || hdr.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("bundle identity: %d %v", status, hdr)
	}
	entries, err := itlog.ParseBundle(plain, 256)
	if err != nil || !bytes.Equal(entries[255], tl.entries[255]) {
		t.Fatalf("bundle 000: %v", err)
	}
	for _, ae := range []string{"gzip", "br, gzip;q=0.5", "identity, GZIP"} {
		status, hdr, body = tl.get("/tile/entries/000", "Accept-Encoding", ae)
		if status != 200 || hdr.Get("Content-Encoding") != "gzip" || hdr.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Fatalf("bundle with Accept-Encoding %q: %d %v", ae, status, hdr)
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("gzipped bundle does not decompress to the bundle: %v", err)
		}
	}
	for _, ae := range []string{"gzip;q=0", "br", "identity", "gzipx"} {
		_, hdr, body = tl.get("/tile/entries/000", "Accept-Encoding", ae)
		if hdr.Get("Content-Encoding") != "" || !bytes.Equal(body, plain) {
			t.Fatalf("bundle with Accept-Encoding %q was encoded: %v", ae, hdr)
		}
	}
	// Hash tiles are never gzipped (they do not compress).
	if _, hdr, _ = tl.get("/tile/0/000", "Accept-Encoding", "gzip"); hdr.Get("Content-Encoding") != "" {
		t.Fatalf("hash tile gzipped")
	}
	// Partial bundle: a prefix.
	status, _, body = tl.get("/tile/entries/001.p/3")
	if entries, err := itlog.ParseBundle(body, 3); status != 200 || err != nil || !bytes.Equal(entries[2], tl.entries[258]) {
		t.Fatalf("partial bundle: %d %v", status, err)
	}
}

// TestAddWaitCheckpoint checks that ?wait=checkpoint answers only once the
// served checkpoint covers the entry.
func TestAddWaitCheckpoint(t *testing.T) {
	tl := newTestLog(t, ledger.Options{})
	tl.addN(3)
	status, _, body := tl.do("POST", "/add?wait=checkpoint", strings.NewReader("waited"))
	if status != 200 || string(body) != "3\n" {
		t.Fatalf("POST /add?wait=checkpoint: %d %q", status, body)
	}
	if cp, _ := tl.checkpoint(); cp.N < 4 {
		t.Fatalf("checkpoint size %d after wait=checkpoint for index 3", cp.N)
	}
}

// TestAddResponseHeaders: POST /add answers text/plain with the index, a
// Content-Length and no chunking, for small and large indexes.
func TestAddResponseHeaders(t *testing.T) {
	tl := newTestLog(t, ledger.Options{})
	for i := 0; i < 12; i++ {
		resp, err := http.Post(tl.url+"/add", "application/octet-stream", strings.NewReader(fmt.Sprint("entry ", i)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf("%d\n", i)
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("POST /add: %d %q, want 200 %q", resp.StatusCode, body, want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("POST /add: Content-Type %q", ct)
		}
		if resp.ContentLength != int64(len(want)) || len(resp.TransferEncoding) != 0 {
			t.Errorf("POST /add: Content-Length %d, Transfer-Encoding %v", resp.ContentLength, resp.TransferEncoding)
		}
	}
}

// TestConcurrentAdds checks that concurrent writers get distinct indexes and
// that each index holds the entry its writer sent.
func TestConcurrentAdds(t *testing.T) {
	tl := newTestLog(t, ledger.Options{})
	const writers, per = 16, 20
	got := make(map[int64][]byte)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := range per {
				entry := fmt.Appendf(nil, "writer %d entry %d", w, k)
				resp, err := http.Post(tl.url+"/add", "application/octet-stream", bytes.NewReader(entry))
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				idx, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
				if resp.StatusCode != 200 || err != nil {
					t.Errorf("POST /add: %d %q", resp.StatusCode, body)
					return
				}
				mu.Lock()
				if _, dup := got[idx]; dup {
					t.Errorf("index %d given twice", idx)
				}
				got[idx] = entry
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) != writers*per {
		t.Fatalf("%d indexes, want %d", len(got), writers*per)
	}
	cp, _ := tl.checkpoint()
	for i, want := range got {
		e, err := tl.l.Entry(i)
		if err != nil || !bytes.Equal(e, want) || i >= cp.N {
			t.Fatalf("entry %d = %q, %v; want %q (size %d)", i, e, err, want, cp.N)
		}
	}
}

// TestPushback fills a tiny sequencing queue with concurrent writers until
// the server pushes back: 503 with Retry-After and a JSON error.
func TestPushback(t *testing.T) {
	tl := newTestLog(t, ledger.Options{QueueSize: 1})
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var pushed *http.Response
		var pushedBody []byte
		for w := 0; w < 64; w++ {
			wg.Go(func() {
				resp, err := http.Post(tl.url+"/add", "application/octet-stream", strings.NewReader("e"))
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable {
					mu.Lock()
					pushed, pushedBody = resp, body
					mu.Unlock()
				} else if resp.StatusCode != http.StatusOK {
					t.Errorf("POST /add: %d %s", resp.StatusCode, body)
				}
			})
		}
		wg.Wait()
		if pushed != nil {
			checkJSONError(t, "pushback", pushed.StatusCode, pushed.Header, pushedBody, 503, "retry later")
			if pushed.Header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			return
		}
	}
	t.Fatal("a queue of 1 never pushed back against 64 concurrent writers")
}

// TestErrorTable checks the status of each error the handlers can return.
func TestErrorTable(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
	}{
		{ledger.ErrPushback, 503},
		{fmt.Errorf("wrapped: %w", ledger.ErrFailed), 500},
		{fmt.Errorf("%w: %w", ledger.ErrCorrupt, errors.New("disk tile")), 500},
		{ledger.ErrDiskFull, 503},
		{ledger.ErrNotWitnessed, 503},
		{ledger.ErrClosed, 503},
		{ledger.ErrNotFound, 404},
		{ledger.ErrEntryTooLarge, 413},
		{ledger.ErrRange, 400},
		{itlog.ErrMalformedTilePath, 404},
		{errBadRequest, 400},
		{errTooLarge, 413},
		{&http.MaxBytesError{Limit: 1}, 413},
		{echo.ErrMethodNotAllowed, 405},
		{errors.New("disk on fire"), 500},
	} {
		rec := httptest.NewRecorder()
		c := echo.New().NewContext(httptest.NewRequest("GET", "/", nil), rec)
		errorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))(tc.err, c)
		if rec.Code != tc.status {
			t.Errorf("%v: status %d, want %d", tc.err, rec.Code, tc.status)
		}
		if (tc.status == 503) != (rec.Header().Get("Retry-After") != "") {
			t.Errorf("%v: Retry-After %q", tc.err, rec.Header().Get("Retry-After"))
		}
		if tc.status == 500 && strings.Contains(rec.Body.String(), "disk") {
			t.Errorf("internal error leaked: %s", rec.Body)
		}
	}
}

// TestOperations checks /healthz, /readyz (also while shutting down) and that
// /metrics reports commits and requests by route and status.
func TestOperations(t *testing.T) {
	tl := newTestLog(t, ledger.Options{})
	tl.addN(5)
	tl.get("/tile/0/999")
	tl.get("/no/such/route")
	for _, p := range []string{"/healthz", "/readyz"} {
		if status, _, body := tl.get(p); status != 200 || string(body) != "ok\n" {
			t.Fatalf("%s: %d %q", p, status, body)
		}
	}
	status, _, body := tl.get("/metrics")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		"indelible_appends_total 5",
		"indelible_tree_size 5",
		"indelible_published_tree_size 5",
		"indelible_queue_depth_live 0",
		"indelible_commit_latency_seconds_count",
		"indelible_commit_batch_entries_count",
		`indelible_http_requests_total{code="200",route="/add"} 5`,
		`indelible_http_requests_total{code="404",route="/tile/*"} 1`,
		`indelible_http_requests_total{code="404",route="other"} 1`,
		`indelible_http_request_duration_seconds_count{route="/add"} 5`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want+"\n") && !strings.Contains(string(body), want+" ") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	tl.srv.SetShuttingDown()
	status, hdr, body := tl.get("/readyz")
	checkJSONError(t, "/readyz", status, hdr, body, 503, "shutting down")
	if status, _, _ := tl.get("/healthz"); status != 200 {
		t.Fatalf("/healthz while shutting down: %d", status)
	}
}

func TestHTTPServerLimits(t *testing.T) {
	s := New(Config{}).HTTPServer("127.0.0.1:0")
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Fatalf("server without timeouts or header limit: %+v", s)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for ae, want := range map[string]bool{
		"": false, "gzip": true, "GZip": true, "deflate, gzip": true, "gzip;q=0": false,
		"gzip; q=0.001": true, "gzip;q=0.000": false, "x-gzip": false, "gzip;q=abc": false,
	} {
		if got := acceptsGzip(ae); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", ae, got, want)
		}
	}
}
