package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"indelible.dev/event"
)

// Record is the unit every read of the events API returns (GET
// /v1/events, GET /v1/events/{index}, the stream) and an open line of an
// evidence bundle's records.ndjson: the event as a JSON object (for
// people), the exact event bytes the commitment covers, the salt and the
// commitment (the log entry at Index). It verifies nothing.
type Record struct {
	Index int64 `json:"index"`
	// Event is the event as a JSON object. The server sends its event bytes
	// here: see AppendRecord.
	Event      json.RawMessage `json:"event"`
	EventBytes []byte          `json:"event_bytes"`
	Salt       []byte          `json:"salt"`
	Commitment []byte          `json:"commitment"`
}

// AppendRecord appends r's JSON form to b:
//
//	{"index":I,"event":E,"event_bytes":"B","salt":"S","commitment":"C"}
//
// with E the event verbatim (r.Event, or r.EventBytes when r.Event is
// empty), not re-encoded: encoding/json would compact it and escape <, >,
// &, U+2028 and U+2029 inside its strings. B, S and C are standard base64.
// An evidence bundle's open lines are these bytes and a newline. The HTTP
// replies are these bytes as encoding/json writes a Marshaler's output:
// with its HTML-safe escapes in the event object (MarshalJSON).
func AppendRecord(b []byte, r *Record) []byte { return appendRecord(b, r, false) }

// appendRecord is AppendRecord, with the event as encoding/json's Encoder
// writes a Marshaler's output if htmlSafe is set (appendHTMLSafe; the
// rest of the record has nothing it would change).
func appendRecord(b []byte, r *Record, htmlSafe bool) []byte {
	ev := r.Event
	if len(ev) == 0 {
		ev = r.EventBytes
	}
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, r.Index, 10)
	b = append(b, `,"event":`...)
	switch {
	case len(ev) == 0:
		b = append(b, "null"...)
	case htmlSafe:
		b = appendHTMLSafe(b, ev)
	default:
		b = append(b, ev...)
	}
	b = append(b, `,"event_bytes":"`...)
	b = base64.StdEncoding.AppendEncode(b, r.EventBytes)
	b = append(b, `","salt":"`...)
	b = base64.StdEncoding.AppendEncode(b, r.Salt)
	b = append(b, `","commitment":"`...)
	b = base64.StdEncoding.AppendEncode(b, r.Commitment)
	return append(b, `"}`...)
}

// MarshalJSON returns AppendRecord's bytes. (encoding/json then checks them
// and, unless told not to, escapes <, >, &, U+2028 and U+2029 in the event
// object, as the HTTP replies always have.)
func (r Record) MarshalJSON() ([]byte, error) {
	return AppendRecord(make([]byte, 0, 160+len(r.Event)+len(r.EventBytes)*4/3), &r), nil
}

// AppendPage appends to b the bytes that encoding/json's Encoder (HTML
// escaping on, as echo's JSON replies use it) writes for p, newline
// included: the reply of GET /v1/events. Each record is AppendRecord's
// bytes with <, >, &, U+2028 and U+2029 in its event escaped and any
// whitespace outside strings dropped, as the Encoder does with a
// Marshaler's output (the rest of a record, numbers and base64, has
// nothing to escape). The Encoder also re-validates every record byte by
// byte, a sixth of a listing's CPU (BENCHMARKS.md, issue 21); this does
// not, so each record's event (r.Event, or r.EventBytes) must be valid
// JSON, which the server's are (it parsed each one when it opened it).
// TestAppendPageIsEncoder and FuzzAppendPage hold it to the Encoder.
func AppendPage(b []byte, p *Page) []byte {
	if p.Events == nil {
		b = append(b, `{"events":null`...)
	} else {
		b = append(b, `{"events":[`...)
		for k := range p.Events {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendRecord(b, &p.Events[k], true)
		}
		b = append(b, ']')
	}
	if p.NextCursor != "" {
		b = append(b, `,"next_cursor":`...)
		b = appendHTMLSafeString(b, p.NextCursor)
	}
	return append(b, "}\n"...)
}

// appendHTMLSafe appends valid JSON src to dst as encoding/json compacts a
// Marshaler's output with HTML escaping: whitespace outside strings
// dropped, and <, >, &, U+2028 and U+2029 written as \u escapes.
func appendHTMLSafe(dst, src []byte) []byte {
	start := 0
	inString := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if !htmlSafeStop[c] {
			continue
		}
		switch c {
		case '"':
			inString = !inString
		case '\\':
			i++ // only inside a string: the escaped byte is never a stop
		case ' ', '\t', '\n', '\r':
			if !inString {
				dst = append(dst, src[start:i]...)
				start = i + 1
			}
		case '<', '>', '&':
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			start = i + 1
		case 0xe2:
			if i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xa8 {
				// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR.
				dst = append(dst, src[start:i]...)
				dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[src[i+2]&0xf])
				start = i + 3
				i += 2
			}
		}
	}
	return append(dst, src[start:]...)
}

// htmlSafeStop marks the bytes appendHTMLSafe looks at; it copies the
// others as they are.
var htmlSafeStop = func() (t [256]bool) {
	for _, c := range []byte("\"\\ \t\n\r<>&\xe2") {
		t[c] = true
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendHTMLSafeString appends s as a JSON string, for the strings this
// package writes itself (a cursor: base64url, nothing to escape); anything
// else goes through encoding/json.
func appendHTMLSafeString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// Decode returns the record's event, parsed from its event bytes.
func (r Record) Decode() (Event, error) {
	var e Event
	if err := json.Unmarshal(r.EventBytes, &e); err != nil {
		return Event{}, fmt.Errorf("event %d: %w", r.Index, err)
	}
	return e, nil
}

// Page is the reply of GET /v1/events: one page of a listing, newest first
// by time, ties by index (higher first). NextCursor, for the next page, is
// "" on the last.
type Page struct {
	Events     []Record `json:"events"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

// Actor is who did it.
type Actor = event.Actor

// Resource is what it was done to.
type Resource = event.Resource

// Event is an audit event as a writer sends it (an element of the body of
// POST /v1/events), and as records carry it (then with ReceivedAt and
// SubmittedBy, which the server sets). Time and ReceivedAt are RFC 3339
// strings, kept as the server wrote them. The server parses what it is sent
// with package event, strictly; this is the shape a client writes and reads.
type Event struct {
	ID          string          `json:"id,omitempty"`
	Time        string          `json:"time,omitempty"`
	Actor       *Actor          `json:"actor,omitempty"`
	Action      string          `json:"action"`
	Resource    *Resource       `json:"resource,omitempty"`
	Outcome     string          `json:"outcome,omitempty"`
	Source      string          `json:"source,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	ReceivedAt  string          `json:"received_at,omitempty"`
	SubmittedBy string          `json:"submitted_by,omitempty"`
}
