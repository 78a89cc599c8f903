package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/api"
	"indelible.dev/audited"
	"indelible.dev/auth"
	"indelible.dev/client"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

// newLayerAndTokens opens a real events layer over l, keyed by a random
// master key (added to secrets, which the server must never reveal), and an
// empty token store kept in the log's store (package audited).
func newLayerAndTokens(t testing.TB, l *ledger.Log, logger *slog.Logger, secrets *tlogtest.Secrets) (*eventstore.Layer, *auth.Store, []byte) {
	t.Helper()
	master := make([]byte, 32)
	rand.Read(master)
	secrets.AddKey("the master key", master)
	kr, err := eventstore.NewKeyring(master)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := eventstore.Open(eventstore.Config{Log: l, Keyring: kr, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := audited.OpenTokens(l, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return layer, tokens, master
}

// testEvents is a real ledger, events layer and token store served over
// real HTTP on a loopback port, with one token per scope and a revoked one.
type testEvents struct {
	*testLog
	layer  *eventstore.Layer
	tokens *auth.Store
	tok    map[string]string // "admin", "append", "read", "revoked" -> secret
	// The server's log and the secrets it must not reveal (checked when
	// the test ends): the tokens, the master key (hex), the signer key.
	logs    *tlogtest.Buffer
	secrets *tlogtest.Secrets
	master  string
	skey    string
}

func newTestEvents(t testing.TB, opts ...func(*Config)) *testEvents {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	logger, logs, secrets := checkedLogger(t)
	secrets.AddNoteKey("the log's signer key", skey)
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	layer, tokens, master := newLayerAndTokens(t, l, logger, secrets)
	te := &testEvents{layer: layer, tokens: tokens, tok: map[string]string{}, logs: logs, secrets: secrets, master: hex.EncodeToString(master), skey: skey}
	for _, name := range []string{"admin", "append", "read", "revoked"} {
		scope := auth.Scope(name)
		if name == "revoked" {
			scope = auth.ScopeAdmin
		}
		_, secret, err := tokens.Create(name, []auth.Scope{scope})
		if err != nil {
			t.Fatal(err)
		}
		te.tok[name] = secret
		secrets.Add("token "+name, secret)
	}
	if err := tokens.Revoke("revoked"); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Log: l, Events: layer, Tokens: tokens, Logger: logger, StreamHeartbeat: 50 * time.Millisecond, Console: &ConsoleConfig{}}
	for _, o := range opts {
		o(&cfg)
	}
	srv := New(cfg)
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config = srv.HTTPServer("")
	hs.Start()
	te.testLog = &testLog{t: t, l: l, srv: srv, hs: hs, url: hs.URL, verifier: verifier}
	t.Cleanup(func() {
		srv.SetShuttingDown()
		hs.Close()
		layer.Close()
		l.Close()
	})
	return te
}

// req sends a request with the named token ("" for none; any other
// unknown name is sent verbatim as a bad token).
func (te *testEvents) req(method, path, token, ct string, body []byte) (int, http.Header, []byte) {
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
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return te.do(method, path, rd, hdr...)
}

// append posts a JSON body as the append token and returns the indexes.
func (te *testEvents) append(ct, body string) []int64 {
	te.t.Helper()
	status, _, b := te.req(http.MethodPost, "/v1/events", "append", ct, []byte(body))
	if status != http.StatusOK {
		te.t.Fatalf("POST /v1/events: %d %s", status, b)
	}
	var r api.AppendReply
	if err := json.Unmarshal(b, &r); err != nil {
		te.t.Fatal(err)
	}
	var out []int64
	for _, e := range r.Events {
		out = append(out, e.Index)
	}
	return out
}

// kubernetesSample is a small audit.k8s.io/v1 EventList.
const kubernetesSample = `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[
{"level":"Metadata","auditID":"0f3b7c1e-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/pods","verb":"list",
 "user":{"username":"alice@example.com","groups":["system:authenticated"]},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.31.0",
 "objectRef":{"resource":"pods","namespace":"prod","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},
 "requestReceivedTimestamp":"2026-11-25T10:15:00.000000Z","stageTimestamp":"2026-11-25T10:15:00.010000Z"},
{"level":"Metadata","auditID":"0f3b7c1e-2","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/secrets/db","verb":"get",
 "user":{"username":"mallory"},"sourceIPs":["10.0.0.9"],"objectRef":{"resource":"secrets","namespace":"prod","name":"db","apiVersion":"v1"},
 "responseStatus":{"metadata":{},"code":403},"requestReceivedTimestamp":"2026-11-25T10:16:00.000000Z","stageTimestamp":"2026-11-25T10:16:00.001000Z"}]}`

// TestEventsAuth checks every events route against every kind of token: none,
// unknown, revoked (401 with a Bearer challenge), and each scope (403
// without the route's scope; admin implies every scope).
func TestEventsAuth(t *testing.T) {
	te := newTestEvents(t)
	te.append("application/json", `{"action":"seed"}`)
	if _, _, err := te.l.WaitSize(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	n := 0
	routes := []struct {
		method, path, ct string
		body             func() []byte
		scope            string
		ok               int
	}{
		{"POST", "/v1/events", "application/json", func() []byte { return []byte(`{"action":"a"}`) }, "append", 200},
		{"POST", "/v1/ingest/kubernetes", "application/json", func() []byte { return []byte(kubernetesSample) }, "append", 200},
		{"GET", "/v1/events", "", nil, "read", 200},
		{"GET", "/v1/events/0", "", nil, "read", 200},
		{"GET", "/v1/events/0/receipt", "", nil, "read", 200},
		{"GET", "/v1/events/stream", "", nil, "read", 200},
		{"POST", "/v1/tokens", "application/json", func() []byte {
			n++
			return fmt.Appendf(nil, `{"name":"t%d","scopes":["read"]}`, n)
		}, "admin", 201},
		{"GET", "/v1/tokens", "", nil, "admin", 200},
		{"DELETE", "/v1/tokens/", "", nil, "admin", 204},
		{"GET", "/v1/events/histogram?since=2026-01-01T00:00:00Z&bucket=24h", "", nil, "read", 200},
		{"GET", "/v1/log/status", "", nil, "read", 200},
		{"DELETE", "/v1/events/0?reason=auth-test", "", nil, "admin", 200}, // erases the seed event (admin runs once, last)
	}
	for _, r := range routes {
		for _, who := range []string{"", "bogus-token", "revoked", "append", "read", "admin"} {
			t.Run(r.method+" "+r.path+" as "+who, func(t *testing.T) {
				path := r.path
				if r.method == "DELETE" && strings.HasPrefix(path, "/v1/tokens/") {
					n++
					name := fmt.Sprintf("victim%d", n)
					if _, _, err := te.tokens.Create(name, []auth.Scope{auth.ScopeRead}); err != nil {
						t.Fatal(err)
					}
					path += name
				}
				var body []byte
				if r.body != nil {
					body = r.body()
				}
				var status int
				var hdr http.Header
				var b []byte
				if strings.HasSuffix(path, "/stream") {
					status, hdr, b = te.streamStatus(who)
				} else {
					status, hdr, b = te.req(r.method, path, who, r.ct, body)
				}
				want := r.ok
				switch {
				case who == "" || who == "bogus-token" || who == "revoked":
					want = http.StatusUnauthorized
				case who != r.scope && who != "admin":
					want = http.StatusForbidden
				}
				if status != want {
					t.Fatalf("status %d, want %d: %s", status, want, b)
				}
				if want == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without a Bearer challenge: %q", hdr.Get("WWW-Authenticate"))
				}
				if want >= 400 {
					var eb errorBody
					if err := json.Unmarshal(b, &eb); err != nil || eb.Error == "" {
						t.Errorf("error body %q is not {\"error\":...}", b)
					}
					if bytes.Contains(b, []byte(te.tok["revoked"])) || bytes.Contains(b, []byte("bogus-token")) {
						t.Errorf("error body echoes the token: %s", b)
					}
				}
			})
		}
	}
}

// streamStatus opens the stream as who and returns the status and, for
// errors, the body.
func (te *testEvents) streamStatus(who string) (int, http.Header, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, te.url+"/v1/events/stream", nil)
	if who != "" {
		secret, ok := te.tok[who]
		if !ok {
			secret = who
		}
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		te.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		te.t.Errorf("stream Content-Type %q", ct)
	}
	return resp.StatusCode, resp.Header, nil
}

// TestEventsBadInput sends every kind of bad input of the events API: each
// is a 4xx with a JSON error naming the problem, and nothing is stored.
func TestEventsBadInput(t *testing.T) {
	te := newTestEvents(t)
	good := te.append("application/json", `{"action":"first"}`)
	big := strings.Repeat("x", event.MaxEventBytes)
	var tooMany strings.Builder
	for range event.MaxEvents + 1 {
		tooMany.WriteString(`{"action":"a"}` + "\n")
	}
	var huge strings.Builder
	for huge.Len() <= event.MaxRequestBytes {
		huge.WriteString(`{"action":"a","metadata":{"y":"` + strings.Repeat("y", 60000) + `"}}` + "\n")
	}
	for _, tc := range []struct {
		name, ct, body string
		status         int
		want           []string // substrings of the error message or fields
	}{
		{"invalid JSON", "application/json", `{"action":`, 400, nil},
		{"unknown field", "application/json", `{"action":"a","acter":"x"}`, 400, []string{"acter"}},
		{"missing action", "application/json", `{"actor":{"id":"x"}}`, 400, []string{"action"}},
		{"bad time", "application/json", `{"action":"a","time":"yesterday"}`, 400, []string{"time"}},
		{"bad outcome", "application/json", `{"action":"a","outcome":"maybe"}`, 400, []string{"outcome"}},
		{"server field", "application/json", `{"action":"a","submitted_by":"root"}`, 400, []string{"submitted_by"}},
		{"oversize event", "application/json", `{"action":"a","metadata":{"blob":"` + big + `"}}`, 413, nil},
		{"oversize request", "application/x-ndjson", huge.String(), 413, nil},
		{"too many events", "application/x-ndjson", tooMany.String(), 413, nil},
		{"NDJSON with one bad line", "application/x-ndjson", "{\"action\":\"a\"}\n{\"action\":\"b\"}\n{\"action\":\"c\",\"outcome\":\"nope\"}\n", 400, []string{`"event":2`, "outcome"}},
		{"array with one bad event", "application/json", `[{"action":"a"},{"action":""}]`, 400, []string{`"event":1`, "action"}},
		{"wrong content type", "text/plain", `{"action":"a"}`, 415, nil},
		{"no content type", "", `{"action":"a"}`, 415, nil},
		{"empty body", "application/json", ``, 400, nil},
		{"empty array", "application/json", `[]`, 400, nil},
		{"deep metadata", "application/json", `{"action":"a","metadata":` + strings.Repeat(`{"a":`, 10) + `1` + strings.Repeat(`}`, 10) + `}`, 413, []string{"metadata"}},
		{"long id", "application/json", `{"action":"a","id":"` + strings.Repeat("i", event.MaxIDBytes+1) + `"}`, 413, []string{"id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, b := te.req(http.MethodPost, "/v1/events", "append", tc.ct, []byte(tc.body))
			checkEventError(t, status, hdr, b, tc.status, tc.want)
		})
	}
	for _, tc := range []struct {
		name, query string
		want        string
	}{
		{"unknown parameter", "?actr=alice", "actr"},
		{"bad since", "?since=yesterday", "since"},
		{"bad until", "?until=2026-13-01T00:00:00Z", "until"},
		{"bad limit", "?limit=0", "limit"},
		{"limit too large", "?limit=1001", "limit"},
		{"limit not a number", "?limit=ten", "limit"},
		{"forged cursor", "?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "cursor"},
		{"garbage cursor", "?cursor=%25%25", "cursor"},
	} {
		t.Run("query "+tc.name, func(t *testing.T) {
			status, hdr, b := te.req(http.MethodGet, "/v1/events"+tc.query, "read", "", nil)
			checkEventError(t, status, hdr, b, 400, []string{tc.want})
		})
	}
	for _, path := range []string{"/v1/events/x", "/v1/events/-1", "/v1/events/01", "/v1/events/0/receipt?x=1", "/v1/events/stream?actr=a", "/v1/events/stream?cursor=x"} {
		status, hdr, b := te.req(http.MethodGet, path, "read", "", nil)
		checkEventError(t, status, hdr, b, 400, nil)
	}
	for _, path := range []string{"/v1/events/999", "/v1/events/999/receipt"} {
		status, hdr, b := te.req(http.MethodGet, path, "read", "", nil)
		checkEventError(t, status, hdr, b, 404, nil)
	}
	status, hdr, b := te.req(http.MethodPost, "/v1/ingest/kubernetes", "append", "application/json", []byte(`{"kind":"EventList","items":[{"verb":1}]}`))
	checkEventError(t, status, hdr, b, 400, nil)
	status, hdr, b = te.req(http.MethodPost, "/v1/events?wait=soon", "append", "application/json", []byte(`{"action":"a"}`))
	checkEventError(t, status, hdr, b, 400, []string{"wait"})
	status, hdr, b = te.req(http.MethodPost, "/v1/tokens", "admin", "application/json", []byte(`{"name":"x y","scopes":["read"]}`))
	checkEventError(t, status, hdr, b, 400, nil)
	status, hdr, b = te.req(http.MethodPost, "/v1/tokens", "admin", "application/json", []byte(`{"name":"z","scopes":["root"]}`))
	checkEventError(t, status, hdr, b, 400, nil)
	status, hdr, b = te.req(http.MethodPost, "/v1/tokens", "admin", "application/json", []byte(`{"name":"read","scopes":["read"]}`))
	checkEventError(t, status, hdr, b, 409, nil)
	status, hdr, b = te.req(http.MethodDelete, "/v1/tokens/nobody", "admin", "", nil)
	checkEventError(t, status, hdr, b, 404, nil)

	// Nothing was stored but the indelible.read events of the four reads
	// that passed parsing (two bad cursors, checked by the listing, and two
	// missing events): the next event gets the index after them.
	const audited = 4
	if next := te.append("application/json", `{"action":"second"}`); next[0] != good[0]+1+audited {
		t.Fatalf("after the bad requests, the next event got index %d, want %d", next[0], good[0]+1+audited)
	}
	if _, _, err := te.l.WaitSize(t.Context(), 2+audited); err != nil {
		t.Fatal(err)
	}
	for i := good[0] + 1; i <= good[0]+audited; i++ {
		rec, err := te.layer.Get(i)
		if err != nil || rec.Event.Action != ActionRead {
			t.Fatalf("event %d: %+v %v, want an %s event", i, rec.Event, err, ActionRead)
		}
	}
	if cp, _ := te.l.Checkpoint(); cp.N != 2+audited {
		t.Fatalf("tree size %d after 2 good events and %d audited reads", cp.N, audited)
	}
}

func checkEventError(t *testing.T, status int, hdr http.Header, b []byte, want int, substrs []string) {
	t.Helper()
	if status != want {
		t.Fatalf("status %d, want %d: %s", status, want, b)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q: %s", ct, b)
	}
	var eb map[string]any
	if err := json.Unmarshal(b, &eb); err != nil || eb["error"] == "" {
		t.Fatalf("error body %q is not {\"error\":...}", b)
	}
	for _, s := range substrs {
		if !bytes.Contains(b, []byte(s)) {
			t.Errorf("error body %s does not name %q", b, s)
		}
	}
}

// TestEventsRecords appends single events, arrays, NDJSON and Kubernetes
// audit events, reads them back as records, checks each record's
// commitment and its client-side decoding, the receipts (also from
// ?wait=checkpoint), and that the client's Record re-encodes to the server's
// bytes.
func TestEventsRecords(t *testing.T) {
	te := newTestEvents(t)
	var idx []int64
	idx = append(idx, te.append("application/json", `{"action":"one","actor":{"id":"alice"},"metadata":{"b":1,"a":[true,null]}}`)...)
	idx = append(idx, te.append("application/json; charset=utf-8", `[{"action":"two"},{"action":"three","outcome":"denied"}]`)...)
	idx = append(idx, te.append("application/x-ndjson", "{\"action\":\"four\"}\n\n{\"action\":\"five\",\"id\":\"k5\"}\n")...)
	status, _, b := te.req(http.MethodPost, "/v1/ingest/kubernetes", "append", "application/json", []byte(kubernetesSample))
	if status != 200 {
		t.Fatalf("kubernetes: %d %s", status, b)
	}
	var kr api.AppendReply
	json.Unmarshal(b, &kr)
	if len(kr.Events) != 2 || kr.Events[0].ID != "0f3b7c1e-1" {
		t.Fatalf("kubernetes reply %s", b)
	}
	for i, want := range idx {
		if want != int64(i) {
			t.Fatalf("indexes %v", idx)
		}
	}
	// The same id from the same token: the original index, nothing stored.
	if again := te.append("application/json", `{"action":"five","id":"k5"}`); again[0] != 4 {
		t.Fatalf("repeated id got index %d, want 4", again[0])
	}
	// ?wait=checkpoint: receipts.
	status, _, b = te.req(http.MethodPost, "/v1/events?wait=checkpoint", "append", "application/json", []byte(`[{"action":"w1"},{"action":"w2"}]`))
	if status != 200 {
		t.Fatalf("wait=checkpoint: %d %s", status, b)
	}
	var wr api.AppendReply
	if err := json.Unmarshal(b, &wr); err != nil || len(wr.Events) != 2 {
		t.Fatalf("wait=checkpoint reply %s", b)
	}
	for _, e := range wr.Events {
		checkReceipt(t, te.verifier, []byte(e.Receipt), e.Index)
	}
	n := wr.Events[1].Index + 1
	if n != 9 {
		t.Fatalf("size %d, want 9", n)
	}
	for i := range n {
		status, _, b := te.req(http.MethodGet, fmt.Sprintf("/v1/events/%d", i), "read", "", nil)
		if status != 200 {
			t.Fatalf("GET event %d: %d %s", i, status, b)
		}
		var r client.Record
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("record %d: %v: %s", i, err, b)
		}
		if r.Index != i || !bytes.Equal(r.Event, r.EventBytes) || len(r.Salt) != 32 {
			t.Fatalf("record %d: %s", i, b)
		}
		var salt [32]byte
		copy(salt[:], r.Salt)
		if c := event.Commitment(salt, r.EventBytes); !bytes.Equal(c[:], r.Commitment) {
			t.Fatalf("record %d: commitment does not recompute", i)
		}
		entry, err := te.l.Entry(i)
		if err != nil || !bytes.Equal(entry, r.Commitment) {
			t.Fatalf("record %d: log entry %x, commitment %x (%v)", i, entry, r.Commitment, err)
		}
		// One set of wire types: the client's Record re-encodes to the
		// server's bytes exactly.
		again, err := json.Marshal(r)
		if err != nil || !bytes.Equal(append(again, '\n'), b) && !bytes.Equal(again, b) {
			t.Fatalf("record %d: client re-encoding differs:\n%s\n%s", i, again, b)
		}
		e, err := r.Decode()
		if err != nil || e.SubmittedBy != "append" || e.ReceivedAt == "" || e.Time == "" {
			t.Fatalf("record %d: event %+v (%v)", i, e, err)
		}
		status, hdr, rb := te.req(http.MethodGet, fmt.Sprintf("/v1/events/%d/receipt", i), "read", "", nil)
		if status != 200 || hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Fatalf("receipt %d: %d %q %s", i, status, hdr.Get("Content-Type"), rb)
		}
		checkReceipt(t, te.verifier, rb, i)
	}
	// Kubernetes mapping, as the records show it.
	r, _ := te.layer.Get(5)
	if r.Event.Actor == nil || r.Event.Actor.ID != "alice@example.com" || r.Event.Outcome != "success" {
		t.Errorf("kubernetes event 5: %+v", r.Event)
	}
	r, _ = te.layer.Get(6)
	if r.Event.Outcome != "denied" || r.Event.Resource == nil || r.Event.Resource.ID != "prod/db" {
		t.Errorf("kubernetes event 6: %+v", r.Event)
	}
}

