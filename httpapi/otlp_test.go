package httpapi

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"golang.org/x/mod/sumdb/note"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
	"indelible.dev/otlp"
)

const goldenOTLP = "../testdata/otlp"

// postLogs posts body to POST /v1/logs as token with the content type and
// encoding given ("" for none).
func (te *testEvents) postLogs(token, ct, encoding string, body []byte) (int, http.Header, []byte) {
	te.t.Helper()
	hdr := []string{}
	if token != "" {
		secret, ok := te.tok[token]
		if !ok {
			secret = token
		}
		hdr = append(hdr, "Authorization", "Bearer "+secret)
	}
	if ct != "" {
		hdr = append(hdr, "Content-Type", ct)
	}
	if encoding != "" {
		hdr = append(hdr, "Content-Encoding", encoding)
	}
	return te.do(http.MethodPost, routeLogs, bytes.NewReader(body), hdr...)
}

// markers counts the marker events waitPublished appended, per server.
var markers sync.Map // *testEvents -> *atomic.Int64

// size returns the log's size once everything appended is published, less
// the marker events waitPublished appends to know when that is.
func (te *testEvents) size(t *testing.T) int64 {
	t.Helper()
	te.waitPublished(t)
	m, _ := markers.LoadOrStore(te, new(atomic.Int64))
	n := m.(*atomic.Int64).Add(1)
	cp, _ := te.l.Published()
	return cp.N - n
}

// allEvents returns every stored event of the given action ("" for all),
// in index order, without auditing the read.
func (te *testEvents) allEvents(t *testing.T, action string) []eventstore.Record {
	t.Helper()
	te.waitPublished(t)
	var out []eventstore.Record
	q := eventstore.Query{Action: action, Limit: eventstore.MaxLimit}
	for {
		page, err := te.layer.List(q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Records...)
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	// List is newest first by time: back to index order.
	slices.SortFunc(out, func(a, b eventstore.Record) int { return cmp.Compare(a.Index, b.Index) })
	return out
}

// partialSuccess decodes an ExportLogsServiceResponse with pdata.
func partialSuccess(t *testing.T, ct string, body []byte) (int64, string) {
	t.Helper()
	resp := plogotlp.NewExportResponse()
	var err error
	if strings.HasPrefix(ct, "application/json") {
		err = resp.UnmarshalJSON(body)
	} else {
		err = resp.UnmarshalProto(body)
	}
	if err != nil {
		t.Fatalf("reply %q does not decode as an ExportLogsServiceResponse (%s): %v", body, ct, err)
	}
	ps := resp.PartialSuccess()
	return ps.RejectedLogRecords(), ps.ErrorMessage()
}

// rpcStatus decodes a google.rpc.Status reply.
func rpcStatus(t *testing.T, ct string, body []byte) *rpcstatus.Status {
	t.Helper()
	st := &rpcstatus.Status{}
	var err error
	if strings.HasPrefix(ct, "application/json") {
		err = protojson.Unmarshal(body, st)
	} else {
		err = proto.Unmarshal(body, st)
	}
	if err != nil {
		t.Fatalf("error reply %q does not decode as a google.rpc.Status (%s): %v", body, ct, err)
	}
	return st
}

// explained reads testdata/otlp/explain.ndjson: the events of the golden
// request, by record, ("" for a refused record).
func explained(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenOTLP, "explain.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var line struct {
			Event json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		out = append(out, string(line.Event))
	}
	return out
}

