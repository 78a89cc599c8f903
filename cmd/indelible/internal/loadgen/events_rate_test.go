package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// TestEventsAtRateOpenLoop checks the open loop against a slow server with
// one request in flight: every scheduled request is sent, with every event
// numbered once (time and id), and latency is counted from each request's
// send time, so the queue the server causes shows (a closed loop would
// report about the server's 20 ms for every request).
func TestEventsAtRateOpenLoop(t *testing.T) {
	var (
		mu    sync.Mutex
		seen  = map[int64]int{}
		query = map[string]int{}
		bad   []string
	)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		query[r.URL.RawQuery]++
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/x-ndjson" {
			bad = append(bad, "headers")
		}
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			var e struct {
				ID   string    `json:"id"`
				Time time.Time `json:"time"`
			}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				bad = append(bad, err.Error())
				continue
			}
			_, num, _ := strings.Cut(e.ID, "-")
			k, err := strconv.ParseInt(num, 10, 64)
			if err != nil || !e.Time.Equal(EventsBase.Add(time.Duration(k)*time.Millisecond)) {
				bad = append(bad, "event "+e.ID+" at "+e.Time.String())
			}
			seen[k]++
		}
		w.Write([]byte("{}"))
	}))
	defer hs.Close()
	const start = 1000
	r, err := EventsAtRate(context.Background(), RateConfig{URL: hs.URL, Token: "tok", Rate: 200, PerRequest: 3,
		Duration: 200 * time.Millisecond, Start: start, IDs: true, WaitCheckpoint: true, MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 40 || r.Events != 120 || r.Errors != 0 || len(r.Latencies) != 40 {
		t.Fatalf("%d requests, %d events, %d errors (%v), %d latencies; want 40, 120, 0, 40", r.Requests, r.Events, r.Errors, r.FirstErr, len(r.Latencies))
	}
	if len(bad) > 0 || len(seen) != 120 || query["wait=checkpoint"] != 40 {
		t.Fatalf("server saw %d distinct events, queries %v, problems %q", len(seen), query, bad)
	}
	for k := int64(start); k < start+120; k++ {
		if seen[k] != 1 {
			t.Fatalf("event %d sent %d times", k, seen[k])
		}
	}
	// 40 requests of at least 20 ms each, one at a time, take 0.8 s; the
	// last was due at 0.195 s, so it waited at least 0.6 s.
	if mx := r.Latencies[len(r.Latencies)-1]; mx < 550*time.Millisecond {
		t.Errorf("max latency %v: the wait for a free connection was not counted", mx)
	}
	if r.Latencies[0] < 20*time.Millisecond {
		t.Errorf("min latency %v, below the server's 20 ms", r.Latencies[0])
	}
	t.Log(r)

	for _, bad := range []RateConfig{{Rate: 0, PerRequest: 1, Duration: time.Second}, {Rate: 1, PerRequest: 0, Duration: time.Second},
		{Rate: 1, PerRequest: 1}, {Rate: 1, PerRequest: 1, Duration: time.Second, MaxInFlight: -1}} {
		if _, err := EventsAtRate(context.Background(), bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestEventsAtRateRealServer is the fixed-rate benchmark's smoke run: a
// real pebble store behind the real API, 50 requests/s of 20 events for
// half a second, plain and with ?wait=checkpoint: every event is
// acknowledged and stored, and each wait=checkpoint reply carries receipts.
func TestEventsAtRateRealServer(t *testing.T) {
	skey, _, err := note.GenerateKey(rand.Reader, "example.com/ratesmoke")
	if err != nil {
		t.Fatal(err)
	}
	b := openBench(t, t.TempDir(), skey)
	defer b.close()
	for _, wait := range []bool{false, true} {
		n0 := b.size()
		r, err := EventsAtRate(t.Context(), RateConfig{URL: b.hs.URL, Token: b.tok, Rate: 50, PerRequest: 20,
			Duration: 500 * time.Millisecond, Start: n0, IDs: true, WaitCheckpoint: wait})
		if err != nil {
			t.Fatal(err)
		}
		if r.Errors != 0 || r.Requests != 25 || r.Events != 500 {
			t.Fatalf("wait %v: %s; first error %v", wait, r, r.FirstErr)
		}
		if got := b.size() - n0; got != 500 {
			t.Fatalf("wait %v: the log grew by %d entries, want 500", wait, got)
		}
		if wait && b.published() < b.size() {
			t.Fatalf("wait=checkpoint replies came before the checkpoint: published %d of %d", b.published(), b.size())
		}
		t.Log(r)
	}
	// A wait=checkpoint reply holds a receipt per event.
	body := patchEvents(nil, EventLine(nil, 0), []int{timeOffset}, nil, b.size())
	req, _ := http.NewRequest(http.MethodPost, b.hs.URL+"/v1/events?wait=checkpoint", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+b.tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply struct{ Events []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil || resp.StatusCode != 200 || len(reply.Events) != 1 || reply.Events[0]["receipt"] == nil {
		t.Fatalf("status %d, reply %+v, %v", resp.StatusCode, reply, err)
	}
}