// checkReceipt verifies an event receipt by hand: checkpoint signature,
// opening, commitment, leaf hash, inclusion proof.
func checkReceipt(t *testing.T, v note.Verifier, data []byte, index int64) {
	t.Helper()
	r, err := itlog.ParseReceipt(data)
	if err != nil {
		t.Fatalf("receipt %d: %v\n%s", index, err, data)
	}
	cp, _, err := itlog.OpenCheckpoint(r.Checkpoint, v)
	if err != nil {
		t.Fatalf("receipt %d: checkpoint: %v", index, err)
	}
	op, err := event.ParseOpening(r.Extra)
	if err != nil || r.Index != index {
		t.Fatalf("receipt %d: index %d, opening: %v", index, r.Index, err)
	}
	c := op.Commitment()
	if err := itlog.CheckInclusion(r.Proof, r.Index, cp.N, tlog.RecordHash(c[:]), cp.Hash); err != nil {
		t.Fatalf("receipt %d: %v", index, err)
	}
}

// TestEventsQueryPages pages through a filtered listing: newest first, no
// duplicates, no gaps, the last page without a cursor.
func TestEventsQueryPages(t *testing.T) {
	te := newTestEvents(t)
	var nd strings.Builder
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := range 250 {
		actor := "bob"
		if i%2 == 0 {
			actor = "alice"
		}
		fmt.Fprintf(&nd, `{"action":"deploy","actor":{"id":%q},"time":%q}`+"\n", actor, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
	}
	te.append("application/x-ndjson", nd.String())
	if _, _, err := te.l.WaitSize(t.Context(), 250); err != nil {
		t.Fatal(err)
	}
	var got []int64
	cursor := ""
	for pages := 0; ; pages++ {
		q := "/v1/events?actor=alice&limit=30&since=" + base.Add(10*time.Second).Format(time.RFC3339)
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		status, _, b := te.req(http.MethodGet, q, "read", "", nil)
		if status != 200 {
			t.Fatalf("%s: %d %s", q, status, b)
		}
		var p client.Page
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Events {
			got = append(got, r.Index)
		}
		if p.NextCursor == "" {
			break
		}
		if pages > 10 {
			t.Fatal("too many pages")
		}
		cursor = p.NextCursor
	}
	var want []int64
	for i := int64(248); i >= 10; i -= 2 {
		want = append(want, i)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages gave %v\nwant %v", got, want)
	}
}

// TestEventsStream follows the stream: events appended after it opens arrive
// in order with "id: <index>", Last-Event-ID resumes without gaps, filters
// apply, heartbeats flow, and the stream ends when the server shuts down.
func TestEventsStream(t *testing.T) {
	te := newTestEvents(t)
	te.append("application/json", `{"action":"before"}`)
	if _, _, err := te.l.WaitSize(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	open := func(path, lastID string) (*http.Response, *bufio.Reader) {
		req, _ := http.NewRequest(http.MethodGet, te.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+te.tok["read"])
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream: %v %v", err, resp)
		}
		return resp, bufio.NewReader(resp.Body)
	}
	// next reads the next event, skipping comments; it returns its id and data.
	next := func(br *bufio.Reader) (string, string) {
		var id, data string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream read: %v", err)
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "" && data != "":
				return id, data
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: "):
				data = line[6:]
			}
		}
	}
	resp, br := open("/v1/events/stream?action=keep", "")
	defer resp.Body.Close()
	// Opening the stream appended its indelible.read event: the indexes
	// are the append's.
	idx := te.append("application/x-ndjson", "{\"action\":\"keep\"}\n{\"action\":\"drop\"}\n{\"action\":\"keep\"}\n")
	for _, want := range []string{fmt.Sprint(idx[0]), fmt.Sprint(idx[2])} {
		id, data := next(br)
		var r client.Record
		if err := json.Unmarshal([]byte(data), &r); err != nil || id != want || fmt.Sprint(r.Index) != want {
			t.Fatalf("stream event id %s, record %s, want %s", id, data, want)
		}
	}
	// Resume after the first keep: the second is next (drop is filtered out).
	resp2, br2 := open("/v1/events/stream?action=keep", fmt.Sprint(idx[0]))
	defer resp2.Body.Close()
	if id, _ := next(br2); id != fmt.Sprint(idx[2]) {
		t.Fatalf("resumed at %s, want %d", id, idx[2])
	}
	// And ?cursor= too, unfiltered.
	resp3, br3 := open("/v1/events/stream?cursor=0", "")
	defer resp3.Body.Close()
	for _, want := range []string{"1", "2", "3"} {
		if id, _ := next(br3); id != want {
			t.Fatalf("cursor stream: id %s, want %s", id, want)
		}
	}
	// Heartbeats keep flowing while nothing happens (after the rest of
	// the stored events: the indelible.read events of the streams opened).
	for n := 0; ; n++ {
		line, err := br3.ReadString('\n')
		if err != nil || n > 100 {
			t.Fatalf("heartbeat: %q %v", line, err)
		}
		if strings.HasPrefix(line, ":") {
			break
		}
	}
	// Shutdown ends the stream.
	te.srv.SetShuttingDown()
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, br); done <- err }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open 5 s after shutdown began")
	}
}

