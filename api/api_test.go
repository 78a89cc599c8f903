package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestGolden pins the bytes on the wire: these are the JSON the server sent
// and the client read before the types moved here, field for field.
func TestGolden(t *testing.T) {
	at := time.Date(2026, 12, 7, 15, 4, 32, 490249964, time.UTC)
	for _, tc := range []struct {
		v    any
		want string
	}{
		{AppendReply{Events: []Appended{{Index: 1}, {Index: 2, ID: "k5"}, {Index: 3, ID: "x", Receipt: "c2sp.org/tlog-proof@v1\n"}}},
			`{"events":[{"index":1},{"index":2,"id":"k5"},{"index":3,"id":"x","receipt":"c2sp.org/tlog-proof@v1\n"}]}`},
		{AppendReply{Events: []Appended{}}, `{"events":[]}`},
		{TokenRequest{Name: "alice", Scopes: []string{"read"}}, `{"name":"alice","scopes":["read"]}`},
		{NewToken{Token: Token{Name: "alice", Scopes: []string{"read"}, Created: at}, Secret: "ind_S1aH"},
			`{"name":"alice","scopes":["read"],"created":"2026-12-07T15:04:32.490249964Z","token":"ind_S1aH"}`},
		{TokenList{Tokens: []Token{{Name: "admin", Scopes: []string{"admin"}, Created: at, LastUsed: at.Add(time.Second)},
			{Name: "bob", Scopes: []string{"append", "read"}, Created: at, Revoked: at.Add(time.Minute)}}},
			`{"tokens":[{"name":"admin","scopes":["admin"],"created":"2026-12-07T15:04:32.490249964Z","last_used":"2026-12-07T15:04:33.490249964Z"},` +
				`{"name":"bob","scopes":["append","read"],"created":"2026-12-07T15:04:32.490249964Z","revoked":"2026-12-07T15:05:32.490249964Z"}]}`},
		{TokenList{Tokens: []Token{}}, `{"tokens":[]}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil || string(b) != tc.want {
			t.Errorf("%T: %s %v\nwant %s", tc.v, b, err, tc.want)
		}
	}
}

// The bytes of a record before the types moved here, captured from the
// server's encoder of the time (eventstore.Record, whose MarshalJSON wrote
// the event bytes verbatim): through encoding/json (the HTTP replies), and
// as its own encoder wrote them (an evidence bundle's line, less its
// newline). The record is goldenRec's.
const (
	goldenRecordJSON = "{\"index\":42,\"event\":{\"action\":\"doc.wire\",\"metadata\":{\"k\\u003c\\u003e\\u0026\":\"v\\u2029 \\n\\t \\u0001 /\",\"n\":[1.50,-0,1e3]},\"reason\":\"a\\u003cb\\u003e\\u0026c \\\"q\\\" \\\\ \u00e9 \\u2028 \U0001f600\",\"received_at\":\"2026-12-07T15:04:32.490249964Z\",\"submitted_by\":\"append\",\"time\":\"2026-12-07T15:04:32.490249964Z\"},\"event_bytes\":\"eyJhY3Rpb24iOiJkb2Mud2lyZSIsIm1ldGFkYXRhIjp7Ims8PiYiOiJ24oCpIFxuXHQgXHUwMDAxIC8iLCJuIjpbMS41MCwtMCwxZTNdfSwicmVhc29uIjoiYTxiPiZjIFwicVwiIFxcIMOpIOKAqCDwn5iAIiwicmVjZWl2ZWRfYXQiOiIyMDI2LTEyLTA3VDE1OjA0OjMyLjQ5MDI0OTk2NFoiLCJzdWJtaXR0ZWRfYnkiOiJhcHBlbmQiLCJ0aW1lIjoiMjAyNi0xMi0wN1QxNTowNDozMi40OTAyNDk5NjRaIn0=\",\"salt\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"commitment\":\"//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA=\"}"
	goldenRecordLine = "{\"index\":42,\"event\":{\"action\":\"doc.wire\",\"metadata\":{\"k<>&\":\"v\u2029 \\n\\t \\u0001 /\",\"n\":[1.50,-0,1e3]},\"reason\":\"a<b>&c \\\"q\\\" \\\\ \u00e9 \u2028 \U0001f600\",\"received_at\":\"2026-12-07T15:04:32.490249964Z\",\"submitted_by\":\"append\",\"time\":\"2026-12-07T15:04:32.490249964Z\"},\"event_bytes\":\"eyJhY3Rpb24iOiJkb2Mud2lyZSIsIm1ldGFkYXRhIjp7Ims8PiYiOiJ24oCpIFxuXHQgXHUwMDAxIC8iLCJuIjpbMS41MCwtMCwxZTNdfSwicmVhc29uIjoiYTxiPiZjIFwicVwiIFxcIMOpIOKAqCDwn5iAIiwicmVjZWl2ZWRfYXQiOiIyMDI2LTEyLTA3VDE1OjA0OjMyLjQ5MDI0OTk2NFoiLCJzdWJtaXR0ZWRfYnkiOiJhcHBlbmQiLCJ0aW1lIjoiMjAyNi0xMi0wN1QxNTowNDozMi40OTAyNDk5NjRaIn0=\",\"salt\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"commitment\":\"//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA=\"}"
	goldenPage       = "{\"events\":[{\"index\":42,\"event\":{\"action\":\"doc.wire\",\"metadata\":{\"k\\u003c\\u003e\\u0026\":\"v\\u2029 \\n\\t \\u0001 /\",\"n\":[1.50,-0,1e3]},\"reason\":\"a\\u003cb\\u003e\\u0026c \\\"q\\\" \\\\ \u00e9 \\u2028 \U0001f600\",\"received_at\":\"2026-12-07T15:04:32.490249964Z\",\"submitted_by\":\"append\",\"time\":\"2026-12-07T15:04:32.490249964Z\"},\"event_bytes\":\"eyJhY3Rpb24iOiJkb2Mud2lyZSIsIm1ldGFkYXRhIjp7Ims8PiYiOiJ24oCpIFxuXHQgXHUwMDAxIC8iLCJuIjpbMS41MCwtMCwxZTNdfSwicmVhc29uIjoiYTxiPiZjIFwicVwiIFxcIMOpIOKAqCDwn5iAIiwicmVjZWl2ZWRfYXQiOiIyMDI2LTEyLTA3VDE1OjA0OjMyLjQ5MDI0OTk2NFoiLCJzdWJtaXR0ZWRfYnkiOiJhcHBlbmQiLCJ0aW1lIjoiMjAyNi0xMi0wN1QxNTowNDozMi40OTAyNDk5NjRaIn0=\",\"salt\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"commitment\":\"//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA=\"}],\"next_cursor\":\"AQ_x-\"}"
)

// goldenRec is a record whose event bytes hold <, >, &, U+2028, U+2029,
// non-ASCII text, a surrogate pair, escapes and numbers as written.
func goldenRec() Record {
	eb := []byte("{\"action\":\"doc.wire\",\"metadata\":{\"k<>&\":\"v\u2029 \\n\\t \\u0001 /\",\"n\":[1.50,-0,1e3]},\"reason\":\"a<b>&c \\\"q\\\" \\\\ \u00e9 \u2028 \U0001F600\",\"received_at\":\"2026-12-07T15:04:32.490249964Z\",\"submitted_by\":\"append\",\"time\":\"2026-12-07T15:04:32.490249964Z\"}")
	r := Record{Index: 42, EventBytes: eb, Salt: make([]byte, 32), Commitment: make([]byte, 32)}
	for i := range 32 {
		r.Salt[i], r.Commitment[i] = byte(i), byte(255-i)
	}
	return r
}

// TestRecordGolden: a record's bytes are those of the server's encoder
// before the move, through encoding/json (HTML-safe escapes in the event
// object) and verbatim (AppendRecord); a page likewise; and what the
// client decodes is what was sent.
func TestRecordGolden(t *testing.T) {
	r := goldenRec()
	if b, err := json.Marshal(r); err != nil || string(b) != goldenRecordJSON {
		t.Errorf("json.Marshal:\n got %s %v\nwant %s", b, err, goldenRecordJSON)
	}
	withEvent := r
	withEvent.Event = r.EventBytes
	if b, err := json.Marshal(withEvent); err != nil || string(b) != goldenRecordJSON {
		t.Errorf("json.Marshal with Event set:\n got %s %v", b, err)
	}
	if b := AppendRecord(nil, &r); string(b) != goldenRecordLine {
		t.Errorf("AppendRecord:\n got %s\nwant %s", b, goldenRecordLine)
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(Page{Events: []Record{r}, NextCursor: "AQ_x-"}); err != nil || buf.String() != goldenPage+"\n" {
		t.Errorf("page:\n got %s %v\nwant %s", buf.Bytes(), err, goldenPage)
	}
	if b, _ := json.Marshal(Page{Events: []Record{}}); string(b) != `{"events":[]}` {
		t.Errorf("empty page: %s", b)
	}
	if !strings.Contains(goldenRecordJSON, `a\u003cb\u003e\u0026c`) || !strings.Contains(goldenRecordLine, "a<b>&c") {
		t.Fatal("the golden bytes no longer show the two forms of the event")
	}

	// Decoding: the bytes the commitment covers come back exactly; the
	// event object as sent (either form); Decode parses the event bytes.
	for _, in := range []string{goldenRecordJSON, goldenRecordLine} {
		var got Record
		if err := json.Unmarshal([]byte(in), &got); err != nil {
			t.Fatal(err)
		}
		if got.Index != r.Index || !bytes.Equal(got.EventBytes, r.EventBytes) || !bytes.Equal(got.Salt, r.Salt) || !bytes.Equal(got.Commitment, r.Commitment) {
			t.Errorf("decoded %+v", got)
		}
		if !strings.Contains(in, string(got.Event)) {
			t.Errorf("the event object is not as sent: %s", got.Event)
		}
		if b := AppendRecord(nil, &got); !strings.Contains(in, string(b)) {
			t.Errorf("re-encoded %s", b)
		}
		e, err := got.Decode()
		if err != nil || e.Reason != "a<b>&c \"q\" \\ \u00e9 \u2028 \U0001F600" || e.Action != "doc.wire" || e.SubmittedBy != "append" || e.ReceivedAt != "2026-12-07T15:04:32.490249964Z" {
			t.Errorf("Decode: %+v %v", e, err)
		}
	}
	var bad Record
	if _, err := (Record{Index: 7, EventBytes: []byte("{")}).Decode(); err == nil || !strings.Contains(err.Error(), "event 7") {
		t.Errorf("Decode of bad bytes: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"index":1,"event_bytes":"!!"}`), &bad); err == nil {
		t.Error("event_bytes that are not base64 decoded")
	}
}

