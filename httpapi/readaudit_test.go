package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"indelible.dev/audited"
	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/ledger"
)

// readEvents returns every indelible.read event in the log, as
// "submitted_by actor.id metadata" strings (metadata canonical JSON).
func (te *testEvents) readEvents(t testing.TB) []string {
	t.Helper()
	var out []string
	q := eventstore.Query{Action: ActionRead, Limit: eventstore.MaxLimit}
	for {
		page, err := te.layer.List(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			e := r.Event
			if e.Actor == nil || e.Source != auth.EventSource {
				t.Fatalf("read event %d: %s", r.Index, r.EventBytes)
			}
			out = append(out, e.SubmittedBy+" "+e.Actor.ID+" "+string(e.Metadata))
		}
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
}

// waitPublished waits until the published checkpoint covers every entry
// appended so far (queries see only published events), by appending a
// marker event and waiting for it.
func (te *testEvents) waitPublished(t testing.TB) {
	t.Helper()
	res, err := te.layer.Append(t.Context(), "test", []event.Event{{Action: "test.marker"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := te.l.WaitSize(t.Context(), res[0].Index+1); err != nil {
		t.Fatal(err)
	}
}

// canonicalMeta is the metadata a read event carries for meta.
func canonicalMeta(t testing.TB, meta readMeta) string {
	ev, err := audited.ReadEvent("x", meta)
	if err != nil {
		t.Fatal(err)
	}
	b, err := event.Canonical(ev)
	if err != nil {
		t.Fatal(err)
	}
	var e event.Event
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return string(e.Metadata)
}

// TestReadAuditConcurrent: 64 concurrent readers over 8 tokens doing mixed
// reads (queries with a filter unique to the read, records, receipts,
// streams); afterwards each successful read has exactly one indelible.read
// event attributed to its token, with its route and filters or index, and
// no other read event exists. The events were group-committed (fewer
// batches than events).
func TestReadAuditConcurrent(t *testing.T) {
	te := newTestEvents(t)
	seed := te.append("application/x-ndjson", strings.Repeat("{\"action\":\"seed\"}\n", 8))
	te.waitPublished(t)
	var secrets []string
	for k := range 8 {
		_, s, err := te.tokens.Create(fmt.Sprintf("reader%d", k), []auth.Scope{auth.ScopeRead})
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, s)
	}
	const readers, perReader = 64, 8
	var mu sync.Mutex
	var want []string
	failed := 0
	hc := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for g := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name, secret := fmt.Sprintf("reader%d", g%8), secrets[g%8]
			for j := range perReader {
				var path string
				var meta readMeta
				i := seed[(g+j)%len(seed)]
				switch j % 4 {
				case 0:
					v := url.Values{"actor": {fmt.Sprintf("who-%d-%d", g, j)}, "limit": {"5"}}
					path, meta = routeEvents+"?"+v.Encode(), queryMeta(routeEvents, v)
				case 1:
					path, meta = fmt.Sprintf("/v1/events/%d", i), indexMeta(routeEvent, i)
				case 2:
					path, meta = fmt.Sprintf("/v1/events/%d/receipt", i), indexMeta(routeReceipt, i)
				case 3:
					v := url.Values{"resource": {fmt.Sprintf("res-%d-%d", g, j)}}
					path, meta = routeStream+"?"+v.Encode(), queryMeta(routeStream, v)
				}
				req, _ := http.NewRequest(http.MethodGet, te.url+path, nil)
				req.Header.Set("Authorization", "Bearer "+secret)
				resp, err := hc.Do(req)
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					if j%4 == 3 && ok {
						// The stream answered: its first line is sent once
						// the read is recorded.
						bufio.NewReader(resp.Body).ReadString('\n')
					}
					resp.Body.Close()
				}
				mu.Lock()
				if ok {
					want = append(want, name+" "+name+" "+canonicalMeta(t, meta))
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed != 0 {
		t.Fatalf("%d of %d reads failed", failed, readers*perReader)
	}
	te.waitPublished(t)
	got := te.readEvents(t)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("missing read event %s", w)
			}
		}
		t.Fatalf("%d read events, want %d", len(got), len(want))
	}
	batches := metricValue(t, te.srv, "indelible_read_audit_batches_total")
	recorded := metricValue(t, te.srv, "indelible_read_audit_events_total")
	if recorded != float64(len(want)) || batches < 1 || batches >= recorded {
		t.Fatalf("metrics: %v read events recorded in %v batches, want %d in fewer batches", recorded, batches, len(want))
	}
	t.Logf("%d reads recorded in %v batches", len(want), batches)
}

// TestReadAuditFailures: a read whose event cannot be recorded returns no
// event data: a full queue is 503 with Retry-After, a failing log 500 (a
// stopped ledger) or 503 (pushback); a read of the read events themselves
// is recorded once, and a stream of them adds no event per record sent.
func TestReadAuditFailures(t *testing.T) {
	te := newTestEvents(t)
	idx := te.append("application/json", `{"action":"secret-stuff","reason":"do not leak"}`)
	te.waitPublished(t)
	paths := []string{"/v1/events", fmt.Sprintf("/v1/events/%d", idx[0]), fmt.Sprintf("/v1/events/%d/receipt", idx[0]), "/v1/events/stream"}

	// A read whose event cannot be recorded: the layer is closed (503),
	// and then the audit service too (503). The batcher's own failures
	// (a stopped log, a full queue) are audited's tests; the statuses of
	// their errors are in TestReadAuditStatuses.
	for _, tc := range []struct {
		name  string
		close func()
	}{
		{"closed service", func() { te.srv.audit.Close() }},
	} {
		tc.close()
		for _, p := range paths {
			status, hdr, b := te.req(http.MethodGet, p, "read", "", nil)
			if status != 503 || hdr.Get("Retry-After") == "" || strings.Contains(string(b), "secret-stuff") || strings.Contains(string(b), "do not leak") {
				t.Errorf("%s: GET %s: %d %s, want 503 with Retry-After and no event data", tc.name, p, status, b)
			}
		}
	}
	if got := te.readEvents(t); len(got) != 0 {
		t.Fatalf("failed reads left read events: %q", got)
	}
	// Serve again, with a new service over the same layer.
	te.srv.audit, _ = audited.New(audited.Config{Layer: te.layer, Log: te.l, Tokens: te.tokens})

	// Reading the read events: each query recorded once, the stream once
	// per connection, however many read events it delivers.
	for range 3 {
		if status, _, b := te.req(http.MethodGet, "/v1/events?action="+ActionRead, "read", "", nil); status != 200 {
			t.Fatalf("query: %d %s", status, b)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, te.url+"/v1/events/stream?cursor=0&action="+ActionRead, nil)
	req.Header.Set("Authorization", "Bearer "+te.tok["read"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	br := bufio.NewReader(resp.Body)
	seen := 0
	for seen < 4 { // three queries and the stream's own event
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "id: ") {
			seen++
		}
	}
	// Heartbeats pass (50 ms): nothing more is recorded meanwhile.
	time.Sleep(300 * time.Millisecond)
	cancel()
	resp.Body.Close()
	te.waitPublished(t)
	if got := te.readEvents(t); len(got) != 4 {
		t.Fatalf("%d read events after 3 queries and a stream delivering 4, want 4: %q", len(got), got)
	}
}

// TestReadAuditLatency measures read latency with and without read
// auditing (the same server, auditing switched off by dropping its
// auditor). Set INDELIBLE_READ_AUDIT_BENCH=1 to run it.
func TestReadAuditLatency(t *testing.T) {
	if os.Getenv("INDELIBLE_READ_AUDIT_BENCH") == "" {
		t.Skip("set INDELIBLE_READ_AUDIT_BENCH=1 to measure")
	}
	te := newTestEvents(t)
	var nd strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&nd, "{\"action\":\"a%d\",\"actor\":{\"id\":\"u%d\"}}\n", i%10, i%50)
	}
	te.append("application/x-ndjson", nd.String())
	te.waitPublished(t)
	reads := te.srv.audit
	for _, mode := range []string{"audited", "not audited", "audited", "not audited"} {
		if mode == "audited" {
			te.srv.audit = reads
		} else {
			te.srv.audit = nil
		}
		for _, conc := range []int{1, 16} {
			lat := measureReads(t, te, conc, 2*time.Second)
			slices.Sort(lat)
			t.Logf("%-12s %2d readers: %6d reads, p50 %v p99 %v", mode, conc, len(lat), lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond))
		}
	}
	te.srv.audit = reads
}