// stripServer returns an event's canonical bytes less what the server
// adds (received_at, submitted_by), as indelible ingest otlp --explain
// prints them.
func stripServer(t *testing.T, e event.Event) string {
	t.Helper()
	e.ReceivedAt, e.SubmittedBy = time.Time{}, ""
	b, err := event.Canonical(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOTLPGolden posts the golden request (built with pdata) in every
// encoding: 200 with partial_success counting the one refused record
// (decoded with pdata), the other records stored exactly as explain.ndjson
// says, submitted by the token, and one indelible.ingest.rejected event.
// Posted again (a collector's retry), it stores nothing more.
func TestOTLPGolden(t *testing.T) {
	want := explained(t)
	for _, name := range []string{"logs.pb", "logs.json", "logs.pb.gz", "logs.pb.zst", "logs.json.gz"} {
		t.Run(name, func(t *testing.T) {
			te := newTestEvents(t)
			wire, err := os.ReadFile(filepath.Join(goldenOTLP, name))
			if err != nil {
				t.Fatal(err)
			}
			ct := "application/x-protobuf"
			if strings.Contains(name, ".json") {
				ct = "application/json"
			}
			before := te.size(t)
			for attempt := range 2 {
				status, hdr, body := te.postLogs("append", ct, otlp.Sniff(wire), wire)
				if status != http.StatusOK || hdr.Get("Content-Type") != ct {
					t.Fatalf("attempt %d: %d %s %q", attempt, status, hdr.Get("Content-Type"), body)
				}
				n, msg := partialSuccess(t, ct, body)
				if n != 1 || !strings.HasPrefix(msg, "log record 4 (resourceLogs[2].scopeLogs[0].logRecords[1]): no action") {
					t.Fatalf("attempt %d: partial success %d %q", attempt, n, msg)
				}
				// 5 records and the rejection, the first time only (all
				// golden records have a log.record.uid but two, which are
				// stored twice: they have no id to dedupe on).
				grew := te.size(t) - before
				if wantGrowth := []int64{6, 8}[attempt]; grew != wantGrowth {
					t.Fatalf("attempt %d: the log grew by %d, want %d", attempt, grew, wantGrowth)
				}
			}
			recs := te.allEvents(t, "")
			var got []string
			for _, r := range recs {
				e := r.Event
				if e.Action == "test.marker" || e.Action == ActionIngestRejected {
					continue
				}
				if e.SubmittedBy != "append" {
					t.Errorf("event %d submitted by %q", r.Index, e.SubmittedBy)
				}
				got = append(got, stripServer(t, e))
			}
			wantStored := []string{want[0], want[1], want[2], want[3], want[5], want[3], want[5]}
			if strings.Join(got, "\n") != strings.Join(wantStored, "\n") {
				t.Errorf("stored\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantStored, "\n"))
			}
			rej := te.allEvents(t, ActionIngestRejected)
			if len(rej) != 1 {
				t.Fatalf("%d rejection events, want 1 (the retry finds the first)", len(rej))
			}
			e := rej[0].Event
			var md rejectedMeta
			if err := json.Unmarshal(e.Metadata, &md); err != nil {
				t.Fatal(err)
			}
			if e.Actor == nil || e.Actor.ID != "append" || e.SubmittedBy != "append" || e.Source != "indelible" ||
				md.Count != 1 || md.Records != 6 || !strings.HasPrefix(md.FirstReason, "log record 4 ") || len(md.RequestSHA256) != 64 {
				t.Errorf("rejection event %s", rej[0].EventBytes)
			}
		})
	}
}

// TestOTLPRetryStoresNothingTwice: a batch whose records all carry
// log.record.uid, sent twice, is stored once; the second reply is the
// same full success.
func TestOTLPRetryStoresNothingTwice(t *testing.T) {
	te := newTestEvents(t)
	logs := plog.NewLogs()
	lrs := logs.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for i := range 50 {
		lr := lrs.AppendEmpty()
		lr.SetEventName("retry.test")
		lr.Attributes().PutStr("log.record.uid", "uid-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	pb, _ := (&plog.ProtoMarshaler{}).MarshalLogs(logs)
	before := te.size(t)
	for range 3 {
		status, hdr, body := te.postLogs("append", "application/x-protobuf", "", pb)
		if status != http.StatusOK {
			t.Fatalf("%d %s", status, body)
		}
		if n, msg := partialSuccess(t, hdr.Get("Content-Type"), body); n != 0 || msg != "" {
			t.Fatalf("partial success %d %q", n, msg)
		}
		if grew := te.size(t) - before; grew != 50 {
			t.Fatalf("the log grew by %d, want 50", grew)
		}
	}
}

// TestOTLPAllRefused: a batch of only bad records is still 200 (a 400
// would make the collector drop it with no trace), stores only the
// rejection event, and counts every record.
func TestOTLPAllRefused(t *testing.T) {
	te := newTestEvents(t)
	logs := plog.NewLogs()
	lrs := logs.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	lrs.AppendEmpty().Body().SetStr("no action")
	lrs.AppendEmpty().SetEventName("indelible.read")
	lrs.AppendEmpty().SetEventName("has space")
	js, _ := (&plog.JSONMarshaler{}).MarshalLogs(logs)
	before := te.size(t)
	status, hdr, body := te.postLogs("append", "application/json", "", js)
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", status, body)
	}
	if n, msg := partialSuccess(t, "application/json", body); n != 3 || !strings.Contains(msg, "log record 0") {
		t.Fatalf("partial success %d %q", n, msg)
	}
	if grew := te.size(t) - before; grew != 1 {
		t.Fatalf("the log grew by %d, want 1 (the rejection event)", grew)
	}
	// With --otlp-default-action, the record with no action is kept.
	te = newTestEvents(t, func(c *Config) { c.OTLPDefaultAction = "otel.log" })
	status, _, body = te.postLogs("append", "application/json", "", js)
	if n, _ := partialSuccess(t, "application/json", body); status != http.StatusOK || n != 2 {
		t.Fatalf("with a default action: %d, %d refused", status, n)
	}
	if recs := te.allEvents(t, "otel.log"); len(recs) != 1 {
		t.Fatalf("%d otel.log events, want 1", len(recs))
	}
}

// TestOTLPErrors checks every refusal of a whole request: the status, a
// google.rpc.Status body in the request's encoding with the matching code
// and a message naming the problem, and nothing stored.
func TestOTLPErrors(t *testing.T) {
	te := newTestEvents(t)
	good, _ := os.ReadFile(filepath.Join(goldenOTLP, "logs.pb"))
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestSpeed)
	zero := make([]byte, 1<<20)
	for range 64 {
		zw.Write(zero)
	}
	zw.Close()
	tooMany := plog.NewLogs()
	lrs := tooMany.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for range otlp.MaxRecords + 1 {
		lrs.AppendEmpty()
	}
	tooManyPB, _ := (&plog.ProtoMarshaler{}).MarshalLogs(tooMany)
	before := te.size(t)
	const pbCT, jsCT = "application/x-protobuf", "application/json"
	for _, tc := range []struct {
		name, token, ct, enc string
		body                 []byte
		status, code         int
		msg                  string
	}{
		{"no token", "", pbCT, "", good, 401, 16, "Bearer"},
		{"unknown token", "bogus", jsCT, "", good, 401, 16, "token"},
		{"revoked token", "revoked", pbCT, "", good, 401, 16, "token"},
		{"read scope", "read", pbCT, "", good, 403, 7, "append"},
		{"over 16 MiB", "append", pbCT, "", make([]byte, otlp.MaxRequestBytes+1), 413, 3, "16777216"},
		{"gzip bomb", "append", pbCT, "gzip", bomb.Bytes(), 413, 3, "after decompression"},
		{"too many records", "append", pbCT, "", tooManyPB, 413, 3, "10000 log records"},
		{"text/plain", "append", "text/plain", "", good, 415, 12, "application/x-protobuf"},
		{"no content type", "append", "", "", good, 415, 12, "Content-Type"},
		{"brotli", "append", pbCT, "br", good, 415, 12, "Content-Encoding"},
		{"garbage protobuf", "append", pbCT, "", []byte("\xff\xff\xff\xff"), 400, 3, "malformed"},
		{"garbage JSON", "append", jsCT, "", []byte(`{"resourceLogs":`), 400, 3, "malformed"},
		{"JSON as protobuf", "append", pbCT, "", []byte(`{"resourceLogs":[]}`), 400, 3, "malformed"},
		{"corrupt gzip", "append", jsCT, "gzip", []byte("\x1f\x8b\x08\x00garbage"), 400, 3, "gzip"},
		{"corrupt zstd", "append", pbCT, "zstd", []byte("\x28\xb5\x2f\xfdgarbage"), 400, 3, "zstd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := te.postLogs(tc.token, tc.ct, tc.enc, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %q", status, tc.status, body)
			}
			wantCT := pbCT
			if tc.ct != pbCT {
				wantCT = jsCT
			}
			if got := hdr.Get("Content-Type"); got != wantCT {
				t.Errorf("Content-Type %q, want %q", got, wantCT)
			}
			st := rpcStatus(t, wantCT, body)
			if int(st.Code) != tc.code || !strings.Contains(st.Message, tc.msg) {
				t.Errorf("status {%d %q}, want code %d and a message containing %q", st.Code, st.Message, tc.code, tc.msg)
			}
			if status == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge")
			}
		})
	}
	if grew := te.size(t) - before; grew != 0 {
		t.Fatalf("refused requests stored %d entries", grew)
	}
}

