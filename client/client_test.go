package client

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

func TestRetriesThenSucceeds(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusInternalServerError} {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= 2 {
				w.WriteHeader(status)
				return
			}
			w.Write([]byte("ok"))
		}))
		c, err := New(srv.URL, Options{Backoff: time.Millisecond})
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

func TestRetriesExhausted(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c, _ := New(srv.URL, Options{Backoff: time.Millisecond, Retries: 3})
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
	c, _ := New(srv.URL+"/", Options{Backoff: time.Millisecond})
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
	c, _ := New(srv.URL, Options{Retries: -1})
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
	c, _ := New(srv.URL, Options{Retries: -1})
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

func TestForEach(t *testing.T) {
	var inflight, peak atomic.Int32
	seen := make([]atomic.Int32, 100)
	err := ForEach(context.Background(), 100, 4, func(ctx context.Context, i int) error {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		seen[i].Add(1)
		inflight.Add(-1)
		return nil
	})
	if err != nil || peak.Load() > 4 {
		t.Fatalf("err %v peak %d", err, peak.Load())
	}
	for i := range seen {
		if seen[i].Load() != 1 {
			t.Fatalf("index %d ran %d times", i, seen[i].Load())
		}
	}
	boom := errors.New("boom")
	var after atomic.Int32
	err = ForEach(context.Background(), 1000, 2, func(ctx context.Context, i int) error {
		if i == 5 {
			return boom
		}
		if i > 500 {
			after.Add(1)
		}
		return nil
	})
	if !errors.Is(err, boom) || after.Load() > 0 {
		t.Fatalf("err %v, %d calls after the error", err, after.Load())
	}
}
