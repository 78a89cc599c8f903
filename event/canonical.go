package event

import "time"

// appendCanonical appends e's canonical bytes to dst after checking that
// they would decode back to e (see Canonical). The top-level keys are
// written in sorted order by hand.
func appendCanonical(dst []byte, e *Event) ([]byte, *Error) {
	if err := check(e, -1); err != nil {
		return nil, err
	}
	var meta *value
	if e.Metadata != nil {
		s := &scanner{b: e.Metadata}
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
	sep := byte('{')
	key := func(k string) {
		dst = append(dst, sep, '"')
		dst = append(dst, k...)
		dst = append(dst, '"', ':')
		sep = ','
	}
	str := func(k, v string) {
		if v != "" {
			key(k)
			dst = appendString(dst, v)
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
	// obj writes key k and an object of the non-empty fields, given in
	// bytewise key order.
	type field struct{ k, v string }
	obj := func(k string, fields ...field) {
		key(k)
		inner := byte('{')
		for _, f := range fields {
			if f.v != "" {
				dst = append(dst, inner, '"')
				dst = append(dst, f.k...)
				dst = append(dst, '"', ':')
				dst = appendString(dst, f.v)
				inner = ','
			}
		}
		dst = append(dst, '}')
	}
	// Keys in bytewise order: action, actor, id, metadata, outcome, reason,
	// received_at, resource, source, submitted_by, time.
	str("action", e.Action)
	if a := e.Actor; a != nil && *a != (Actor{}) {
		obj("actor", field{"id", a.ID}, field{"ip", a.IP}, field{"type", a.Type})
	}
	str("id", e.ID)
	if meta != nil {
		key("metadata")
		dst = appendValue(dst, meta)
	}
	str("outcome", e.Outcome)
	str("reason", e.Reason)
	tim("received_at", e.ReceivedAt)
	if r := e.Resource; r != nil && *r != (Resource{}) {
		obj("resource", field{"id", r.ID}, field{"type", r.Type})
	}
	str("source", e.Source)
	str("submitted_by", e.SubmittedBy)
	tim("time", e.Time)
	dst = append(dst, '}')
	return dst, nil
}