// TestOTLPUnavailable: a transient fault is 503 with Retry-After and an
// UNAVAILABLE status, never 500: pushback from a full queue (a ledger whose
// queue holds fewer entries than the batch: the rejection event, appended
// first, fits, the records do not; retried, the rejection event is found
// and nothing more is stored), then a closed events layer (nothing stored).
func TestOTLPUnavailable(t *testing.T) {
	good, _ := os.ReadFile(filepath.Join(goldenOTLP, "logs.pb"))

	logger, _, secrets := checkedLogger(t)
	signer, _ := note.NewSigner(tlogtest.NewKey(t, testOrigin).SKey)
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, Logger: logger, QueueSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	layer, tokens, _ := newLayerAndTokens(t, l, logger, secrets)
	defer layer.Close()
	_, secret, err := tokens.Create("append", []auth.Scope{auth.ScopeAppend})
	if err != nil {
		t.Fatal(err)
	}
	secrets.Add("token", secret)
	hs := httptest.NewServer(New(Config{Log: l, Events: layer, Tokens: tokens, Logger: logger}).Handler())
	defer hs.Close()
	for attempt := range 2 {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+routeLogs, bytes.NewReader(good))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("attempt %d: %d, Retry-After %q: %q", attempt, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		if st := rpcStatus(t, "application/x-protobuf", body); st.Code != 14 || !strings.Contains(st.Message, "retry") {
			t.Errorf("attempt %d: status {%d %q}, want 14 (UNAVAILABLE)", attempt, st.Code, st.Message)
		}
		// A marker entry's index counts what is stored before it: the
		// rejection event, and the markers of earlier attempts.
		if i, err := l.Append(t.Context(), []byte("marker")); err != nil || i != int64(1+attempt) {
			t.Fatalf("attempt %d: marker at index %d (%v), want %d: only the rejection event stored", attempt, i, err, 1+attempt)
		}
	}

	te := newTestEvents(t)
	te.layer.Close()
	status, hdr, body := te.postLogs("append", "application/x-protobuf", "", good)
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("closed layer: %d, Retry-After %q: %q", status, hdr.Get("Retry-After"), body)
	}
	if st := rpcStatus(t, "application/x-protobuf", body); st.Code != 14 {
		t.Errorf("status code %d, want 14 (UNAVAILABLE)", st.Code)
	}
	if i, err := te.l.Append(t.Context(), []byte("marker")); err != nil || i != 0 {
		t.Errorf("marker at index %d (%v): something was stored", i, err)
	}
}

