// Package event is the audit event: its schema and strict validation, its
// canonical bytes, the salted commitment that is the log entry, and the
// opening (salt, event bytes) a receipt carries. It is pure, like tlog: no
// I/O, no storage, no clock, no randomness (callers pass time and salt).
//
// The contract (docs/events.md):
//
//	commitment = SHA-256("indelible/event/v1" || 0x00 || salt || event_bytes)
//
// where salt is 32 random bytes and event_bytes the canonical JSON of the
// event.
//
// # Validation
//
// ParseRequest is strict so that a typo never loses data silently and two
// different inputs never store the same bytes: unknown fields (at the top
// level and inside actor and resource) and duplicate keys (anywhere,
// metadata included, compared after unescaping) are rejected; strings must
// be valid UTF-8 without escaped lone surrogates; the server's fields
// (received_at, submitted_by) may not be sent; nothing may follow the JSON
// value. A null field counts as absent (except action, which is required).
// The string fields are capped, in bytes, and may hold no control
// characters (C0, DEL, C1; metadata strings may hold anything, escaped):
//
//	id             256 (MaxIDBytes)
//	action         256 (MaxActionBytes), required, and no whitespace
//	actor.id      1024   actor.type   64   actor.ip   64
//	resource.type  256   resource.id 1024
//	source         256   reason     4096
//	submitted_by    64 (set by the server: the token name)
//
// time is RFC 3339 (any offset; stored in UTC), outcome one of success,
// failure, denied, unknown (or absent), metadata a JSON object nested at
// most MaxMetadataDepth deep (the object itself is depth 1; arrays count).
// An event's canonical bytes are at most MaxEventBytes once the server's
// fields are added (ParseRequest keeps room for them), a request at most
// MaxRequestBytes and MaxEvents events.
//
// # Canonical bytes
//
// Canonical writes one JSON object with no insignificant whitespace:
//   - keys sorted bytewise (by their UTF-8 bytes) at every level, metadata
//     included;
//   - absent and empty optional fields (and an actor or resource with no
//     field set) left out;
//   - times as RFC 3339 with nanoseconds, trailing zeros dropped, in UTC
//     (time.RFC3339Nano);
//   - metadata numbers as the writer's literal text (1.50 stays 1.50);
//   - strings escaped minimally: only '"', '\' and U+0000..U+001F (as
//     \b \f \n \r \t, else \u00xx with lower-case hex); everything else,
//     HTML characters and U+2028/U+2029 included, as UTF-8.
//
// So Canonical(Decode(Canonical(e))) == Canonical(e), and the order of keys
// in the writer's JSON does not matter.
package event

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits (contract; over them is HTTP 413).
const (
	MaxEventBytes    = 64 << 10 // canonical bytes of one event
	MaxRequestBytes  = 16 << 20 // one request body
	MaxEvents        = 10000    // events in one request
	MaxIDBytes       = 256      // the writer's id
	MaxMetadataDepth = 8        // nesting of metadata (the object itself is depth 1)
	SaltSize         = 32
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
	OutcomeUnknown = "unknown"
)

// Errors callers branch on (each *Error wraps one of them).
var (
	// ErrInvalid: malformed JSON, unknown field, missing or bad value (400).
	ErrInvalid = errors.New("invalid event")
	// ErrTooLarge: an event, the body or the event count over its limit (413).
	ErrTooLarge = errors.New("too large")
	// ErrContentType: a content type other than JSON or NDJSON (415).
	ErrContentType = errors.New("unsupported content type")
	// ErrReserved: an action or source reserved for the server's own
	// records, sent by a writer (422; see Reserved).
	ErrReserved = errors.New("reserved for the server")
)

// Error describes why one event of a request was rejected.
type Error struct {
	Position int    // 0-based position of the event in the request (array index or NDJSON line); -1 for the request as a whole
	Field    string // JSON path of the offending field, e.g. "actor.id"; "" if none
	Msg      string
	Kind     error // ErrInvalid, ErrTooLarge, ErrContentType or ErrReserved
}

// Error reads like `event 3: field "actor.id": must be a string`; the
// position and field are left out when they do not apply.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Position >= 0 {
		b.WriteString("event ")
		b.WriteString(strconv.Itoa(e.Position))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString("field ")
		b.WriteString(strconv.Quote(e.Field))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}
func (e *Error) Unwrap() error { return e.Kind }

// Actor is who did it.
type Actor struct {
	ID   string `json:"id,omitempty"`
	Type string `json:"type,omitempty"`
	IP   string `json:"ip,omitempty"`
}

// Resource is what it was done to.
type Resource struct {
	Type string `json:"type,omitempty"`
	ID   string `json:"id,omitempty"`
}

