package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"indelible.dev/client"
)

// fakeAppend answers POST /v1/events like the server: one index per event
// of the JSON array, counting from next. status, if it returns non-zero,
// answers that instead (with Retry-After: 1 when retryAfter).
func fakeAppend(t *testing.T, status func(n int64) (int, bool)) (*httptest.Server, *atomic.Int64) {
	var reqs, next atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := reqs.Add(1)
		if st, ra := status(n); st != 0 {
			if ra {
				w.Header().Set("Retry-After", "1")
			}
			http.Error(w, `{"error":"no"}`, st)
			return
		}
		var evs []client.Event
		if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
			t.Errorf("fake: %v", err)
		}
		out := make([]client.Appended, len(evs))
		for i, ev := range evs {
			out[i] = client.Appended{Index: next.Add(1) - 1, ID: ev.ID}
		}
		json.NewEncoder(w).Encode(map[string]any{"events": out})
	}))
	t.Cleanup(srv.Close)
	return srv, &reqs
}

// TestRetryAfterHonoured: a 503 with Retry-After: 1 is retried no sooner
// than a second later, though the client's own backoff is a millisecond.
func TestRetryAfterHonoured(t *testing.T) {
	var first time.Time
	var gap time.Duration
	srv, reqs := fakeAppend(t, func(n int64) (int, bool) {
		if n == 1 {
			first = time.Now()
			return http.StatusServiceUnavailable, true
		}
		gap = time.Since(first)
		return 0, false
	})
	c, _ := client.New(srv.URL, "t", client.WithOptions(client.Options{Backoff: time.Millisecond}))
	lg, err := c.LogSync(context.Background(), client.Event{Action: "a.b"})
	if err != nil || lg.Index != 0 || reqs.Load() != 2 {
		t.Fatalf("%+v %v after %d requests", lg, err, reqs.Load())
	}
	if gap < 900*time.Millisecond {
		t.Fatalf("retried after %v, Retry-After asked 1s", gap)
	}
	c.Close(context.Background())
}

// TestNotRetried: a 500 is not retried; the events are reported, by
// LogSync and Close.
func TestNotRetried(t *testing.T) {
	srv, reqs := fakeAppend(t, func(int64) (int, bool) { return http.StatusInternalServerError, false })
	c, _ := client.New(srv.URL, "t", client.WithOptions(client.Options{Backoff: time.Millisecond}))
	ctx := context.Background()
	c.Log(ctx, client.Event{Action: "a.b", ID: "x1"})
	_, err := c.LogSync(ctx, client.Event{Action: "a.b"})
	var ue *client.UndeliveredError
	var se *client.StatusError
	if !errors.As(err, &ue) || !errors.As(err, &se) || se.Status != 500 || reqs.Load() != 1 {
		t.Fatalf("LogSync: %v after %d requests", err, reqs.Load())
	}
	err = c.Close(ctx)
	if !errors.As(err, &ue) || len(ue.Events) != 1 || ue.Events[0].ID != "x1" {
		t.Fatalf("Close: %v", err)
	}
}

// TestMaxAttempts: with WithRetry(3, 0), a batch answered 503 every time
// is sent 3 times and then reported.
func TestMaxAttempts(t *testing.T) {
	srv, reqs := fakeAppend(t, func(int64) (int, bool) { return http.StatusServiceUnavailable, false })
	c, _ := client.New(srv.URL, "t", client.WithOptions(client.Options{Backoff: time.Millisecond}), client.WithRetry(3, 0))
	_, err := c.LogSync(context.Background(), client.Event{Action: "a.b"})
	var ue *client.UndeliveredError
	if !errors.As(err, &ue) || reqs.Load() != 3 {
		t.Fatalf("%v after %d requests", err, reqs.Load())
	}
	c.Close(context.Background())
}

// TestCloseDeadline: Close whose context ends while the server keeps
// answering 503 returns then, reporting every queued event as undelivered.
func TestCloseDeadline(t *testing.T) {
	srv, _ := fakeAppend(t, func(int64) (int, bool) { return http.StatusServiceUnavailable, false })
	c, _ := client.New(srv.URL, "t", client.WithOptions(client.Options{Backoff: 10 * time.Millisecond}), client.WithBatch(2, time.Millisecond))
	for i := range 5 {
		if err := c.Log(context.Background(), client.Event{Action: "a.b", ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Close(ctx)
	var ue *client.UndeliveredError
	if !errors.As(err, &ue) || len(ue.Events) != 5 {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v after its deadline", d)
	}
}

// TestQueueFull: a full queue blocks Log up to the block timeout, or drops
// at once with WithDropOnFull; both count in Dropped.
func TestQueueFull(t *testing.T) {
	for _, drop := range []bool{false, true} {
		release := make(chan struct{})
		var once sync.Once
		srv, _ := fakeAppend(t, func(int64) (int, bool) { <-release; return 0, false })
		defer once.Do(func() { close(release) })
		opts := []client.Option{client.WithQueueSize(2), client.WithBatch(1, time.Millisecond), client.WithBlockOnFull(100 * time.Millisecond)}
		if drop {
			opts = append(opts, client.WithDropOnFull())
		}
		c, _ := client.New(srv.URL, "t", opts...)
		ctx := context.Background()
		var full int
		start := time.Now()
		for i := range 6 { // one in flight, two queued, the rest full
			if err := c.Log(ctx, client.Event{Action: "a.b", ID: fmt.Sprint(i)}); errors.Is(err, client.ErrQueueFull) {
				full++
			} else if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				time.Sleep(50 * time.Millisecond) // let the writer take it
			}
		}
		d := time.Since(start)
		if full != 3 || c.Dropped() != 3 {
			t.Errorf("drop=%v: %d full, Dropped %d; want 3", drop, full, c.Dropped())
		}
		if !drop && d < 300*time.Millisecond || drop && d > 250*time.Millisecond {
			t.Errorf("drop=%v: took %v", drop, d)
		}
		go func() { time.Sleep(50 * time.Millisecond); once.Do(func() { close(release) }) }()
		if err := c.Close(ctx); err != nil {
			t.Errorf("drop=%v: Close: %v", drop, err)
		}
		if c.Stored() != 3 {
			t.Errorf("drop=%v: stored %d, want 3", drop, c.Stored())
		}
	}
}