// TestEventsClient drives the events API through client/: append (events,
// NDJSON), query, records, receipts, stream, and tokens (create, list,
// revoke takes effect at once).
func TestEventsClient(t *testing.T) {
	te := newTestEvents(t)
	ctx := t.Context()
	admin, err := client.New(te.url, "", client.WithOptions(client.Options{Token: te.tok["admin"]}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := admin.Append(ctx, []client.Event{{Action: "a", Actor: &client.Actor{ID: "alice"}}, {Action: "b", ID: "x"}}, true)
	if err != nil || len(res) != 2 || res[1].ID != "x" || res[0].Receipt == "" {
		t.Fatalf("Append: %+v %v", res, err)
	}
	res, err = admin.AppendNDJSON(ctx, []byte("{\"action\":\"c\"}\n"), false)
	if err != nil || len(res) != 1 || res[0].Index != 2 {
		t.Fatalf("AppendNDJSON: %+v %v", res, err)
	}
	if _, _, err := te.l.WaitSize(ctx, 3); err != nil {
		t.Fatal(err)
	}
	p, err := admin.Query(ctx, client.Query{Actor: "alice"})
	if err != nil || len(p.Events) != 1 || p.Events[0].Index != 0 {
		t.Fatalf("Query: %+v %v", p, err)
	}
	r, err := admin.Event(ctx, 1)
	if e, _ := r.Decode(); err != nil || e.ID != "x" || e.SubmittedBy != "admin" {
		t.Fatalf("Event: %+v %v", r, err)
	}
	rc, err := admin.Receipt(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	checkReceipt(t, te.verifier, rc, 2)

	nt, err := admin.CreateToken(ctx, "ci", []string{"append"})
	if err != nil || nt.Secret == "" || nt.Name != "ci" {
		t.Fatalf("CreateToken: %+v %v", nt, err)
	}
	ci, _ := client.New(te.url, "", client.WithOptions(client.Options{Token: nt.Secret}))
	if _, err := ci.Append(ctx, []client.Event{{Action: "ci.run"}}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ci.Query(ctx, client.Query{}); !isStatus(err, 403) {
		t.Fatalf("append-only token queried: %v", err)
	}
	ts, err := admin.Tokens(ctx)
	if err != nil || len(ts) != 5 {
		t.Fatalf("Tokens: %+v %v", ts, err)
	}
	if err := admin.RevokeToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := ci.Append(ctx, []client.Event{{Action: "ci.run"}}, false); !isStatus(err, 401) {
		t.Fatalf("revoked token appended: %v", err)
	}

	// NDJSON from a reader, in batches of client.AppendBatch.
	var nd strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&nd, "{\"action\":\"bulk\",\"id\":\"b%d\"}\n\n", i)
	}
	var sizes []int
	// The reads and token changes above were recorded as events too: the
	// bulk events follow them, consecutively.
	first := int64(-1)
	next := int64(-1)
	err = admin.AppendNDJSONReader(ctx, strings.NewReader(nd.String()), func(res []client.Appended) error {
		sizes = append(sizes, len(res))
		for _, r := range res {
			if first < 0 {
				first, next = r.Index, r.Index
			}
			if r.Index != next || r.ID != fmt.Sprintf("b%d", next-first) {
				t.Fatalf("AppendNDJSONReader: %+v, want index %d", r, next)
			}
			next++
		}
		return nil
	})
	if err != nil || fmt.Sprint(sizes) != "[1000 1000 500]" {
		t.Fatalf("AppendNDJSONReader: batches %v, %v", sizes, err)
	}

	// Stream: from index 1 on, then a new one.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan int64, 10)
	go admin.Stream(sctx, client.Query{}, 1, func(r client.Record) error { got <- r.Index; return nil })
	for _, want := range []int64{2, 3, 4} {
		select {
		case i := <-got:
			if i != want {
				t.Fatalf("stream gave %d, want %d", i, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("stream: no event %d", want)
		}
	}
}

func isStatus(err error, status int) bool {
	se, ok := err.(*client.StatusError)
	return ok && se.Status == status
}
