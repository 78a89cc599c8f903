package event

import "time"

// appendCanonical appends e's canonical bytes to dst after checking that
// they would decode back to e (see Canonical). The top-level keys are
// written in sorted order by hand.
//
// It walks the event once more after ParseRequest did (the server's
// fields, known only once the store takes the event, sit between the
// writer's in key order), but cheaply (issue 21): the strings are checked a
// byte at a time and copied whole unless they need escapes, and metadata
// that is already canonical, as ParseRequest leaves it, is checked without
// building anything and copied.
func appendCanonical(dst []byte, e *Event) ([]byte, *Error) {
	esc, err := check(e, -1)
	if err != nil {
		return nil, err
	}
	var meta *value
	if e.Metadata != nil {
		s := &scanner{b: e.Metadata}
		if !(s.peek() == '{' && s.skipCanonical(1, MaxMetadataDepth) && s.i == len(s.b)) {
			s.i = 0
			s.ws()
			if s.peek() != '{' {
				return nil, &Error{Position: -1, Field: "metadata", Msg: "must be a JSON object", Kind: ErrInvalid}
			}
			v, jerr := s.value(1, MaxMetadataDepth)
			if jerr == nil {
				s.ws()
				if s.i < len(s.b) {
					jerr = s.errf("unexpected data after the object")
				}
			}
			if jerr != nil {
				return nil, syntaxErr(-1, "metadata", jerr)
			}
			meta = &v
		}
	}
	if dst == nil {
		dst = make([]byte, 0, canonicalSizeHint(e))
	}
	sep := byte('{')
	key := func(k string) {
		dst = append(dst, sep, '"')
		dst = append(dst, k...)
		dst = append(dst, '"', ':')
		sep = ','
	}
	str := func(k, v string, bit int) {
		if v != "" {
			key(k)
			dst = appendStr(dst, v, esc&bit != 0)
		}
	}
	tim := func(k string, t time.Time) {
		if !t.IsZero() {
			key(k)
			dst = append(dst, '"')
			dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
			dst = append(dst, '"')
		}
	}
	// member writes the member k: v of an object (after '{' or ',').
	member := func(sep byte, k, v string, bit int) {
		dst = append(dst, sep, '"')
		dst = append(dst, k...)
		dst = append(dst, '"', ':')
		dst = appendStr(dst, v, esc&bit != 0)
	}
	// Keys in bytewise order: action, actor, id, metadata, outcome, reason,
	// received_at, resource, source, submitted_by, time. An object's
	// members likewise.
	str("action", e.Action, escAction)
	if a := e.Actor; a != nil && *a != (Actor{}) {
		key("actor")
		inner := byte('{')
		if a.ID != "" {
			member(inner, "id", a.ID, escActorID)
			inner = ','
		}
		if a.IP != "" {
			member(inner, "ip", a.IP, escActorIP)
			inner = ','
		}
		if a.Type != "" {
			member(inner, "type", a.Type, escActorType)
		}
		dst = append(dst, '}')
	}
	str("id", e.ID, escID)
	if e.Metadata != nil {
		key("metadata")
		if meta != nil {
			dst = appendValue(dst, meta)
		} else {
			dst = append(dst, e.Metadata...)
		}
	}
	str("outcome", e.Outcome, 0)
	str("reason", e.Reason, escReason)
	tim("received_at", e.ReceivedAt)
	if r := e.Resource; r != nil && *r != (Resource{}) {
		key("resource")
		inner := byte('{')
		if r.ID != "" {
			member(inner, "id", r.ID, escResourceID)
			inner = ','
		}
		if r.Type != "" {
			member(inner, "type", r.Type, escResourceType)
		}
		dst = append(dst, '}')
	}
	str("source", e.Source, escSource)
	str("submitted_by", e.SubmittedBy, escSubmittedBy)
	tim("time", e.Time)
	dst = append(dst, '}')
	return dst, nil
}

// appendStr writes v as a JSON string: as it is when it needs no escapes
// (esc false: check found no '"' or '\'; it holds no control characters).
func appendStr(dst []byte, v string, esc bool) []byte {
	if esc {
		return appendString(dst, v)
	}
	dst = append(dst, '"')
	dst = append(dst, v...)
	return append(dst, '"')
}

// canonicalSizeHint is about the size of e's canonical bytes (exactly, for
// an event with every field set and nothing to escape), so that one
// allocation holds them.
func canonicalSizeHint(e *Event) int {
	// The keys, quotes, colons, commas and braces of every field, and two
	// times of up to 30 bytes.
	const fixed = len(`{"action":"","actor":{"id":"","ip":"","type":""},"id":"","metadata":,"outcome":"","reason":"","received_at":"","resource":{"id":"","type":""},"source":"","submitted_by":"","time":""}`) + 2*30
	n := fixed + len(e.ID) + len(e.Action) + len(e.Outcome) + len(e.Source) + len(e.Reason) + len(e.SubmittedBy) + len(e.Metadata)
	if a := e.Actor; a != nil {
		n += len(a.ID) + len(a.Type) + len(a.IP)
	}
	if r := e.Resource; r != nil {
		n += len(r.ID) + len(r.Type)
	}
	return n
}