// TestOTLPDecodeSlots: with every decode slot taken, a request waits; it
// proceeds as soon as one is free.
func TestOTLPDecodeSlots(t *testing.T) {
	te := newTestEvents(t)
	good, _ := os.ReadFile(filepath.Join(goldenOTLP, "logs.pb"))
	for range MaxOTLPDecodes {
		te.srv.otlp.decodes <- struct{}{}
	}
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, te.url+routeLogs, bytes.NewReader(good))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Authorization", "Bearer "+te.tok["append"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case s := <-done:
		t.Fatalf("answered %d with every decode slot taken", s)
	case <-time.After(300 * time.Millisecond):
	}
	<-te.srv.otlp.decodes
	select {
	case s := <-done:
		if s != 200 {
			t.Fatalf("status %d once a slot was free", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no answer once a slot was free")
	}
}

// TestOTLPSecondListener: the handler of serve --otlp-listen serves POST
// /v1/logs with the same tokens, and nothing else.
func TestOTLPSecondListener(t *testing.T) {
	te := newTestEvents(t)
	hs := httptest.NewServer(te.srv.OTLPHandler())
	defer hs.Close()
	good, _ := os.ReadFile(filepath.Join(goldenOTLP, "logs.json"))
	post := func(token string) int {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/logs", bytes.NewReader(good))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+te.tok[token])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("append"); s != 200 {
		t.Errorf("append token: %d", s)
	}
	if s := post("read"); s != 403 {
		t.Errorf("read token: %d", s)
	}
	for _, path := range []string{"/v1/events", "/checkpoint", "/"} {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+te.tok["admin"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("GET %s on the OTLP listener: %d, want 404", path, resp.StatusCode)
		}
	}
	if n := len(te.allEvents(t, "ssh.login")); n != 1 {
		t.Errorf("%d ssh.login events, want 1", n)
	}
}

// TestOTLPSDKExporter is the production path end to end: the OpenTelemetry
// Go SDK's log exporter (otlploghttp, gzip) sends records to a real server
// on 127.0.0.1; they come back from GET /v1/events mapped as docs/otlp.md
// says.
func TestOTLPSDKExporter(t *testing.T) {
	te := newTestEvents(t)
	ctx := context.Background()
	exp, err := otlploghttp.New(ctx,
		otlploghttp.WithEndpointURL(te.url+"/v1/logs"),
		otlploghttp.WithHeaders(map[string]string{"Authorization": "Bearer " + te.tok["append"]}),
		otlploghttp.WithCompression(otlploghttp.GzipCompression),
		otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "payments-api"), attribute.String("host.name", "node-7"))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
	defer lp.Shutdown(ctx)
	logger := lp.Logger("payments/audit", otellog.WithInstrumentationVersion("2.3.0"))
	t0 := time.Date(2026, 11, 25, 10, 15, 0, 123456789, time.UTC)

	var r otellog.Record
	r.SetTimestamp(t0)
	r.SetEventName("payment.refund")
	r.SetSeverity(otellog.SeverityWarn)
	r.SetSeverityText("WARN")
	r.SetBody(attribute.StringValue("refund of 12.50 EUR"))
	r.AddAttributes(
		attribute.String("log.record.uid", "refund-0001"),
		attribute.String("enduser.id", "bob@example.com"),
		attribute.String("client.address", "10.0.0.7"),
		attribute.String("audit.resource.type", "payment"),
		attribute.String("audit.resource.id", "pay_123"),
		attribute.String("audit.reason", "customer request"),
		attribute.Int("http.response.status_code", 201),
		attribute.Float64("amount", 12.5),
	)
	logger.Emit(ctx, r)
	var r2 otellog.Record
	r2.SetTimestamp(t0.Add(time.Second))
	r2.SetBody(attribute.StringValue("no action: refused"))
	logger.Emit(ctx, r2)
	if err := lp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	te.waitPublished(t)

	status, _, body := te.req(http.MethodGet, "/v1/events?action=payment.refund", "read", "", nil)
	if status != 200 {
		t.Fatalf("GET /v1/events: %d %s", status, body)
	}
	var page struct {
		Events []struct {
			Event event.Event `json:"event"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 {
		t.Fatalf("%d events: %s", len(page.Events), body)
	}
	e := page.Events[0].Event
	want := `{"action":"payment.refund","actor":{"id":"bob@example.com","ip":"10.0.0.7","type":"user"},"id":"refund-0001",` +
		`"metadata":{"attributes":{"amount":12.5,"http.response.status_code":201},"body":"refund of 12.50 EUR",` +
		`"resource":{"host.name":"node-7","service.name":"payments-api"},"scope":{"name":"payments/audit","version":"2.3.0"},"severity":"WARN"},` +
		`"outcome":"success","reason":"customer request","resource":{"id":"pay_123","type":"payment"},"source":"payments-api","time":"2026-11-25T10:15:00.123456789Z"}`
	if got := stripServer(t, e); got != want {
		t.Errorf("event\n got %s\nwant %s", got, want)
	}
	if e.SubmittedBy != "append" {
		t.Errorf("submitted_by %q", e.SubmittedBy)
	}
	if rej := te.allEvents(t, ActionIngestRejected); len(rej) != 1 || !strings.Contains(string(rej[0].Event.Metadata), `"count":1`) {
		t.Errorf("rejection events: %v", rej)
	}
}

// FuzzOTLPHandler posts arbitrary bodies, in both encodings and with every
// Content-Encoding, to a real server: the status is 200, 400, 413 or 415,
// never a 5xx, the reply decodes in the request's encoding, and a refused
// request stores nothing.
func FuzzOTLPHandler(f *testing.F) {
	for _, name := range []string{"logs.pb", "logs.json", "logs.pb.gz", "logs.pb.zst"} {
		b, err := os.ReadFile(filepath.Join(goldenOTLP, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, strings.Contains(name, "json"), uint8(0))
	}
	f.Add([]byte("\x0a\x02\x12\x00"), false, uint8(0))
	te := newTestEvents(f)
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	marker := func(t *testing.T) int64 {
		i, err := te.l.Append(t.Context(), []byte("marker"))
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool, enc uint8) {
		ct := "application/x-protobuf"
		if isJSON {
			ct = "application/json"
		}
		encoding := []string{"", "gzip", "zstd", otlp.Sniff(body)}[enc%4]
		before := marker(t)
		// Not te.postLogs: it reports to te's testing.F, not to t.
		req, _ := http.NewRequest(http.MethodPost, te.url+routeLogs, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+te.tok["append"])
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		reply, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		status, hdr := resp.StatusCode, resp.Header
		after := marker(t)
		switch status {
		case http.StatusOK:
			partialSuccess(t, hdr.Get("Content-Type"), reply)
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			rpcStatus(t, hdr.Get("Content-Type"), reply)
			if after != before+1 {
				t.Fatalf("refused (%d) but stored %d entries", status, after-before-1)
			}
		default:
			t.Fatalf("status %d: %q", status, reply)
		}
	})
}
