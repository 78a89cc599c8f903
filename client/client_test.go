package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

func TestRetriesThenSucceeds(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout} {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= 2 {
				w.WriteHeader(status)
				return
			}
			w.Write([]byte("ok"))
		}))
		c, err := New(srv.URL, "", WithOptions(Options{Backoff: time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Get(context.Background(), "x", nil, 10)
		if err != nil || string(b) != "ok" || calls.Load() != 3 {
			t.Fatalf("status %d: %q %v after %d calls", status, b, err, calls.Load())
		}
		srv.Close()
	}
}

// TestFatalNotRetried: a 500 is a fault the server does not expect to
// pass (a stopped log, a corrupt store): it is returned at once, like
// every status RetryableStatus refuses.
func TestFatalNotRetried(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusNotImplemented, http.StatusBadRequest, http.StatusForbidden} {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			http.Error(w, "no", status)
		}))
		c, _ := New(srv.URL, "", WithOptions(Options{Backoff: time.Millisecond}))
		_, err := c.Get(context.Background(), "x", nil, 10)
		var se *StatusError
		if !errors.As(err, &se) || se.Status != status || calls.Load() != 1 || Retryable(err) {
			t.Errorf("status %d: %v after %d calls", status, err, calls.Load())
		}
		srv.Close()
	}
}

func TestRetriesExhausted(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "", WithOptions(Options{Backoff: time.Millisecond, Retries: 3}))
	_, err := c.Get(context.Background(), "x", nil, 10)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 503 || !strings.Contains(err.Error(), "busy") || calls.Load() != 4 {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
	if errors.Is(err, ErrNotExist) {
		t.Fatal("503 matches ErrNotExist")
	}
}

func TestNotFoundIsNotExistAndNotRetried(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/tile/0/x001/234.p/5" {
			t.Errorf("path %q", r.URL.Path)
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	c, _ := New(srv.URL+"/", "", WithOptions(Options{Backoff: time.Millisecond}))
	_, err := c.Tile(context.Background(), tlog.Tile{H: 8, L: 0, N: 1234, W: 5}, nil)
	if !errors.Is(err, ErrNotExist) || !errors.Is(err, fs.ErrNotExist) || calls.Load() != 1 {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
}

func TestSizeLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, MaxHashTileSize+1))
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "", WithOptions(Options{Retries: -1}))
	if _, err := c.Tile(context.Background(), tlog.Tile{H: 8, L: 0, N: 0, W: 256}, nil); err == nil || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized tile: %v", err)
	}
	buf := make([]byte, 0, 16)
	b, err := c.Tile(context.Background(), tlog.Tile{H: 8, L: -1, N: 0, W: 256}, buf)
	if err != nil || len(b) != MaxHashTileSize+1 {
		t.Fatalf("bundle: %d bytes, %v", len(b), err)
	}
}

func TestConsistencyProof(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("from") {
		case "3":
			w.Write([]byte(`{"from":3,"to":7,"hashes":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]}`))
		case "4":
			w.Write([]byte(`{"from":5,"to":7,"hashes":[]}`))
		default:
			w.Write([]byte(`{"from":1,"to":7,"hashes":["AAAA"]}`))
		}
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "", WithOptions(Options{Retries: -1}))
	p, err := c.ConsistencyProof(context.Background(), 3, 7)
	if err != nil || len(p) != 2 || p[1][0] != 1 {
		t.Fatalf("%v %v", p, err)
	}
	if _, err := c.ConsistencyProof(context.Background(), 4, 7); err == nil {
		t.Fatal("mismatched sizes accepted")
	}
	if _, err := c.ConsistencyProof(context.Background(), 1, 7); err == nil {
		t.Fatal("short hash accepted")
	}
}

