package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"indelible.dev/audited"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/internal/storetest"
	"indelible.dev/internal/tlogtest"
)

// env is a store (a ledger and its events layer, storetest) and the
// service over it, started and stopped with it as a restarted server would.
type env struct {
	*storetest.Store
	t testing.TB
	s *audited.Service
}

func newEnv(t testing.TB) *env {
	e := &env{t: t}
	e.Store = storetest.New(t, "example.com/export-test", func(s *storetest.Store) func() {
		var err error
		if e.s, err = audited.New(audited.Config{Layer: s.Layer, Log: s.Log}); err != nil {
			t.Fatal(err)
		}
		return func() { e.s.Close() }
	})
	return e
}

// appendN appends n events (actor a<k>, action doc.read or doc.write) and
// waits until they are published.
func (e *env) appendN(n int, tag string) {
	e.t.Helper()
	var evs []event.Event
	for k := range n {
		action := "doc.read"
		if k%3 == 0 {
			action = "doc.write"
		}
		evs = append(evs, event.Event{Action: action, Actor: &event.Actor{ID: fmt.Sprintf("a%d", k%5)},
			Resource: &event.Resource{ID: tag + "-" + strconv.Itoa(k)}, Outcome: "success"})
		if len(evs) == 100 || k == n-1 {
			a, err := e.Layer.Append(context.Background(), "writer", evs)
			if err != nil {
				e.t.Fatal(err)
			}
			// Durable is not published: an export reads only what is.
			if _, _, err := e.Log.WaitSize(context.Background(), a[len(a)-1].Index+1); err != nil {
				e.t.Fatal(err)
			}
			evs = nil
		}
	}
}

// ledgerSet returns index -> base64 commitment of every readable event
// below the published size, with the filter q.
func (e *env) ledgerSet(q eventstore.Query) map[int64]string {
	e.t.Helper()
	out := map[int64]string{}
	n := e.Layer.Published()
	for i := range n {
		r, err := e.Layer.Get(i)
		if errors.Is(err, eventstore.ErrNotEvent) || errors.Is(err, eventstore.ErrGone) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		if eventstore.QueryMatches(&q, &r.Event) {
			out[i] = base64.StdEncoding.EncodeToString(r.Commitment[:])
		}
	}
	return out
}

// exportedDoc is the part of an exported document the tests check.
type exportedDoc struct {
	Index      int64           `json:"index"`
	Event      json.RawMessage `json:"event"`
	Commitment string          `json:"commitment"`
	ReceiptURL string          `json:"receipt_url"`
}

// fakeHEC is Splunk's HTTP Event Collector as its public docs describe it:
// POST /services/collector/event, "Authorization: Splunk <token>", a body
// of concatenated JSON objects each with "event" (and optional "time",
// "index", "source", "sourcetype", "fields"); it answers
// {"text":"Success","code":0}, or 401 {"text":"Invalid token","code":4}.
type fakeHEC struct {
	token string
	mu    sync.Mutex
	got   map[int64]string // indelible_index -> indelible_commitment (fields)
	docs  map[int64]exportedDoc
	dups  int
	index string
	fail  int // answer 503 to this many requests first
}

func (h *fakeHEC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/services/collector/event" {
		http.Error(w, `{"text":"The requested URL was not found on this server.","code":404}`, http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Splunk "+h.token {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"text":"Invalid token","code":4}`)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail > 0 {
		h.fail--
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"text":"Server is busy","code":9}`)
		return
	}
	dec := json.NewDecoder(r.Body)
	type hecEvent struct {
		Time   *float64          `json:"time"`
		Index  string            `json:"index"`
		Event  json.RawMessage   `json:"event"`
		Fields map[string]string `json:"fields"`
	}
	var batch []hecEvent
	for {
		var ev hecEvent
		err := dec.Decode(&ev)
		if err == io.EOF {
			break
		}
		if err != nil || len(ev.Event) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"text":"Invalid data format","code":6}`)
			return
		}
		batch = append(batch, ev)
	}
	if len(batch) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"text":"No data","code":5}`)
		return
	}
	for _, ev := range batch {
		i, err := strconv.ParseInt(ev.Fields["indelible_index"], 10, 64)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"text":"Invalid data format","code":6}`)
			return
		}
		var d exportedDoc
		json.Unmarshal(ev.Event, &d)
		if _, ok := h.got[i]; ok {
			h.dups++
		}
		h.got[i] = ev.Fields["indelible_commitment"]
		h.docs[i] = d
		h.index = ev.Index
	}
	io.WriteString(w, `{"text":"Success","code":0}`)
}

