package witness

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// tileServer serves m's hash tiles and counts the requests; delay slows
// each one down and inflight records the most served at once.
type tileServer struct {
	m        *tlogtest.Tree
	n        int64
	requests atomic.Int64
	delay    time.Duration
	mu       sync.Mutex
	cur, max int
}

func (s *tileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	s.cur++
	s.max = max(s.max, s.cur)
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.cur--; s.mu.Unlock() }()
	time.Sleep(s.delay)
	t, err := itlog.ParseTilePath(strings.TrimPrefix(r.URL.Path, "/"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	data, err := tlog.ReadTileData(t, s.m)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Write(data)
}

func signedCP(t testing.TB, m *tlogtest.Tree, n int64) []byte {
	return m.Checkpoint(testOrigin, n, tlogtest.TesseraKey(t).Signer)
}

func openWithLogURL(t testing.TB, url string, hc *http.Client) *Witness {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	cs, _ := itlog.NewCosigner("witness.example/limits", key, nil)
	v, _ := note.NewVerifier(testLogVKey)
	w, err := Open(t.TempDir(), Options{Cosigner: cs, Logs: []Log{{Origin: testOrigin, Verifiers: []note.Verifier{v}, URL: url}},
		GossipInterval: -1, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestObserveCachedAndBounded: observing the same checkpoint again does not
// fetch tiles again; concurrent observations of distinct checkpoints never
// run more than maxObserveFetches tile fetches at once, and past the rate
// the witness answers ErrBusy.
func TestObserveCachedAndBounded(t *testing.T) {
	const n = 600
	m := tlogtest.NewTreeN(n, "obs %d")
	ts := &tileServer{m: m, n: n}
	srv := httptest.NewServer(ts)
	defer srv.Close()
	w := openWithLogURL(t, srv.URL, nil)
	ctx := context.Background()
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, m, 0, 10))); err != nil {
		t.Fatal(err)
	}
	cp := signedCP(t, m, 500)
	obs, err := w.Observe(ctx, cp)
	if err != nil || obs.Result != ObservedConsistent {
		t.Fatalf("observe: %+v %v", obs, err)
	}
	first := ts.requests.Load()
	for i := 0; i < 50; i++ {
		if obs, err := w.Observe(ctx, cp); err != nil || obs.Result != ObservedConsistent {
			t.Fatalf("observe again: %+v %v", obs, err)
		}
	}
	if got := ts.requests.Load(); got != first {
		t.Fatalf("the same checkpoint observed 50 more times fetched %d more tiles, want 0", got-first)
	}

	// Distinct checkpoints at once, each slow to fetch.
	ts.delay = 20 * time.Millisecond
	var wg sync.WaitGroup
	var busy, done atomic.Int64
	for i := int64(0); i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := w.Observe(ctx, signedCP(t, m, 20+i))
			switch {
			case errors.Is(err, ErrBusy):
				busy.Add(1)
			case err == nil:
				done.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	ts.mu.Lock()
	peak := ts.max
	ts.mu.Unlock()
	if peak > maxObserveFetches {
		t.Fatalf("%d tile fetches at once, want at most %d", peak, maxObserveFetches)
	}
	if busy.Load() == 0 || done.Load() == 0 {
		t.Fatalf("%d done, %d busy: want some of each", done.Load(), busy.Load())
	}
}

// TestObserveNoRedirect: a log URL that redirects is not followed, even to
// a server that holds the right tiles.
func TestObserveNoRedirect(t *testing.T) {
	m := tlogtest.NewTreeN(40, "redir %d")
	good := httptest.NewServer(&tileServer{m: m, n: 40})
	defer good.Close()
	var redirected atomic.Int64
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		http.Redirect(w, r, good.URL+r.URL.Path, http.StatusFound)
	}))
	defer redir.Close()
	// Even a caller's client that would follow redirects does not.
	w := openWithLogURL(t, redir.URL, &http.Client{Timeout: 5 * time.Second})
	ctx := context.Background()
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, m, 0, 5))); err != nil {
		t.Fatal(err)
	}
	obs, err := w.Observe(ctx, signedCP(t, m, 30))
	if err != nil || obs.Result != ObservedUnverified || !strings.Contains(obs.Detail, "302") {
		t.Fatalf("observe through a redirect: %+v %v", obs, err)
	}
	if redirected.Load() == 0 {
		t.Fatal("the redirecting server was never asked")
	}
}

// TestForkEvidenceBounded: evidence records per origin stop at
// MaxEvidencePerOrigin (the origin stays refused), and a peer's reason is
// stored without control characters and at most MaxReasonLen bytes.
func TestForkEvidenceBounded(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	w := openTestWitness(t, dir, key)
	ls := w.logs[testOrigin]
	a := tlogtest.NewTreeN(1, "a %d")
	for i := 0; i < MaxEvidencePerOrigin+10; i++ {
		b := tlogtest.NewTreeN(1, fmt.Sprintf("b%d", i)+" %d")
		reason := "peer says\x1b[31m fork\n" + strings.Repeat("é", MaxReasonLen)
		ls.mu.Lock()
		w.recordFork(ls, Evidence{Origin: testOrigin, Reason: reason, Source: "test\r\n", A: string(signedCP(t, a, 1)), B: string(signedCP(t, b, 1))})
		ls.mu.Unlock()
	}
	forks, err := w.Forks()
	if err != nil {
		t.Fatal(err)
	}
	if len(forks) != MaxEvidencePerOrigin {
		t.Fatalf("%d evidence records, want %d", len(forks), MaxEvidencePerOrigin)
	}
	for _, e := range forks {
		if len(e.Reason) > MaxReasonLen || strings.ContainsAny(e.Reason+e.Source, "\x1b\n\r") || !strings.HasPrefix(e.Reason, "peer says[31m fork") {
			t.Fatalf("stored reason %q source %q", e.Reason, e.Source)
		}
	}
	if !ls.forked {
		t.Fatal("origin not refused")
	}
	// The cap survives a restart (counts are loaded from the store).
	w.Close()
	w = openTestWitness(t, dir, key)
	defer w.Close()
	ls = w.logs[testOrigin]
	b := tlogtest.NewTreeN(1, "after restart %d")
	ls.mu.Lock()
	w.recordFork(ls, Evidence{Origin: testOrigin, Reason: "r", A: string(signedCP(t, a, 1)), B: string(signedCP(t, b, 1))})
	ls.mu.Unlock()
	if forks, _ := w.Forks(); len(forks) != MaxEvidencePerOrigin {
		t.Fatalf("%d evidence records after a restart, want %d", len(forks), MaxEvidencePerOrigin)
	}
}

// TestClientNoRedirect: the log's witness client does not follow a
// redirect, even to a real witness.
func TestClientNoRedirect(t *testing.T) {
	var followed atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Add(1) }))
	defer target.Close()
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redir.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	cs, _ := itlog.NewCosigner("witness.example/c", key, nil)
	c, err := NewClient(cs.VKey(), redir.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := tlogtest.NewTreeN(2, "c %d")
	_, err = c.AddCheckpoint(context.Background(), 0, nil, signedCP(t, m, 2))
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusTemporaryRedirect || followed.Load() != 0 {
		t.Fatalf("add-checkpoint through a redirect: %v (followed %d)", err, followed.Load())
	}
}
