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
func AppendRecord(b []byte, r *Record) []byte {
	ev := r.Event
	if len(ev) == 0 {
		ev = r.EventBytes
	}
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, r.Index, 10)
	b = append(b, `,"event":`...)
	if len(ev) == 0 {
		b = append(b, "null"...)
	} else {
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