func (h *fakeHEC) snapshot() map[int64]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[int64]string, len(h.got))
	for k, v := range h.got {
		out[k] = v
	}
	return out
}

// fakeBulk is Elasticsearch's _bulk API as its public docs describe it:
// POST /_bulk, NDJSON of action and source lines (the last line ending in
// a newline), answered with {"took","errors","items":[{"create":{"_index",
// "_id","status"[,"error"]}}]}: 201 for a created document, 409 with a
// version_conflict_engine_exception when the _id exists; and GET
// /<index>/_count, answered {"count":N,...}. reject429 lists
// the _ids answered 429 (es_rejected_execution_exception) the first time.
type fakeBulk struct {
	mu        sync.Mutex
	docs      map[string]exportedDoc // _id -> source
	reject429 map[string]bool
	requests  [][]string // the _ids of each request
	created   int
	conflicts int
}

func (b *fakeBulk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/_count") {
		// The count API: {"count":N,"_shards":{...}} (every index here).
		b.mu.Lock()
		n := len(b.docs)
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"count":%d,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0}}`, n)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/_bulk" {
		http.Error(w, `{"error":"no handler"}`, http.StatusNotFound)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		http.Error(w, `{"error":"bad content type"}`, http.StatusNotAcceptable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if len(body) == 0 || body[len(body)-1] != '\n' {
		http.Error(w, `{"error":{"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\n]"}}`, http.StatusBadRequest)
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	b.mu.Lock()
	defer b.mu.Unlock()
	var items []string
	var ids []string
	anyErr := false
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			http.Error(w, `{"error":{"type":"x_content_parse_exception"}}`, http.StatusBadRequest)
			return
		}
		a, ok := action["create"]
		if !ok || a.Index == "" || a.ID == "" || !sc.Scan() {
			http.Error(w, `{"error":{"type":"action_request_validation_exception"}}`, http.StatusBadRequest)
			return
		}
		var d exportedDoc
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			http.Error(w, `{"error":{"type":"mapper_parsing_exception"}}`, http.StatusBadRequest)
			return
		}
		ids = append(ids, a.ID)
		head := fmt.Sprintf(`{"create":{"_index":%q,"_id":%q,`, a.Index, a.ID)
		switch {
		case b.reject429[a.ID]:
			delete(b.reject429, a.ID)
			anyErr = true
			items = append(items, head+`"status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}}`)
		case b.docs[a.ID].Commitment != "":
			anyErr = true
			b.conflicts++
			items = append(items, head+`"status":409,"error":{"type":"version_conflict_engine_exception","reason":"document already exists"}}}`)
		default:
			b.docs[a.ID] = d
			b.created++
			items = append(items, head+`"_version":1,"result":"created","status":201}}`)
		}
	}
	b.requests = append(b.requests, ids)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"took":3,"errors":%t,"items":[%s]}`, anyErr, strings.Join(items, ","))
}

// byIndex returns index -> commitment of the stored documents, checking
// each _id against its document's index.
func (b *fakeBulk) byIndex(t testing.TB, pfx string) map[int64]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[int64]string{}
	for id, d := range b.docs {
		if id != pfx+"-"+strconv.FormatInt(d.Index, 10) {
			t.Errorf("_id %s holds the document of index %d", id, d.Index)
		}
		out[d.Index] = d.Commitment
	}
	return out
}

func writeFile(t testing.TB, dir, name, s string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func start(t testing.TB, e *env, f *File, batch int) *Runner {
	t.Helper()
	return startDelay(t, e, f, batch, 20*time.Millisecond)
}

// startDelay starts the exports of f, a partial batch waiting at most delay.
func startDelay(t testing.TB, e *env, f *File, batch int, delay time.Duration) *Runner {
	t.Helper()
	r, err := Start(f, Options{Events: e.Layer, Audit: e.s, ReceiptBase: "https://ledger.example/",
		Logger: slog.New(slog.DiscardHandler), BatchSize: batch, BatchDelay: delay,
		RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sameSet(want, got map[int64]string) (bool, string) {
	if len(want) != len(got) {
		return false, fmt.Sprintf("%d of %d events", len(got), len(want))
	}
	for i, c := range want {
		if got[i] != c {
			return false, fmt.Sprintf("index %d: commitment %q, want %q", i, got[i], c)
		}
	}
	return true, ""
}

// TestSplunkHEC: every index arrives at a fake HEC with its commitment in
// fields, the document carries the receipt URL, the token is sent as
// "Splunk <token>", a 503 is retried, and the export's start is recorded
// as an indelible.read event.
func TestSplunkHEC(t *testing.T) {
	e := newEnv(t)
	e.appendN(250, "hec")
	h := &fakeHEC{token: "hec-secret", got: map[int64]string{}, docs: map[int64]exportedDoc{}, fail: 2}
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir := t.TempDir()
	tok := writeFile(t, dir, "hec.token", "hec-secret\n")
	cfg := writeFile(t, dir, "exports.yaml", fmt.Sprintf(`exports:
  - name: splunk
    type: splunk_hec
    url: %s
    token_file: %s
    index: audit
