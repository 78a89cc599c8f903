package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/client"
	"indelible.dev/httpapi"
	"indelible.dev/ledger"
	"indelible.dev/receipt"
	itlog "indelible.dev/tlog"
)

// logServer is a bare ledger under the key skey, served over HTTP.
type logServer struct {
	url string
	l   *ledger.Log
}

func newLogServer(t *testing.T, skey string) *logServer {
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.New(httpapi.Config{Log: l, Logger: logger})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); l.Close() })
	return &logServer{url: hs.URL, l: l}
}

// add appends n entries named prefix-i and waits for a checkpoint of the
// new size.
func (s *logServer) add(t *testing.T, prefix string, n int) {
	ctx := context.Background()
	var last int64
	for i := range n {
		idx, err := s.l.Append(ctx, fmt.Appendf(nil, "%s-%d", prefix, i))
		if err != nil {
			t.Fatal(err)
		}
		last = idx
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if cp, _ := s.l.Checkpoint(); cp.N > last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPinAndFork: the pin (a file) advances over consistency proofs; a
// second log under the same key, served to a client with that pin after a
// restart, gives a *ForkError and leaves the pin as it was.
func TestPinAndFork(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "example.com/fork-test")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := itlog.NewPolicy(vkey, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(t.TempDir(), "pin")
	ctx := context.Background()

	a := newLogServer(t, skey)
	a.add(t, "a", 5)
	ca, _ := client.New(a.url, "", client.WithPin(pin, policy))
	cp, err := ca.CheckCheckpoint(ctx)
	if err != nil || cp.N != 5 {
		t.Fatalf("first pin: %d %v", cp.N, err)
	}
	if fi, err := os.Stat(pin); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pin file: %v %v", fi, err)
	}
	a.add(t, "a", 3)
	if cp, err = ca.CheckCheckpoint(ctx); err != nil || cp.N != 8 {
		t.Fatalf("advance: %d %v", cp.N, err)
	}
	pinned, _ := os.ReadFile(pin)

	for _, tc := range []struct {
		name string
		n    int
	}{{"larger", 12}, {"same size", 8}, {"smaller", 3}} {
		b := newLogServer(t, skey) // the same key, another history
		b.add(t, "b", tc.n)
		cb, _ := client.New(b.url, "", client.WithPin(pin, policy))
		_, err := cb.CheckCheckpoint(ctx)
		var fe *client.ForkError
		if !errors.As(err, &fe) || !bytes.Equal(fe.Pinned, pinned) || len(fe.Got) == 0 {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if now, _ := os.ReadFile(pin); !bytes.Equal(now, pinned) {
			t.Fatalf("%s: the pin changed", tc.name)
		}
	}

	// A checkpoint under another key is refused, and is no fork.
	skey2, _, _ := note.GenerateKey(rand.Reader, "example.com/fork-test")
	o := newLogServer(t, skey2)
	o.add(t, "o", 9)
	co, _ := client.New(o.url, "", client.WithPin(pin, policy))
	_, err = co.CheckCheckpoint(ctx)
	var fe *client.ForkError
	if err == nil || errors.As(err, &fe) {
		t.Fatalf("other key: %v", err)
	}
}

// TestReceiptFork: with a pin, Receipt checks the receipt's checkpoint
// against it: a receipt from the log advances the pin and verifies with the
// public verifier; an older receipt is proven consistent with the newer
// pin and leaves it; a receipt from a second log under the same key, served
// to the client after its pin, is a *ForkError and leaves the pin as it
// was.
func TestReceiptFork(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := itlog.NewPolicy(vkey, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(t.TempDir(), "pin")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logN := func(c *client.Client, action string, n int) client.Logged {
		t.Helper()
		var lg client.Logged
		for i := range n {
			var err error
			if lg, err = c.LogSync(ctx, client.Event{Action: action, Resource: &client.Resource{ID: fmt.Sprint(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		return lg
	}
	pinned := func() itlog.Checkpoint {
		t.Helper()
		b, err := os.ReadFile(pin)
		if err != nil {
			t.Fatal(err)
		}
		cp, _, err := policy.Open(b)
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}

	a := newTestServerKey(t, skey, vkey)
	ca, _ := client.New(a.url, a.token, client.WithPin(pin, policy))
	defer ca.Close(context.Background())
	first := logN(ca, "doc.read", 3)
	rc, err := first.Receipt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pol, _ := receipt.NewPolicy(vkey, nil, 0)
	if v, err := receipt.Verify(rc, pol); err != nil || v.Index != first.Index {
		t.Fatalf("the receipt does not verify: %v", err)
	}
	r1, _ := itlog.ParseReceipt(rc)
	if cp := pinned(); !bytes.Equal(r1.Checkpoint, must(os.ReadFile(pin))) || cp.N <= first.Index {
		t.Fatalf("the pin is not the receipt's checkpoint (size %d)", cp.N)
	}

	// The log grows; the pin follows; then the old receipt is served
	// again (a lagging replica): consistent, accepted, the pin stays.
	logN(ca, "doc.write", 4)
	if _, err := ca.CheckCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	ahead := pinned()
	if ahead.N <= must(itlog.ParseReceipt(rc)).Index+1 {
		t.Fatalf("pin at %d", ahead.N)
	}
	stale := receiptServer(t, a.url, rc)
	cs, _ := client.New(stale.URL, a.token, client.WithPin(pin, policy))
	if got, err := cs.Receipt(ctx, first.Index); err != nil || !bytes.Equal(got, rc) {
		t.Fatalf("an older receipt, consistent with the pin: %v", err)
	}
	if now := pinned(); now.N != ahead.N || now.Hash != ahead.Hash {
		t.Fatalf("the pin moved back: %d", now.N)
	}

	// The same receipt with the commitment's salt altered: signed
	// checkpoint, consistent with the pin, but the inclusion proof does not
	// hold for the event it opens: refused.
	parsed := must(itlog.ParseReceipt(rc))
	parsed.Extra = bytes.Clone(parsed.Extra)
	parsed.Extra[0] ^= 1
	forged := []byte(parsed.String())
	if _, err := receipt.Verify(forged, pol); err == nil {
		t.Fatal("the forged receipt verifies: the test proves nothing")
	}
	bad := receiptServer(t, a.url, forged)
	cf, _ := client.New(bad.URL, a.token, client.WithPin(pin, policy))
	if _, err := cf.Receipt(ctx, first.Index); !errors.Is(err, receipt.ErrInvalid) || !strings.Contains(err.Error(), "inclusion proof") {
		t.Fatalf("a receipt whose inclusion proof does not hold: %v, want receipt.ErrInvalid naming the inclusion proof", err)
	}
	if now := pinned(); now.N != ahead.N || now.Hash != ahead.Hash {
		t.Fatalf("the pin moved on a forged receipt: %d", now.N)
	}

	// A second log under the same key, longer than the pin: a fork.
	b := newTestServerKey(t, skey, vkey)
	cb, _ := client.New(b.url, b.token, client.WithPin(pin, policy))
	defer cb.Close(context.Background())
	before := must(os.ReadFile(pin))
	lb := logN(cb, "doc.forked", int(ahead.N)+3)
	_, err = lb.Receipt(ctx)
	var fe *client.ForkError
	if !errors.As(err, &fe) || !bytes.Equal(fe.Pinned, before) || len(fe.Got) == 0 {
		t.Fatalf("a receipt from a forked log: %v, want a *ForkError", err)
	}
	if !bytes.Equal(must(os.ReadFile(pin)), before) {
		t.Fatal("the pin changed")
	}
	t.Logf("refused: %v", err)
}

// receiptServer passes every request to target but a receipt's, which it
// answers with body.
func receiptServer(t *testing.T, target string, body []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/receipt") {
			w.Write(body)
			return
		}
		(&chaosProxy{target: target}).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
