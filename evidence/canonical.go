package evidence

import (
	"bytes"
	"time"

	"indelible.dev/event"
)

// The verifier must check that every open record's event bytes are
// canonical: event.Canonical(event.Decode(b)) == b. Decoding and re-encoding
// each event was most of the verifier's time (BENCHMARKS.md), so the common
// case is checked by one scan of the bytes instead (quickCanonical), and
// anything that scan does not fully understand (a non-ASCII or escaped
// string, an absent time, an indelible.erase record) takes the slow path.
// The scan may refuse canonical bytes, never accept others: FuzzQuickCanonical
// checks it against Decode and Canonical.

// openFields are what the verifier keeps of an open record's event: the
// summary's day, action and outcome ("-" if none) and the received_at text,
// as sub-slices of the event bytes (outcome may be the literal "-").
type openFields struct {
	day, action, outcome, receivedAt []byte
}

var dash = []byte("-")

// topKeys are the event's top-level keys in canonical (bytewise) order,
// with each string field's cap (0: not a plain string field).
var topKeys = [...]struct {
	name string
	max  int
}{
	{"action", event.MaxActionBytes},
	{"actor", 0},
	{"id", event.MaxIDBytes},
	{"metadata", 0},
	{"outcome", 16},
	{"reason", event.MaxReasonBytes},
	{"received_at", 0},
	{"resource", 0},
	{"source", event.MaxSourceBytes},
	{"submitted_by", event.MaxSubmittedByBytes},
	{"time", 0},
}

type member struct {
	name string
	max  int
}

var (
	actorKeys    = []member{{"id", event.MaxActorIDBytes}, {"ip", event.MaxActorIPBytes}, {"type", event.MaxActorTypeBytes}}
	resourceKeys = []member{{"id", event.MaxResourceIDBytes}, {"type", event.MaxResourceTypeBytes}}
)

// quickCanonical reports whether it can tell, in one scan, that b is an
// event's canonical bytes, and if so returns its fields. ok false says
// nothing: the caller decodes and re-encodes. It accepts only events whose
// strings are printable ASCII without escapes, that have an action other
// than indelible.erase, a time and a received_at.
func quickCanonical(b []byte) (f openFields, ok bool) {
	if len(b) < 2 || len(b) > event.MaxEventBytes || b[0] != '{' || b[len(b)-1] != '}' {
		return f, false
	}
	var timeText []byte
	i, next := 1, 0 // next: the first key of topKeys still allowed
	for {
		key, j, ok := plainString(b, i)
		if !ok || j >= len(b) || b[j] != ':' {
			return f, false
		}
		i = j + 1
		k := next
		for k < len(topKeys) && topKeys[k].name != string(key) {
			k++
		}
		if k == len(topKeys) {
			return f, false // unknown, repeated or out of order
		}
		next = k + 1
		switch name := topKeys[k].name; name {
		case "actor", "resource":
			keys := actorKeys
			if name == "resource" {
				keys = resourceKeys
			}
			if i, ok = quickObject(b, i, keys); !ok {
				return f, false
			}
		case "metadata":
			if i >= len(b) || b[i] != '{' {
				return f, false
			}
			if i, ok = quickValue(b, i, 1); !ok {
				return f, false
			}
		case "time", "received_at":
			v, j, ok := plainString(b, i)
			if !ok || !quickTime(v) {
				return f, false
			}
			i = j
			if name == "time" {
				timeText = v
			} else {
				f.receivedAt = v
			}
		default:
			v, j, ok := plainString(b, i)
			if !ok || len(v) == 0 || len(v) > topKeys[k].max {
				return f, false
			}
			i = j
			switch name {
			case "action":
				if bytes.IndexByte(v, ' ') >= 0 || string(v) == "indelible.erase" {
					return f, false
				}
				f.action = v
			case "outcome":
				switch string(v) {
				case event.OutcomeSuccess, event.OutcomeFailure, event.OutcomeDenied, event.OutcomeUnknown:
				default:
					return f, false
				}
				f.outcome = v
			}
		}
		if i >= len(b) {
			return f, false
		}
		if b[i] == '}' {
			if i != len(b)-1 {
				return f, false
			}
			break
		}
		if b[i] != ',' {
			return f, false
		}
		i++
	}
	if f.action == nil || timeText == nil || f.receivedAt == nil {
		return openFields{}, false
	}
	f.day = timeText[:10]
	if f.outcome == nil {
		f.outcome = dash
	}
	return f, true
}

// plainString reads the JSON string at b[i] if it is printable ASCII with
// no escape (so it is its own canonical form), returning its contents and
// the index after its closing quote.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// quickObject reads an actor or resource: an object of non-empty plain
// strings, its keys a non-empty subsequence of keys (so sorted and
// distinct), each within its cap.
func quickObject(b []byte, i int, keys []member) (int, bool) {
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	i++
	next := 0
	for {
		key, j, ok := plainString(b, i)
		if !ok || j >= len(b) || b[j] != ':' {
			return 0, false
		}
		k := next
		for k < len(keys) && keys[k].name != string(key) {
			k++
		}
		if k == len(keys) {
			return 0, false
		}
		next = k + 1
		v, j, ok := plainString(b, j+1)
		if !ok || len(v) == 0 || len(v) > keys[k].max {
			return 0, false
		}
		i = j
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case '}':
			return i + 1, true
		case ',':
			i++
		default:
			return 0, false
		}
	}
}

// quickValue reads a canonical metadata value at nesting depth depth (the
// metadata object itself is 1): objects with plain, strictly increasing
// keys, no whitespace, plain strings, numbers as JSON writes them (their
// text is kept as is), literals.
func quickValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '{' || c == '[':
		if depth > event.MaxMetadataDepth {
			return 0, false
		}
		i++
		if i >= len(b) {
			return 0, false
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		if b[i] == end {
			return i + 1, true
		}
		var prev []byte
		for n := 0; ; n++ {
			if c == '{' {
				key, j, ok := plainString(b, i)
				if !ok || j >= len(b) || b[j] != ':' || (n > 0 && bytes.Compare(prev, key) >= 0) {
					return 0, false
				}
				prev, i = key, j+1
			}
			var ok bool
			if i, ok = quickValue(b, i, depth+1); !ok || i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case end:
				return i + 1, true
			case ',':
				i++
			default:
				return 0, false
			}
		}
	case c == '"':
		_, j, ok := plainString(b, i)
		return j, ok
	case c == '-' || ('0' <= c && c <= '9'):
		return quickNumber(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	}
	return 0, false
}

func literal(b []byte, i int, word string) (int, bool) {
	if len(b)-i >= len(word) && string(b[i:i+len(word)]) == word {
		return i + len(word), true
	}
	return 0, false
}

// quickNumber reads a JSON number (RFC 8259's grammar).
func quickNumber(b []byte, i int) (int, bool) {
	digits := func() bool {
		n := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > n
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		digits()
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return 0, false
		}
	}
	return i, true
}

// quickTime reports whether v is a time as the canonical form writes it:
// RFC 3339 in UTC with nanoseconds, trailing zeros dropped, not the zero
// time (which the canonical form leaves out).
func quickTime(v []byte) bool {
	if len(v) < 20 || len(v) > 30 || v[len(v)-1] != 'Z' {
		return false
	}
	t, err := time.Parse(time.RFC3339, string(v))
	if err != nil || t.IsZero() {
		return false
	}
	var buf [40]byte
	return bytes.Equal(t.UTC().AppendFormat(buf[:0], time.RFC3339Nano), v)
}