`, srv.URL, tok))
	f, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, e, f, 64)
	defer r.Close()
	tlogtest.Eventually(t, 20*time.Second, "every event at the HEC", func() (bool, string) {
		return sameSet(e.ledgerSet(eventstore.Query{}), h.snapshot())
	})
	h.mu.Lock()
	d := h.docs[7]
	idx := h.index
	h.mu.Unlock()
	if d.Index != 7 || d.ReceiptURL != "https://ledger.example/v1/events/7/receipt" || len(d.Event) == 0 {
		t.Errorf("document of index 7: %+v", d)
	}
	if idx != "audit" {
		t.Errorf("HEC index %q, want audit", idx)
	}
	p, err := e.Layer.List(eventstore.Query{Action: audited.ActionRead, Actor: ActorPrefix + "splunk"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 1 {
		t.Errorf("%d indelible.read events for the export's start, want 1", len(p.Records))
	}
}

// TestElasticBulk429RetriedAlone: a bulk item answered 429 is sent again
// alone (the next request holds only it); a 409 (already there) counts as
// delivered; _id is <origin hash>-<index>.
func TestElasticBulk429RetriedAlone(t *testing.T) {
	e := newEnv(t)
	e.appendN(40, "bulk")
	pfx := originHash(e.Layer.Origin())
	b := &fakeBulk{docs: map[string]exportedDoc{}, reject429: map[string]bool{pfx + "-17": true}}
	// Index 3 is already in Elasticsearch (a resend): 409, not a failure.
	b.docs[pfx+"-3"] = exportedDoc{Index: 3, Commitment: e.ledgerSet(eventstore.Query{})[3]}
	srv := httptest.NewServer(b)
	defer srv.Close()
	f, err := Parse(fmt.Appendf(nil, "exports:\n  - {name: es, type: elastic_bulk, url: %q, index: audit}\n", srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	// The 40 events are published (appendN): with a delay well above the
	// time to stream them, the first request holds them all even on a
	// loaded machine (with 20 ms it once held 20).
	r := startDelay(t, e, f, 1000, 500*time.Millisecond)
	defer r.Close()
	tlogtest.Eventually(t, 20*time.Second, "every event in the fake Elasticsearch", func() (bool, string) {
		return sameSet(e.ledgerSet(eventstore.Query{}), b.byIndex(t, pfx))
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.requests) < 2 {
		t.Fatalf("%d bulk requests, want the batch then the retry", len(b.requests))
	}
	if first := b.requests[0]; len(first) < 40 {
		t.Errorf("first request has %d items, want the whole batch", len(first))
	}
	if retry := b.requests[1]; len(retry) != 1 || retry[0] != pfx+"-17" {
		t.Errorf("second request %v, want only %s-17", retry, pfx)
	}
	if b.conflicts != 1 {
		t.Errorf("%d conflicts, want 1 (index 3)", b.conflicts)
	}
}

// TestRestartNoGap: the layer is closed mid-export (the store and the
// process's state gone, as in a restart) and reopened with more events:
// the exported set equals the ledger's, with no gap, and the cursor kept
// in the store bounds what is sent again (the fake counts the conflicts).
func TestRestartNoGap(t *testing.T) {
	e := newEnv(t)
	e.appendN(600, "one")
	b := &fakeBulk{docs: map[string]exportedDoc{}, reject429: map[string]bool{}}
	srv := httptest.NewServer(b)
	defer srv.Close()
	f, err := Parse(fmt.Appendf(nil, "exports:\n  - {name: es, type: elastic_bulk, url: %q, index: audit}\n", srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	pfx := originHash(e.Layer.Origin())
	r := start(t, e, f, 50)
	tlogtest.Eventually(t, 20*time.Second, "a part of the events exported", func() (bool, string) {
		n := len(b.byIndex(t, pfx))
		return n >= 100, fmt.Sprintf("%d exported", n)
	})
	r.Close()
	e.Close()
	before := len(b.byIndex(t, pfx))
	e.Open()
	cur, err := e.Layer.ExportCursor("es")
	if err != nil {
		t.Fatal(err)
	}
	if cur == 0 || int(cur) > before {
		t.Errorf("stored cursor %d with %d exported", cur, before)
	}
	e.appendN(300, "two")
	r = start(t, e, f, 50)
	defer r.Close()
	tlogtest.Eventually(t, 20*time.Second, "every event exported after the restart", func() (bool, string) {
		return sameSet(e.ledgerSet(eventstore.Query{}), b.byIndex(t, pfx))
	})
	b.mu.Lock()
	conflicts := b.conflicts
	b.mu.Unlock()
	if conflicts > 50 {
		t.Errorf("%d events resent after the restart, want at most one batch (50)", conflicts)
	}
	tlogtest.Eventually(t, 10*time.Second, "the cursor at the published size", func() (bool, string) {
		c, _ := e.Layer.ExportCursor("es")
		return c == e.Layer.Published(), fmt.Sprintf("cursor %d, size %d", c, e.Layer.Published())
	})
}

// TestFilterAndErased: only the events passing the filter are exported,
// an erased event is skipped, and the NDJSON sink sends one document per
// line with the bearer token.
func TestFilterAndErased(t *testing.T) {
	e := newEnv(t)
	e.appendN(60, "f")
	if _, err := e.Layer.Erase(context.Background(), 3, "admin", "test"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[int64]string{}
	badAuth := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer nd-token" {
			mu.Lock()
			badAuth++
			mu.Unlock()
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(nil, 1<<20)
		mu.Lock()
		defer mu.Unlock()
		for sc.Scan() {
			var d exportedDoc
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			got[d.Index] = d.Commitment
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	tok := writeFile(t, dir, "t", "nd-token")
	f, err := Load(writeFile(t, dir, "x.yaml", fmt.Sprintf(
		"exports:\n  - name: nd\n    type: http_ndjson\n    url: %s/ingest\n    token_file: %s\n    filter: {action: doc.write}\n", srv.URL, tok)))
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, e, f, 7)
	defer r.Close()
	q := eventstore.Query{Action: "doc.write"}
	want := e.ledgerSet(q)
	if _, ok := want[3]; ok {
		t.Fatal("the erased event is still readable")
	}
	tlogtest.Eventually(t, 20*time.Second, "the matching events exported", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		cp := make(map[int64]string, len(got))
		for k, v := range got {
			cp[k] = v
		}
		return sameSet(want, cp)
	})
	mu.Lock()
	defer mu.Unlock()
	if badAuth != 0 {
		t.Errorf("%d requests without the token", badAuth)
	}
}

// TestDocument: the exported document is the record as the events API
// writes it plus the receipt URL, valid JSON whatever the base URL holds.
func TestDocument(t *testing.T) {
	r := eventstore.Record{Index: 42, EventBytes: []byte(`{"action":"a.b"}`)}
	for _, base := range []string{"https://ledger.example/", `https://ledger.example/a"b\c<d>/`} {
		b, err := document(&r, receiptPrefix(base))
		if err != nil {
			t.Fatal(err)
		}
		var d exportedDoc
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if want := base + "v1/events/42/receipt"; d.Index != 42 || d.ReceiptURL != want || string(d.Event) != `{"action":"a.b"}` {
			t.Errorf("%s: index %d, receipt_url %q (want %q), event %s", b, d.Index, d.ReceiptURL, want, d.Event)
		}
	}
}
