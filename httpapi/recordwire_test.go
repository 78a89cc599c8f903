package httpapi

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wireEvent is an event whose canonical bytes hold what JSON encoders
// disagree on: <, > and &, U+2028 and U+2029, non-ASCII text, a surrogate
// pair, escaped quotes, backslashes, control characters and a solidus, and
// numbers kept as written.
const wireEvent = `{"action":"doc.wire","reason":"a<b>&c \"q\" \\ \u00e9 \u2028 \ud83d\ude00","metadata":{"k<>&":"v\u2029 \n\t \u0001 \/","n":[1.50,-0,1e3]}}`

// TestRecordWireBytes pins the bytes of a record on every route that sends
// one, as they were before the wire types moved to package api: GET
// /v1/events and GET /v1/events/{index} (echo's JSON encoder: the event
// object with encoding/json's HTML-safe escapes of <, >, &, U+2028 and
// U+2029, nothing else changed, and a newline), the stream's data line (the
// same bytes) and the evidence bundle's records.ndjson line (the event
// bytes verbatim). event_bytes, salt and commitment are the same base64 in
// all four.
func TestRecordWireBytes(t *testing.T) {
	te := newTestEvents(t)
	te.append("application/json", `{"action":"seed"}`) // so the stream can resume before the record
	i := te.append("application/json", wireEvent)[0]
	if _, _, err := te.l.WaitSize(t.Context(), i+1); err != nil {
		t.Fatal(err)
	}
	rec, err := te.layer.Get(i)
	if err != nil {
		t.Fatal(err)
	}
	eb := rec.EventBytes
	for _, s := range []string{`"k<>&"`, "a<b>&c", "\u2028", "\u2029", "\u00e9", "\U0001F600", `\n\t \u0001 /`, `[1.50,-0,1e3]`} {
		if !bytes.Contains(eb, []byte(s)) {
			t.Fatalf("the canonical bytes %q lack %q: the test no longer covers it", eb, s)
		}
	}
	tail := `,"event_bytes":"` + base64.StdEncoding.EncodeToString(eb) +
		`","salt":"` + base64.StdEncoding.EncodeToString(rec.Salt[:]) +
		`","commitment":"` + base64.StdEncoding.EncodeToString(rec.Commitment[:]) + `"}`
	var esc bytes.Buffer
	json.HTMLEscape(&esc, eb)
	if !strings.Contains(esc.String(), `\u003cb\u003e\u0026c`) || !strings.Contains(esc.String(), `\u2028`) {
		t.Fatalf("HTMLEscape: %s", esc.Bytes())
	}
	httpRecord := `{"index":` + strconv.FormatInt(i, 10) + `,"event":` + esc.String() + tail
	bundleLine := `{"index":` + strconv.FormatInt(i, 10) + `,"event":` + string(eb) + tail + "\n"

	check := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", what, got, want)
		}
	}
	st, h, b := te.req(http.MethodGet, "/v1/events?action=doc.wire", "read", "", nil)
	if st != http.StatusOK {
		t.Fatalf("GET /v1/events: %d %s", st, b)
	}
	check("GET /v1/events", string(b), `{"events":[`+httpRecord+"]}\n")
	check("GET /v1/events Content-Type", h.Get("Content-Type"), "application/json")
	check("GET /v1/events Cache-Control", h.Get("Cache-Control"), "no-store")
	// A page with a next page: the cursor after the records.
	te.append("application/json", `{"action":"doc.page","reason":"<older>"}`)
	j := te.append("application/json", `{"action":"doc.page","reason":"<&newer>"}`)[0]
	if _, _, err := te.l.WaitSize(t.Context(), j+1); err != nil {
		t.Fatal(err)
	}
	newer, err := te.layer.Get(j)
	if err != nil {
		t.Fatal(err)
	}
	st, _, b = te.req(http.MethodGet, "/v1/events?action=doc.page&limit=1", "read", "", nil)
	var pg struct {
		NextCursor string `json:"next_cursor"`
	}
	if st != http.StatusOK || json.Unmarshal(b, &pg) != nil || pg.NextCursor == "" {
		t.Fatalf("GET /v1/events?action=doc.page&limit=1: %d %s", st, b)
	}
	esc.Reset()
	json.HTMLEscape(&esc, newer.EventBytes)
	check("GET /v1/events?action=doc.page&limit=1", string(b), `{"events":[{"index":`+strconv.FormatInt(j, 10)+`,"event":`+esc.String()+
		`,"event_bytes":"`+base64.StdEncoding.EncodeToString(newer.EventBytes)+`","salt":"`+base64.StdEncoding.EncodeToString(newer.Salt[:])+
		`","commitment":"`+base64.StdEncoding.EncodeToString(newer.Commitment[:])+`"}],"next_cursor":"`+pg.NextCursor+"\"}\n")
	st, _, b = te.req(http.MethodGet, "/v1/events/"+strconv.FormatInt(i, 10), "read", "", nil)
	if st != http.StatusOK {
		t.Fatalf("GET /v1/events/%d: %d %s", i, st, b)
	}
	check("GET /v1/events/{index}", string(b), httpRecord+"\n")

	resp := te.openStream(t, "/v1/events/stream?action=doc.wire", te.tok["read"], strconv.FormatInt(i-1, 10))
	evs, _ := readSSE(t, resp.Body, 10*time.Second, func(e []sseEvent) bool { return len(e) > 0 && e[len(e)-1].data != "" })
	var data []string
	for _, e := range evs {
		if e.data != "" {
			data = append(data, e.id+" "+e.data)
		}
	}
	if len(data) != 1 {
		t.Fatalf("stream: %d records, want 1: %q", len(data), data)
	}
	check("the stream's data line", data[0], strconv.FormatInt(i, 10)+" "+httpRecord)

	cp, _ := te.l.Checkpoint()
	path := "/v1/bundle?from=" + strconv.FormatInt(i, 10) + "&to=" + strconv.FormatInt(i+1, 10) + "&size=" + strconv.FormatInt(cp.N, 10)
	st, _, b = te.req(http.MethodGet, path, "read", "", nil)
	if st != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, st, b)
	}
	tr := tar.NewReader(bytes.NewReader(b))
	found := false
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if strings.HasSuffix(h.Name, "records.ndjson") {
			c, _ := io.ReadAll(tr)
			check("the bundle's records.ndjson", string(c), bundleLine)
			found = true
		}
	}
	if !found {
		t.Fatal("no records.ndjson in the bundle")
	}
}
