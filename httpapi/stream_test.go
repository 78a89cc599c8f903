package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"indelible.dev/auth"
	"indelible.dev/client"
	"indelible.dev/eventstore"
)

// sseEvent is one server-sent event or comment line read from a stream.
type sseEvent struct {
	id, data, comment string
}

// readSSE reads a stream until it ends (or until timeout) and returns its
// events and comments in order, and whether it ended by itself.
func readSSE(t testing.TB, body io.Reader, timeout time.Duration, stop func([]sseEvent) bool) ([]sseEvent, bool) {
	t.Helper()
	var mu sync.Mutex
	var evs []sseEvent
	done := make(chan bool, 1)
	go func() {
		br := bufio.NewReader(body)
		var cur sseEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				done <- true
				return
			}
			line = strings.TrimSuffix(line, "\n")
			mu.Lock()
			switch {
			case line == "" && cur.data != "":
				evs = append(evs, cur)
				cur = sseEvent{}
			case strings.HasPrefix(line, ":"):
				evs = append(evs, sseEvent{comment: line})
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			}
			s := stop != nil && stop(evs)
			mu.Unlock()
			if s {
				done <- false
				return
			}
		}
	}()
	var ended bool
	select {
	case ended = <-done:
	case <-time.After(timeout):
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]sseEvent(nil), evs...), ended
}

