package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// encoderBytes is what echo's c.JSON writes for v: encoding/json's Encoder
// with its default HTML escaping.
func encoderBytes(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestAppendPageIsEncoder: AppendPage writes, byte for byte, what the
// reply of GET /v1/events was before it (c.JSON of the page): HTML escapes
// inside and outside nested strings, the line and paragraph separators,
// escaped quotes, whitespace outside strings dropped and inside kept, an
// empty and a nil page, a cursor or none.
func TestAppendPageIsEncoder(t *testing.T) {
	rec := func(i int64, ev string) Record {
		return Record{Index: i, Event: json.RawMessage(ev), EventBytes: []byte(ev), Salt: bytes.Repeat([]byte{0xfb}, 32), Commitment: bytes.Repeat([]byte{0xff}, 32)}
	}
	events := []string{
		`{"action":"a","time":"2026-12-07T15:04:32Z"}`,
		`{"action":"<script>&amp;</script>","reason":"a\"<b>\"\\","metadata":{"k":["<",">","&"]}}`,
		"{\"action\":\"x\u2028y\u2029z\",\"reason\":\"\u2027\u202a\u00e9\u20ac\"}",
		"{ \"action\" : \"sp ace\\t\" ,\n\t\"metadata\" : { \"a\" : [ 1 , 2 ] , \"b\" : null }\r\n}",
		`{"action":"\\\"<\\"}`,
		`{"action":"\u003c already escaped \u2028"}`,
	}
	var all []Record
	for k, ev := range events {
		all = append(all, rec(int64(k)*1000+7, ev))
	}
	pages := []Page{
		{Events: []Record{}},
		{},
		{Events: all[:1]},
		{Events: all, NextCursor: "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_-"},
		{Events: all[1:3], NextCursor: "a<b>&\"c\u2028"},
		{Events: []Record{{Index: 3}}}, // no event: "event":null
	}
	for k, p := range pages {
		want := encoderBytes(t, p)
		got := AppendPage(nil, &p)
		if !bytes.Equal(got, want) {
			t.Errorf("page %d:\n got %s\nwant %s", k, got, want)
		}
		// Appending keeps what b held.
		if got := AppendPage([]byte("x"), &p); !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("page %d: appended after a byte: %s", k, got)
		}
	}
}

// FuzzAppendPage: for any event that is valid JSON (the server's always
// are), AppendPage and encoding/json's Encoder agree byte for byte.
func FuzzAppendPage(f *testing.F) {
	for _, s := range []string{`{"a":"<>&"}`, "{\"a\":\"\u2028\"}", `[1, 2, {"x" : "\\\"<"}]`, `"\\u2028"`, `  {}  `} {
		f.Add([]byte(s), "cur")
	}
	f.Fuzz(func(t *testing.T, ev []byte, cursor string) {
		if !json.Valid(ev) || !utf8.Valid(ev) || !utf8.ValidString(cursor) {
			return // the Encoder rejects or rewrites these; the server never has them
		}
		p := Page{Events: []Record{{Index: 1, Event: ev, EventBytes: ev, Salt: []byte{1}, Commitment: []byte{2}}}, NextCursor: cursor}
		want := encoderBytes(t, p)
		if got := AppendPage(nil, &p); !bytes.Equal(got, want) {
			t.Fatalf("event %q cursor %q:\n got %s\nwant %s", ev, cursor, got, want)
		}
	})
}
