package httpapi

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
)

// Test503BodiesCarryNoStorageText is issue 8 item 5: a 503 says which
// condition holds, never the storage error behind it; fatal errors are 500
// without Retry-After (issue 9 item 3).
func Test503BodiesCarryNoStorageText(t *testing.T) {
	storage := errors.New("pebble: open /var/lib/indelible/000123.sst: input/output error")
	for _, tc := range []struct {
		err    error
		status int
		want   string
	}{
		{fmt.Errorf("%w: %w", errNotReady, fmt.Errorf("%w: %w", ledger.ErrFailed, storage)), 503, "not ready: ledger: storage failure"},
		{fmt.Errorf("queue: %w: %w", ledger.ErrPushback, storage), 503, "too many pending entries"},
		{fmt.Errorf("%w: %w", ledger.ErrFailed, storage), 500, "internal server error"},
		{fmt.Errorf("%w: %w", ledger.ErrCorrupt, storage), 500, "internal server error"},
	} {
		rec := httptest.NewRecorder()
		c := echo.New().NewContext(httptest.NewRequest("GET", "/", nil), rec)
		errorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))(tc.err, c)
		checkJSONError(t, tc.err.Error(), rec.Code, rec.Header(), rec.Body.Bytes(), tc.status, tc.want)
		if strings.Contains(rec.Body.String(), "sst") || strings.Contains(rec.Body.String(), "input/output") {
			t.Errorf("%v: body leaks storage text: %s", tc.err, rec.Body)
		}
		if (rec.Code == 503) != (rec.Header().Get("Retry-After") != "") {
			t.Errorf("%v: status %d with Retry-After %q", tc.err, rec.Code, rec.Header().Get("Retry-After"))
		}
	}
}

// unreachableWitness returns a real witness client for an address nobody
// listens on.
func unreachableWitness(t *testing.T) ledger.Witness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	c, err := witness.NewClient(itlog.CosignatureVKey("w.example", pub), "http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestQuorumOutOfReach is issue 8 items 1 and 4: with a witness quorum
// configured and out of reach, /checkpoint answers 503 with Retry-After
// (never the unwitnessed checkpoint), and POST /add?wait=checkpoint gives up
// with a 503 before the write timeout, the entry being durable.
func TestQuorumOutOfReach(t *testing.T) {
	key := tlogtest.NewKey(t, testOrigin)
	signer := key.Signer
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, Logger: logger, MinFreeBytes: -1,
		Witnessing: ledger.WitnessConfig{Witnesses: []ledger.Witness{unreachableWitness(t)}, Retry: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := New(Config{Log: l, RawAppend: true, Logger: logger, CheckpointWait: 300 * time.Millisecond})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	resp, err := http.Get(hs.URL + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkJSONError(t, "/checkpoint", resp.StatusCode, resp.Header, body, 503, "no witnessed checkpoint")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("/checkpoint 503 without Retry-After")
	}

	start := time.Now()
	resp, err = http.Post(hs.URL+"/add?wait=checkpoint", "application/octet-stream", strings.NewReader("entry"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("wait=checkpoint held the request %v", d)
	}
	checkJSONError(t, "/add?wait=checkpoint", resp.StatusCode, resp.Header, body, 503, "no checkpoint covers it yet")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if cp, _ := l.Published(); cp.N != 1 {
		t.Fatalf("the entry is not durable: published size %d", cp.N)
	}
	if DefaultCheckpointWait >= WriteTimeout {
		t.Fatalf("DefaultCheckpointWait %v is not below WriteTimeout %v", DefaultCheckpointWait, WriteTimeout)
	}
}

// TestWitnessAheadFailsReadiness is issue 8 item 1: a log whose key signed
// a larger tree elsewhere (here: another store, witnessed by a real witness)
// gets a 409 naming a size it never signed: /readyz fails and the alarm is
// counted in /metrics.
func TestWitnessAheadFailsReadiness(t *testing.T) {
	key := tlogtest.NewKey(t, "example.com/ahead")
	signer, verifier := key.Signer, key.Verifier
	tw := newTestWitness(t, "w.example", []witness.Log{{Origin: "example.com/ahead", Verifiers: []note.Verifier{verifier}}}, nil, -1)
	open := func() *ledger.Log {
		c, err := witness.NewClient(tw.vkey, tw.ts.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, MinFreeBytes: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Witnessing: ledger.WitnessConfig{Witnesses: []ledger.Witness{c}, Retry: 20 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a := open()
	for i := 0; i < 5; i++ {
		if _, err := a.Append(t.Context(), fmt.Appendf(nil, "a%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventuallyTrue(t, "size 5 witnessed", func() bool { cp, _ := a.Checkpoint(); return cp.N == 5 })
	a.Close()

	b := open()
	defer b.Close()
	tl := &testLog{t: t, l: b}
	srv := New(Config{Log: b, RawAppend: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	tl.url = hs.URL
	if _, err := b.Append(t.Context(), []byte("b0")); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "the alarm", func() bool { return b.WitnessAlarm() != nil })
	status, hdr, body := tl.get("/readyz")
	checkJSONError(t, "/readyz", status, hdr, body, 503, "a witness knows a larger tree than this log")
	if _, _, m := tl.get("/metrics"); !regexp.MustCompile(`(?m)^indelible_witness_ahead_total [1-9]`).Match(m) {
		t.Errorf("/metrics lacks the alarm counter")
	}
}

func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
