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
// event (keys sorted, no insignificant whitespace, no HTML escaping).
package event

import (
	"encoding/json"
	"errors"
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
)

// Error describes why one event of a request was rejected.
type Error struct {
	Position int    // 0-based position of the event in the request (array index or NDJSON line); -1 for the request as a whole
	Field    string // JSON path of the offending field, e.g. "actor.id"; "" if none
	Msg      string
	Kind     error // ErrInvalid or ErrTooLarge or ErrContentType
}

func (e *Error) Error() string { panic("unimplemented") }
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

// ParseRequest parses a POST /v1/events body: one JSON object or a JSON
// array ("application/json", parameters such as charset allowed), or NDJSON
// ("application/x-ndjson", one object per non-empty line). Validation is
// strict: unknown fields, a missing action, a bad time (RFC 3339), a bad
// outcome, over-long ids, metadata that is not an object or nests too deep,
// an empty body, and more than MaxEvents events are errors. The first bad
// event makes the whole request fail with an *Error naming its position and
// field. ReceivedAt and SubmittedBy are rejected if the writer sets them.
func ParseRequest(contentType string, body []byte) ([]Event, error) { panic("unimplemented") }

// Finish sets what the server adds: ReceivedAt (UTC), SubmittedBy, and Time
// = ReceivedAt when the writer gave none.
func (e *Event) Finish(receivedAt time.Time, submittedBy string) { panic("unimplemented") }

// Canonical returns the event's canonical JSON bytes: object keys sorted at
// every level (metadata included), no insignificant whitespace, no HTML
// escaping, times in RFC 3339 with nanoseconds in UTC, empty optional fields
// omitted. It fails with an *Error wrapping ErrTooLarge over MaxEventBytes.
// Decode(Canonical(e)) == e, and Canonical is deterministic.
func Canonical(e Event) ([]byte, error) { panic("unimplemented") }

// Decode parses canonical event bytes as stored (the server-set fields
// included). It is for reading back what the server wrote; it is lenient
// only in not requiring canonical order.
func Decode(b []byte) (Event, error) { panic("unimplemented") }

// Commitment returns SHA-256("indelible/event/v1" || 0x00 || salt || eventBytes),
// the log entry (leaf data) for the event.
func Commitment(salt [SaltSize]byte, eventBytes []byte) [32]byte { panic("unimplemented") }

// Opening is what opens a commitment: the salt and the event bytes.
type Opening struct {
	Salt  [SaltSize]byte
	Bytes []byte
}

// Encode returns salt || event bytes, the receipt's extra data (the receipt
// format base64-encodes it).
func (o Opening) Encode() []byte { panic("unimplemented") }

// ParseOpening splits salt || event bytes; it fails if there are fewer than
// SaltSize+2 bytes or more than SaltSize+MaxEventBytes.
func ParseOpening(b []byte) (Opening, error) { panic("unimplemented") }

// Commitment returns the opening's commitment.
func (o Opening) Commitment() [32]byte { return Commitment(o.Salt, o.Bytes) }