func TestInclusionProof(t *testing.T) {
	h0 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("index") == "3":
			json.NewEncoder(w).Encode(InclusionProof{Index: 3, TreeSize: 7, Hashes: []string{h0, h0, h0}})
		case q.Get("index") == "4":
			json.NewEncoder(w).Encode(InclusionProof{Index: 5, TreeSize: 7, Hashes: []string{h0}})
		case q.Has("hash"):
			json.NewEncoder(w).Encode(InclusionProof{Index: 2, TreeSize: 7, Hashes: []string{h0}})
		default:
			json.NewEncoder(w).Encode(InclusionProof{Index: 1, TreeSize: 7, Hashes: []string{"AAAA"}})
		}
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "", WithOptions(Options{Retries: -1}))
	ctx := context.Background()
	if p, err := c.InclusionProof(ctx, 3, 7); err != nil || len(p) != 3 {
		t.Fatalf("%v %v", p, err)
	}
	if _, err := c.InclusionProof(ctx, 4, 7); err == nil {
		t.Fatal("an answer for another index was accepted")
	}
	if _, err := c.InclusionProof(ctx, 1, 7); err == nil {
		t.Fatal("a short hash was accepted")
	}
	if i, p, err := c.InclusionProofByHash(ctx, tlog.Hash{1}, 7); err != nil || i != 2 || len(p) != 1 {
		t.Fatalf("by hash: %d %v %v", i, p, err)
	}
	if _, _, err := c.InclusionProofByHash(ctx, tlog.Hash{1}, 2); err == nil {
		t.Fatal("by hash: an index beyond the size was accepted")
	}
}

// TestWireRoundTrip checks that the wire types encode as the endpoints'
// documented JSON and decode back to the same hashes.
func TestWireRoundTrip(t *testing.T) {
	hs := []tlog.Hash{{1}, {2, 3}}
	b, err := json.Marshal(NewInclusionProof(4, 9, hs))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"index":4,"tree_size":9,"hashes":["` + base64.StdEncoding.EncodeToString(hs[0][:]) + `","` + base64.StdEncoding.EncodeToString(hs[1][:]) + `"]}`
	if string(b) != want {
		t.Fatalf("inclusion proof JSON %s, want %s", b, want)
	}
	var ip InclusionProof
	if err := json.Unmarshal(b, &ip); err != nil {
		t.Fatal(err)
	}
	if p, err := ip.Proof(); err != nil || !slices.Equal(p, hs) {
		t.Fatalf("decoded %v %v", p, err)
	}
	b, _ = json.Marshal(NewConsistencyProof(0, 0, nil))
	if string(b) != `{"from":0,"to":0,"hashes":[]}` {
		t.Fatalf("empty consistency proof JSON %s", b)
	}
	for _, bad := range [][]string{{"AAAA"}, {"not base64!"}, make([]string, itlog.MaxProofHashes+1)} {
		if _, err := DecodeHashes(bad); err == nil {
			t.Errorf("DecodeHashes(%.40q) accepted", bad)
		}
	}
}

// TestStatusAccepted: a GET, of the log or of the events API, must be
// answered 200 (a 206 is not the whole resource, and is not retried); other
// methods take any 2xx; a GET reads into the caller's buffer when it has
// room.
func TestStatusAccepted(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch {
		case r.URL.Path == "/whole":
			w.Write([]byte("abc"))
		case r.Method == http.MethodGet:
			w.WriteHeader(http.StatusPartialContent)
			w.Write([]byte("part"))
		default:
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`created`))
		}
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "", WithOptions(Options{Backoff: time.Millisecond}))
	ctx := context.Background()
	var se *StatusError
	if _, err := c.Get(ctx, "x", nil, 10); !errors.As(err, &se) || se.Status != http.StatusPartialContent || calls.Load() != 1 {
		t.Fatalf("GET answered 206: %v after %d calls", err, calls.Load())
	}
	if _, err := c.Event(ctx, 7); !errors.As(err, &se) || se.Status != http.StatusPartialContent {
		t.Fatalf("events GET answered 206: %v", err)
	}
	if b, err := c.do(ctx, http.MethodPost, "x", "text/plain", []byte("x"), 10); err != nil || string(b) != "created" {
		t.Fatalf("POST answered 201: %q, %v", b, err)
	}
	buf := make([]byte, 0, 16)
	b, err := c.Get(ctx, "whole", buf, 10)
	if err != nil || string(b) != "abc" || &b[0] != &buf[:1][0] {
		t.Fatalf("GET into a buffer with room: %q, %v, reused %v", b, err, err == nil && &b[0] == &buf[:1][0])
	}
}