// Event is an audit event (DESIGN section 5): the writer's fields plus the
// two the server adds. Metadata holds the writer's free-form JSON object
// verbatim (canonicalised by Canonical).
type Event struct {
	ID          string          `json:"id,omitempty"`
	Time        time.Time       `json:"time"`
	Actor       *Actor          `json:"actor,omitempty"`
	Action      string          `json:"action"`
	Resource    *Resource       `json:"resource,omitempty"`
	Outcome     string          `json:"outcome,omitempty"`
	Source      string          `json:"source,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"` // a JSON object, or nil
	ReceivedAt  time.Time       `json:"received_at"`        // set by the server
	SubmittedBy string          `json:"submitted_by"`       // set by the server: the token's name
}

// Finish sets what the server adds: ReceivedAt (UTC), SubmittedBy, and Time
// = ReceivedAt when the writer gave none.
func (e *Event) Finish(receivedAt time.Time, submittedBy string) {
	e.ReceivedAt = receivedAt.UTC()
	e.SubmittedBy = submittedBy
	if e.Time.IsZero() {
		e.Time = e.ReceivedAt
	} else {
		e.Time = e.Time.UTC()
	}
}

// Canonical returns the event's canonical JSON bytes: object keys sorted at
// every level (metadata included), no insignificant whitespace, no HTML
// escaping, times in RFC 3339 with nanoseconds in UTC, empty optional fields
// omitted. It fails with an *Error wrapping ErrTooLarge over MaxEventBytes.
// Decode(Canonical(e)) == e, and Canonical is deterministic.
//
// It also fails, wrapping ErrInvalid, on an event ParseRequest would not
// accept (no action, a bad outcome, a field over its cap or with control
// characters, metadata that is not a JSON object nested at most
// MaxMetadataDepth deep): such bytes could not be decoded back. The
// *Error's Position is -1.
func Canonical(e Event) ([]byte, error) {
	b, err := appendCanonical(nil, &e)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEventBytes {
		return nil, &Error{Position: -1, Msg: "event is " + strconv.Itoa(len(b)) + " bytes in canonical form, over the limit of " + strconv.Itoa(MaxEventBytes), Kind: ErrTooLarge}
	}
	return b, nil
}

// Decode parses canonical event bytes as stored (the server-set fields
// included). It is for reading back what the server wrote; it is lenient
// only in not requiring canonical order.
// Errors are *Error (Position -1) wrapping ErrInvalid.
func Decode(b []byte) (Event, error) {
	// The bytes as one string: the event's strings are substrings of it
	// (one allocation, not one per field).
	s := &scanner{b: b, src: string(b)}
	s.ws()
	e, err := parseEvent(s, -1, true)
	if err == nil {
		err = trailing(s, -1)
	}
	if err != nil {
		return Event{}, err
	}
	return e, nil
}

// Commitment returns SHA-256("indelible/event/v1" || 0x00 || salt || eventBytes),
// the log entry (leaf data) for the event.
func Commitment(salt [SaltSize]byte, eventBytes []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(commitmentPrefix))
	h.Write([]byte{0})
	h.Write(salt[:])
	h.Write(eventBytes)
	var c [32]byte
	h.Sum(c[:0])
	return c
}

// commitmentPrefix is the domain separator of commitments (contract).
const commitmentPrefix = "indelible/event/v1"

// Opening is what opens a commitment: the salt and the event bytes.
type Opening struct {
	Salt  [SaltSize]byte
	Bytes []byte
}

// Encode returns salt || event bytes, the receipt's extra data (the receipt
// format base64-encodes it).
func (o Opening) Encode() []byte {
	b := make([]byte, 0, SaltSize+len(o.Bytes))
	b = append(b, o.Salt[:]...)
	return append(b, o.Bytes...)
}

// ParseOpening splits salt || event bytes; it fails if there are fewer than
// SaltSize+2 bytes or more than SaltSize+MaxEventBytes.
// It does not check that the event bytes are a valid event: Decode does.
// The returned Bytes do not alias b. Errors wrap ErrInvalid.
func ParseOpening(b []byte) (Opening, error) {
	if len(b) < SaltSize+2 {
		return Opening{}, fmt.Errorf("%w: opening of %d bytes, fewer than %d", ErrInvalid, len(b), SaltSize+2)
	}
	if len(b) > SaltSize+MaxEventBytes {
		return Opening{}, fmt.Errorf("%w: opening of %d bytes, more than %d", ErrInvalid, len(b), SaltSize+MaxEventBytes)
	}
	var o Opening
	copy(o.Salt[:], b)
	o.Bytes = append([]byte(nil), b[SaltSize:]...)
	return o, nil
}

// Commitment returns the opening's commitment.
func (o Opening) Commitment() [32]byte { return Commitment(o.Salt, o.Bytes) }