// TestParseQuery: the errors name the parameter; a query round-trips
// through Values.
func TestParseQuery(t *testing.T) {
	for q, want := range map[string]string{
		"color=red":                  `unknown parameter "color"`,
		"actor=a&actor=b":            `parameter "actor" given 2 times`,
		"outcome=maybe":              `outcome "maybe" is not success`,
		"since=yesterday":            `since is not an RFC 3339 time`,
		"until=2026-13-01T00:00:00Z": `until is not an RFC 3339 time`,
		"since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z": "since must be before until",
		"since=2026-01-01T00:00:00Z&until=2026-01-01T00:00:00Z": "since must be before until",
		"limit=0":    "limit must be an integer from 1 to 1000",
		"limit=1001": "limit must be an integer from 1 to 1000",
		"limit=x":    "limit must be an integer from 1 to 1000",
	} {
		v, _ := url.ParseQuery(q)
		_, err := ParseQuery(v)
		if !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), want) {
			t.Errorf("?%s: %v, want ErrBadQuery naming %q", q, err, want)
		}
	}
	for _, s := range []string{"", "limit=1", "actor=a&action=b&resource=c&outcome=denied&source=s&since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00.5%2B01:00&limit=1000&cursor=abc"} {
		v, _ := url.ParseQuery(s)
		if _, err := ParseQuery(v); err != nil {
			t.Errorf("?%s: %v", s, err)
		}
	}
	if q, _ := ParseQuery(url.Values{"since": {"2026-01-01T01:00:00+01:00"}}); !q.Since.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || q.Since.Location() != time.UTC || q.Limit != 0 {
		t.Errorf("since in +01:00: %+v", q)
	}
	q := Query{Actor: "alice&bob", Action: "a b", Resource: "r/1", Outcome: "denied", Source: "s=1",
		Since: time.Date(2026, 1, 1, 1, 0, 0, 5, time.FixedZone("x", 3600)), Until: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), Limit: 7, Cursor: "AQ_x-"}
	got, err := ParseQuery(q.Values())
	if err != nil || !got.Since.Equal(q.Since) || got.Since.Location() != time.UTC {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	want := q
	want.Since = q.Since.UTC()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if v := (Query{}).Values(); len(v) != 0 {
		t.Errorf("the zero query encodes as %v", v)
	}
	if q, err := ParseQuery(url.Values{}); err != nil || !reflect.DeepEqual(q, Query{}) {
		t.Errorf("no parameters: %+v %v", q, err)
	}
}

// FuzzParseQuery: ParseQuery never panics, its errors wrap ErrBadQuery, and
// what it accepts encodes (Values) to parameters it parses back the same.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "actor=a&since=2026-01-01T00:00:00Z&limit=5", "outcome=denied&until=2026-01-01T00:00:00.5%2B02:00",
		"cursor=x&cursor=y", "since=0000-01-01T00:00:00%2B01:00", "action=%00&source=%C3%A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("%q: %v does not wrap ErrBadQuery", raw, err)
			}
			return
		}
		for _, tm := range []time.Time{q.Since, q.Until} {
			if y := tm.Year(); !tm.IsZero() && (y < 0 || y > 9999) {
				return // RFC 3339 cannot write the year (an offset moved it)
			}
		}
		back, err := ParseQuery(q.Values())
		if err != nil || !reflect.DeepEqual(back, q) {
			t.Fatalf("%q: parsed %+v, back %+v %v", raw, q, back, err)
		}
	})
}