func measureReads(t *testing.T, te *testEvents, conc int, d time.Duration) []time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for j := 0; time.Now().Before(deadline); j++ {
				path := fmt.Sprintf("/v1/events/%d", (g*31+j)%1000)
				if j%2 == 1 {
					path = fmt.Sprintf("/v1/events?actor=u%d&limit=10", j%50)
				}
				req, _ := http.NewRequest(http.MethodGet, te.url+path, nil)
				req.Header.Set("Authorization", "Bearer "+te.tok["read"])
				start := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var sink json.RawMessage
				json.NewDecoder(resp.Body).Decode(&sink)
				resp.Body.Close()
				el := time.Since(start)
				if resp.StatusCode != 200 {
					t.Errorf("GET %s: %d", path, resp.StatusCode)
					return
				}
				mu.Lock()
				lat = append(lat, el)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat
}

// TestReadAuditHistogram: the console's histogram (counts of matching
// events) is a read of event content too, recorded with its filters.
func TestReadAuditHistogram(t *testing.T) {
	te := newTestEvents(t)
	v := url.Values{"since": {"2026-01-01T00:00:00Z"}, "bucket": {"24h"}, "actor": {"alice"}}
	if status, _, b := te.req(http.MethodGet, routeHistogram+"?"+v.Encode(), "read", "", nil); status != 200 {
		t.Fatalf("histogram: %d %s", status, b)
	}
	te.waitPublished(t)
	want := []string{"read read " + canonicalMeta(t, queryMeta(routeHistogram, v))}
	if got := te.readEvents(t); !slices.Equal(got, want) {
		t.Fatalf("read events %q, want %q", got, want)
	}
}

// TestReadAuditStatuses: the errors of a read that could not be recorded
// answer as the table says: a stopped log 500, pushback and a full or
// closed batcher 503.
func TestReadAuditStatuses(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
	}{
		{ledger.ErrFailed, 500},
		{ledger.ErrPushback, 503},
		{eventstore.ErrClosed, 503},
		{audited.ErrBusy, 503},
		{audited.ErrClosed, 503},
	} {
		err := fmt.Errorf("recording the read: recording the read in the log: %w", tc.err)
		if got := statusOf(err); got != tc.status {
			t.Errorf("statusOf(%v) = %d, want %d", err, got, tc.status)
		}
	}
}

// metricValue returns the value of the counter or gauge name in srv's
// metrics.
func metricValue(t testing.TB, srv *Server, name string) float64 {
	t.Helper()
	mfs, err := srv.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			m := mf.Metric[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
