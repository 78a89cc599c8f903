package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/client"
	"indelible.dev/httpapi"
	"indelible.dev/ledger"
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