// openStream opens the event stream at path with the secret and an
// optional Last-Event-ID.
func (te *testEvents) openStream(t testing.TB, path, secret, lastID string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, te.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestEventsStreamResumePastLog checks a stream resumed past the published
// log (Last-Event-ID or ?cursor=, up to the index whose next+1 overflows)
// is refused with 400 naming the index and the log's size, before anything
// is recorded; it used to be accepted, then spin a core forever.
func TestEventsStreamResumePastLog(t *testing.T) {
	te := newTestEvents(t)
	te.append("application/json", `{"action":"a"}`)
	te.waitPublished(t)
	cp, _ := te.l.Published()
	reads := len(te.readEvents(t))
	for _, resume := range []string{fmt.Sprint(cp.N), "9223372036854775806", "9223372036854775807"} {
		for _, how := range []string{"header", "cursor"} {
			path, lastID := "/v1/events/stream", resume
			if how == "cursor" {
				path, lastID = path+"?cursor="+resume, ""
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, te.url+path, nil)
			req.Header.Set("Authorization", "Bearer "+te.tok["read"])
			if lastID != "" {
				req.Header.Set("Last-Event-ID", lastID)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			var eb errorBody
			json.Unmarshal(b, &eb)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(eb.Error, resume) || !strings.Contains(eb.Error, fmt.Sprintf("it has %d events", cp.N)) {
				t.Fatalf("resume %s by %s: %d %q, want 400 naming the index and the size", resume, how, resp.StatusCode, b)
			}
		}
	}
	if got := len(te.readEvents(t)); got != reads {
		t.Fatalf("refused streams recorded %d reads", got-reads)
	}
	// The last index is a fine resume point.
	resp := te.openStream(t, "/v1/events/stream", te.tok["read"], fmt.Sprint(cp.N-1))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resume after the last index: %d", resp.StatusCode)
	}
}

// TestEventsStreamRevoked revokes a token mid-stream: the stream it opened
// ends within a heartbeat, says why, and delivers no event appended after
// the revocation (it used to deliver every new event for as long as the
// connection lived).
func TestEventsStreamRevoked(t *testing.T) {
	te := newTestEvents(t)
	_, secret, err := te.tokens.Create("watcher", []auth.Scope{auth.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	te.secrets.Add("token watcher", secret)
	resp := te.openStream(t, "/v1/events/stream?action=watched", secret, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	before := te.append("application/json", `{"action":"watched"}`)
	got, _ := readSSE(t, resp.Body, 5*time.Second, func(evs []sseEvent) bool {
		return len(evs) > 0 && evs[len(evs)-1].data != ""
	})
	if n := len(got); n == 0 || got[n-1].id != fmt.Sprint(before[0]) {
		t.Fatalf("before revocation: %+v, want event %d", got, before[0])
	}
	if err := te.tokens.Revoke("watcher"); err != nil {
		t.Fatal(err)
	}
	after := te.append("application/json", `{"action":"watched"}`)
	te.waitPublished(t)
	rest, ended := readSSE(t, resp.Body, 5*time.Second, nil)
	for _, e := range rest {
		if e.data != "" {
			t.Errorf("event %s delivered after the token was revoked (appended as %d)", e.id, after[0])
		}
	}
	if !ended {
		t.Fatalf("the stream of a revoked token is still open 5 s later (%d lines since)", len(rest))
	}
	if n := len(rest); n == 0 || !strings.Contains(rest[n-1].comment, `token "watcher" is no longer valid`) {
		t.Errorf("the stream ended without saying why (%d lines)", len(rest))
	}
}

// TestEventsStreamMaxAge caps a stream's lifetime: the connection ends with
// the reconnect comment, and client.Stream resumes at once with
// Last-Event-ID (audited again), missing and repeating no event, even when
// it started at "the next event appended".
func TestEventsStreamMaxAge(t *testing.T) {
	te := newTestEvents(t, func(c *Config) { c.StreamMaxAge = 300 * time.Millisecond })
	te.append("application/json", `{"action":"seed"}`)
	te.waitPublished(t)

	// Raw: the connection closes with the reconnect comment.
	resp := te.openStream(t, "/v1/events/stream", te.tok["read"], "")
	evs, ended := readSSE(t, resp.Body, 5*time.Second, nil)
	if n := len(evs); !ended || n == 0 || !strings.HasPrefix(evs[n-1].comment, StreamReconnect) {
		t.Fatalf("stream past its lifetime: ended %v after %d lines, want it ended with %q", ended, len(evs), StreamReconnect)
	}

	// Through the client: every event, once, in order, across several
	// lifetimes.
	c, err := client.New(te.url, "", client.WithOptions(client.Options{Token: te.tok["read"], Backoff: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	reads := len(te.readEvents(t))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var got []int64
	var want []int64
	done := make(chan error, 1)
	go func() {
		done <- c.Stream(ctx, client.Query{Action: "tick"}, -1, func(r client.Record) error {
			got = append(got, r.Index)
			if len(got) == 8 {
				cancel()
			}
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond) // the stream is open
	for range 8 {
		want = append(want, te.append("application/json", `{"action":"tick"}`)...)
		time.Sleep(150 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ctx.Err() == context.DeadlineExceeded {
		t.Fatalf("client got %v in 30 s, want %v (a backoff of an hour means it did not reconnect at once)", got, want)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("client got %v, want %v", got, want)
	}
	if n := len(te.readEvents(t)) - reads; n < 3 {
		t.Fatalf("%d stream reads recorded over ~1.2 s of 300 ms lifetimes, want each reconnection audited", n)
	}
}

// TestEventsStreamClientResumesFromStart: a client.Stream started at "the
// next event appended" (after < 0) whose first connection ends before any
// event arrived resumes where that stream started, not at the next event
// appended then: an event appended while it was reconnecting is delivered.
func TestEventsStreamClientResumesFromStart(t *testing.T) {
	te := newTestEvents(t, func(c *Config) { c.StreamMaxAge = 300 * time.Millisecond })
	te.append("application/json", `{"action":"seed"}`)
	te.waitPublished(t)
	// The second stream request waits until the test lets it through.
	var mu sync.Mutex
	n := 0
	reconnecting, release := make(chan struct{}), make(chan struct{})
	h := te.srv.Handler()
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/events/stream" {
			mu.Lock()
			n++
			k := n
			mu.Unlock()
			if k == 2 {
				close(reconnecting)
				<-release
			}
		}
		h.ServeHTTP(w, r)
	}))
	defer ws.Close()
	c, err := client.New(ws.URL, "", client.WithOptions(client.Options{Token: te.tok["read"]}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got := make(chan int64, 10)
	go c.Stream(ctx, client.Query{Action: "gap"}, -1, func(r client.Record) error {
		got <- r.Index
		return nil
	})
	select {
	case <-reconnecting:
	case <-ctx.Done():
		t.Fatal("the client did not reconnect after the stream's lifetime")
	}
	idx := te.append("application/json", `{"action":"gap"}`)
	te.waitPublished(t)
	close(release)
	select {
	case i := <-got:
		if i != idx[0] {
			t.Fatalf("got event %d, want %d", i, idx[0])
		}
	case <-ctx.Done():
		t.Fatalf("event %d, appended while the client reconnected, never arrived", idx[0])
	}
}

// FuzzStreamResume opens the stream with arbitrary Last-Event-ID values
// through the real handler: each is refused with 400 or streams, and every
// request returns soon after its context ends (a resume index that
// overflowed used to spin forever, deaf to it).
func FuzzStreamResume(f *testing.F) {
	for _, s := range []string{"0", "1", "2", "9223372036854775806", "9223372036854775807", "9223372036854775808", "-1", "", "01", "1e3", " 1"} {
		f.Add(s)
	}
	te := newTestEvents(f)
	te.append("application/json", `{"action":"a"}`)
	te.waitPublished(f)
	h := te.srv.Handler()
	f.Fuzz(func(t *testing.T, id string) {
		if strings.ContainsAny(id, "\r\n\x00") {
			return // not a header value
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/events/stream", nil)
		req.Header.Set("Authorization", "Bearer "+te.tok["read"])
		req.Header.Set("Last-Event-ID", id)
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(rec, req)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Last-Event-ID %q: the handler still runs 5 s after its context ended", id)
		}
		// A 500 is the read's record not durable before the client left
		// (the context ended first): nothing was sent.
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest && !(rec.Code == http.StatusInternalServerError && ctx.Err() != nil) {
			t.Fatalf("Last-Event-ID %q: status %d: %s", id, rec.Code, rec.Body)
		}
	})
}

// FuzzHistogramRange asks the real handler for histograms of arbitrary
// ranges and bucket widths: never a 5xx (a range of centuries used to
// panic), and a 200 has at most eventstore.MaxHistogramBuckets buckets.
func FuzzHistogramRange(f *testing.F) {
	f.Add(int64(0), int64(3600), "1m")
	f.Add(int64(-30610224000), int64(29379542400), "1s") // 1000 to 2900
	f.Add(int64(-30610224000), int64(29379542400), "876600h")
	f.Add(int64(-62135596800), int64(253402300799), "2562047h")
	te := newTestEvents(f)
	te.append("application/json", `{"action":"a"}`)
	te.waitPublished(f)
	h := te.srv.Handler()
	f.Fuzz(func(t *testing.T, since, until int64, bucket string) {
		q := url.Values{"since": {time.Unix(since, 0).UTC().Format(time.RFC3339)}, "until": {time.Unix(until, 0).UTC().Format(time.RFC3339)}, "bucket": {bucket}}
		req := httptest.NewRequest(http.MethodGet, "/v1/events/histogram?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+te.tok["read"])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s: status %d: %s", q.Encode(), rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK {
			var hb histogramBody
			if err := json.Unmarshal(rec.Body.Bytes(), &hb); err != nil || len(hb.Buckets) > eventstore.MaxHistogramBuckets || len(hb.Buckets) == 0 {
				t.Fatalf("%s: %d buckets, %v", q.Encode(), len(hb.Buckets), err)
			}
		}
	})
}
