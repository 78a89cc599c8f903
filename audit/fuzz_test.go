package audit_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"indelible.dev/audit"
	"indelible.dev/audit/audittest"
)

// fuzzPaths are the tiles and bundles of a size-600 log the fuzzer may
// replace: full and partial, both levels. (TestTamper covers full tiles of
// level 1 and partial ones of level 2 in a bigger log.)
var fuzzPaths = []string{
	"tile/entries/000", "tile/entries/002.p/88", "tile/0/000", "tile/0/002.p/88", "tile/1/000.p/2",
}

// fuzzTimeout bounds one audit of the fuzzed log (it takes milliseconds).
const fuzzTimeout = 10 * time.Second

// FuzzTamper serves arbitrary bytes in place of one tile or bundle: the
// audit must fail with a Failure unless the bytes are the original ones, and
// must never panic or hang. (Checkpoints are left out: a checkpoint with an
// extra unknown signature line is still a valid one.)
func FuzzTamper(f *testing.F) {
	l := audittest.NewLog(f, "example.com/fuzz", 0)
	l.Grow(f, 600)
	orig := make([][]byte, len(fuzzPaths))
	for i, p := range fuzzPaths {
		b, err := os.ReadFile(filepath.Join(l.Dir, filepath.FromSlash(p)))
		if err != nil {
			f.Fatal(err)
		}
		orig[i] = b
		f.Add(uint8(i), b)
		f.Add(uint8(i), b[:len(b)-1])
		f.Add(uint8(i), append(bytes.Clone(b), 0))
		flipped := bytes.Clone(b)
		flipped[len(b)/2] ^= 0x80
		f.Add(uint8(i), flipped)
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), []byte{0xff, 0xff})

	var mu sync.Mutex
	var path string
	var body []byte
	files := http.FileServer(http.Dir(l.Dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		p, b := path, body
		mu.Unlock()
		if r.URL.Path == "/"+p {
			w.Write(b)
			return
		}
		files.ServeHTTP(w, r)
	}))
	f.Cleanup(srv.Close)
	opts := options(f, l, srv.URL)

	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		i := int(which) % len(fuzzPaths)
		mu.Lock()
		path, body = fuzzPaths[i], data
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), fuzzTimeout)
		defer cancel()
		_, err := audit.Audit(ctx, opts, nil)
		if ctx.Err() != nil {
			t.Fatalf("%s replaced by %q: the audit hung", fuzzPaths[i], data)
		}
		if bytes.Equal(data, orig[i]) {
			if err != nil {
				t.Fatalf("untouched %s: %v", fuzzPaths[i], err)
			}
			return
		}
		var fl *audit.Failure
		if !errors.As(err, &fl) {
			t.Fatalf("%s replaced by %d bytes: got %v, want a verification failure", fuzzPaths[i], len(data), err)
		}
	})
}

// TestBoundedRequests checks the replay keeps at most Parallel bundle
// workers' requests (plus one fetch-ahead per tile level) in flight: memory
// is bounded by the window, not by the log.
func TestBoundedRequests(t *testing.T) {
	l := audittest.NewLog(t, "example.com/xmod", 0)
	l.Grow(t, 70000)
	var inflight, peak, total atomic.Int32
	files := http.FileServer(http.Dir(l.Dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		total.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	opts := options(t, l, srv.URL)
	opts.Parallel = 3
	if _, err := audit.Audit(context.Background(), opts, nil); err != nil {
		t.Fatal(err)
	}
	const levels = 3
	if p := peak.Load(); p > int32(opts.Parallel+levels) {
		t.Fatalf("%d requests in flight, want at most %d", p, opts.Parallel+levels)
	}
	// Every bundle and tile once, plus the checkpoint: 274 bundles, 274+2+1 tiles.
	if got, want := total.Load(), int32(1+274+274+2+1); got != want {
		t.Fatalf("%d requests, want %d", got, want)
	}
}
