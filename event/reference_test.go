package event

// The parser and canonical writer as they were before issue 21's one-pass
// work (commit fd6669c), kept as the reference the new ones are checked
// against (TestOnePassMatchesReference, FuzzOnePassMatchesReference): same
// events, same canonical bytes, same errors. Only the names are changed
// (a "ref" prefix); the JSON scanner's tree path (value, str, number) is
// shared with the new code, which uses it for metadata that is not
// canonical already.

import (
	"bytes"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ParseRequest parses a POST /v1/events body: one JSON object or a JSON
// array ("application/json", parameters such as charset allowed), or NDJSON
// ("application/x-ndjson", one object per non-empty line). Validation is
// strict: unknown fields, a missing action, a bad time (RFC 3339), a bad
// outcome, over-long ids, metadata that is not an object or nests too deep,
// an empty body, and more than MaxEvents events are errors. The first bad
// event makes the whole request fail with an *Error naming its position and
// field. ReceivedAt and SubmittedBy are rejected if the writer sets them.
//
// The events returned have Metadata already in canonical form, times in
// UTC, and an empty actor or resource object dropped.
func refParseRequest(contentType string, body []byte) ([]Event, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, &Error{Position: -1, Msg: "content type " + strconv.Quote(contentType) + ": " + err.Error(), Kind: ErrContentType}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, &Error{Position: -1, Msg: "charset " + strconv.Quote(cs) + " (only utf-8 is accepted)", Kind: ErrContentType}
	}
	if mt != "application/json" && mt != "application/x-ndjson" {
		return nil, &Error{Position: -1, Msg: "content type " + strconv.Quote(mt) + " (send application/json or application/x-ndjson)", Kind: ErrContentType}
	}
	if len(body) > MaxRequestBytes {
		return nil, &Error{Position: -1, Msg: "body is over " + strconv.Itoa(MaxRequestBytes) + " bytes", Kind: ErrTooLarge}
	}
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		return nil, &Error{Position: -1, Msg: "empty body", Kind: ErrInvalid}
	}
	if mt == "application/x-ndjson" {
		return refParseNDJSON(body)
	}
	return refParseJSON(body)
}

func refTooMany() *Error {
	return &Error{Position: -1, Msg: "more than " + strconv.Itoa(MaxEvents) + " events", Kind: ErrTooLarge}
}

// parseJSON parses one object or an array of objects.
func refParseJSON(body []byte) ([]Event, error) {
	s := &scanner{b: body}
	s.ws()
	switch s.peek() {
	case '{':
		e, err := refParseWriterEvent(s, 0)
		if err != nil {
			return nil, err
		}
		if err := refTrailing(s, 0); err != nil {
			return nil, err
		}
		return []Event{e}, nil
	case '[':
	default:
		return nil, &Error{Position: -1, Msg: "body must be a JSON object or an array of objects", Kind: ErrInvalid}
	}
	s.i++
	s.ws()
	if s.peek() == ']' {
		return nil, &Error{Position: -1, Msg: "no events (empty array)", Kind: ErrInvalid}
	}
	var evs []Event
	for {
		if len(evs) == MaxEvents {
			return nil, refTooMany()
		}
		s.ws()
		e, err := refParseWriterEvent(s, len(evs))
		if err != nil {
			return nil, err
		}
		evs = append(evs, e)
		s.ws()
		if s.peek() == ',' {
			s.i++
			continue
		}
		if jerr := s.expect(']'); jerr != nil {
			return nil, refSyntaxErr(len(evs)-1, "", jerr)
		}
		break
	}
	if err := refTrailing(s, -1); err != nil {
		return nil, err
	}
	return evs, nil
}

// parseNDJSON parses one object per line; blank lines are skipped.
func refParseNDJSON(body []byte) ([]Event, error) {
	// Room for a line's event each (blank lines aside), up to the limit:
	// one allocation instead of a slice grown by doublings.
	evs := make([]Event, 0, min(bytes.Count(body, []byte{'\n'})+1, MaxEvents))
	line := 0
	for len(body) > 0 {
		line++
		l := body
		if n := bytes.IndexByte(body, '\n'); n >= 0 {
			l, body = body[:n], body[n+1:]
		} else {
			body = nil
		}
		if len(bytes.TrimLeft(l, " \t\r")) == 0 {
			continue
		}
		if len(evs) == MaxEvents {
			return nil, refTooMany()
		}
		s := &scanner{b: l}
		s.ws()
		var err *Error
		e, err := refParseWriterEvent(s, len(evs))
		if err == nil {
			err = refTrailing(s, len(evs))
		}
		if err != nil {
			err.Msg += " (line " + strconv.Itoa(line) + ")"
			return nil, err
		}
		evs = append(evs, e)
	}
	if len(evs) == 0 {
		return nil, &Error{Position: -1, Msg: "empty body", Kind: ErrInvalid}
	}
	return evs, nil
}

// trailing fails if anything but whitespace follows the value.
func refTrailing(s *scanner, pos int) *Error {
	s.ws()
	if s.i < len(s.b) {
		return &Error{Position: pos, Msg: "unexpected data after the JSON value at byte " + strconv.Itoa(s.i), Kind: ErrInvalid}
	}
	return nil
}

// syntaxErr turns a JSON error into an *Error for the event at pos; field
// names the enclosing field, if any.
func refSyntaxErr(pos int, field string, e *jsonError) *Error {
	msg := "invalid JSON at byte " + strconv.Itoa(e.off) + ": " + e.msg
	if e.shape {
		msg = e.msg
	}
	return &Error{Position: pos, Field: field + e.path, Msg: msg, Kind: ErrInvalid}
}

// parseWriterEvent parses one writer's event at pos and checks its size.
func refParseWriterEvent(s *scanner, pos int) (Event, *Error) {
	start := s.i
	e, err := refParseEvent(s, pos, false)
	if err != nil {
		return Event{}, err
	}
	// Canonical bytes are never longer than the JSON they came from (they
	// drop whitespace, nulls and escapes, and shorten times), so only a
	// long input needs the exact check.
	if s.i-start > MaxEventBytes-serverReserve {
		if err := refCheckWriterSize(&e, pos); err != nil {
			return Event{}, err
		}
	}
	return e, nil
}

// checkWriterSize fails when the canonical bytes of writer's event e (at
// position pos of the request) leave no room for the server's fields
// within MaxEventBytes.
func refCheckWriterSize(e *Event, pos int) *Error {
	b, cerr := refAppendCanonical(nil, e)
	if cerr != nil {
		cerr.Position = pos
		return cerr
	}
	if len(b) > MaxEventBytes-serverReserve {
		return &Error{Position: pos, Msg: "event is " + strconv.Itoa(len(b)) + " bytes in canonical form, over the limit of " +
			strconv.Itoa(MaxEventBytes-serverReserve) + " (" + strconv.Itoa(MaxEventBytes) + " once the server's fields are added)", Kind: ErrTooLarge}
	}
	return nil
}

// parseEvent parses one event object. stored allows (and Decode needs)
// the server's fields; a writer may not set them.
func refParseEvent(s *scanner, pos int, stored bool) (Event, *Error) {
	var e Event
	bad := func(field, msg string) *Error {
		return &Error{Position: pos, Field: field, Msg: msg, Kind: ErrInvalid}
	}
	if s.peek() != '{' {
		return e, bad("", "must be a JSON object")
	}
	s.i++
	seen := 0
	s.ws()
	if s.peek() == '}' {
		s.i++
		return e, bad("action", "is required")
	}
	for {
		s.ws()
		if s.peek() != '"' {
			return e, refSyntaxErr(pos, "", s.errf("expected a string key"))
		}
		key, jerr := s.str()
		if jerr != nil {
			return e, refSyntaxErr(pos, "", jerr)
		}
		s.ws()
		if jerr := s.expect(':'); jerr != nil {
			return e, refSyntaxErr(pos, "", jerr)
		}
		s.ws()
		var bit int
		var err *Error
		switch key {
		case "id":
			bit = bitID
			e.ID, err = refStringField(s, pos, key, MaxIDBytes)
		case "time":
			bit = bitTime
			e.Time, err = refTimeField(s, pos, key)
		case "action":
			bit = bitAction
			if s.peek() == 'n' {
				return e, bad(key, "is required")
			}
			e.Action, err = refStringField(s, pos, key, MaxActionBytes)
		case "actor":
			bit = bitActor
			e.Actor, err = refActorField(s, pos)
		case "resource":
			bit = bitResource
			e.Resource, err = refResourceField(s, pos)
		case "outcome":
			bit = bitOutcome
			e.Outcome, err = refStringField(s, pos, key, 16)
		case "source":
			bit = bitSource
			e.Source, err = refStringField(s, pos, key, MaxSourceBytes)
		case "reason":
			bit = bitReason
			e.Reason, err = refStringField(s, pos, key, MaxReasonBytes)
		case "metadata":
			bit = bitMetadata
			e.Metadata, err = refMetadataField(s, pos)
		case "received_at", "submitted_by":
			if !stored {
				return e, bad(key, "is set by the server, not the writer")
			}
			if key == "received_at" {
				bit = bitReceivedAt
				e.ReceivedAt, err = refTimeField(s, pos, key)
			} else {
				bit = bitSubmittedBy
				e.SubmittedBy, err = refStringField(s, pos, key, MaxSubmittedByBytes)
			}
		default:
			return e, bad(key, "unknown field (free-form data goes in metadata)")
		}
		if err != nil {
			return e, err
		}
		if seen&bit != 0 {
			return e, bad(key, "duplicate field")
		}
		seen |= bit
		s.ws()
		if s.peek() == ',' {
			s.i++
			continue
		}
		if jerr := s.expect('}'); jerr != nil {
			return e, refSyntaxErr(pos, "", jerr)
		}
		break
	}
	if err := refCheck(&e, pos); err != nil {
		return e, err
	}
	return e, nil
}

// check applies the rules that do not depend on the JSON text: the
// required action, the outcome's values, each string's charset.
func refCheck(e *Event, pos int) *Error {
	bad := func(field, msg string) *Error {
		return &Error{Position: pos, Field: field, Msg: msg, Kind: ErrInvalid}
	}
	if e.Action == "" {
		return bad("action", "is required")
	}
	for _, r := range e.Action {
		if unicode.IsSpace(r) {
			return bad("action", "must not contain whitespace (use a dotted name like \"user.login\")")
		}
	}
	switch e.Outcome {
	case "", OutcomeSuccess, OutcomeFailure, OutcomeDenied, OutcomeUnknown:
	default:
		return bad("outcome", "must be one of success, failure, denied, unknown")
	}
	fields := [...]struct {
		name string
		v    string
		max  int
	}{
		{"id", e.ID, MaxIDBytes},
		{"action", e.Action, MaxActionBytes},
		{"source", e.Source, MaxSourceBytes},
		{"reason", e.Reason, MaxReasonBytes},
		{"submitted_by", e.SubmittedBy, MaxSubmittedByBytes},
		{"actor.id", refActorPart(e.Actor, 0), MaxActorIDBytes},
		{"actor.type", refActorPart(e.Actor, 1), MaxActorTypeBytes},
		{"actor.ip", refActorPart(e.Actor, 2), MaxActorIPBytes},
		{"resource.type", refResourcePart(e.Resource, 0), MaxResourceTypeBytes},
		{"resource.id", refResourcePart(e.Resource, 1), MaxResourceIDBytes},
	}
	for _, f := range fields {
		if msg := refCheckString(f.v, f.max); msg != "" {
			return bad(f.name, msg)
		}
	}
	for _, f := range [...]struct {
		name string
		t    time.Time
	}{{"time", e.Time}, {"received_at", e.ReceivedAt}} {
		if !f.t.IsZero() && (f.t.Year() < 0 || f.t.Year() > 9999) {
			return bad(f.name, "year outside 0000..9999")
		}
	}
	return nil
}

func refActorPart(a *Actor, i int) string {
	if a == nil {
		return ""
	}
	return [...]string{a.ID, a.Type, a.IP}[i]
}

func refResourcePart(r *Resource, i int) string {
	if r == nil {
		return ""
	}
	return [...]string{r.Type, r.ID}[i]
}

// checkString returns why v is not acceptable as a field value, or "".
func refCheckString(v string, max int) string {
	if len(v) > max {
		return "longer than " + strconv.Itoa(max) + " bytes"
	}
	for _, r := range v {
		if r == utf8.RuneError {
			if !utf8.ValidString(v) {
				return "invalid UTF-8"
			}
			continue
		}
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	return ""
}

// stringField reads a string (or null, meaning absent) and checks it.
func refStringField(s *scanner, pos int, field string, max int) (string, *Error) {
	switch s.peek() {
	case 'n':
		if s.null() {
			return "", nil
		}
	case '"':
		v, jerr := s.str()
		if jerr != nil {
			return "", refSyntaxErr(pos, field, jerr)
		}
		if msg := refCheckString(v, max); msg != "" {
			kind := ErrInvalid
			if field == "id" && len(v) > max {
				kind = ErrTooLarge // the id's length is a contract limit: 413
			}
			return "", &Error{Position: pos, Field: field, Msg: msg, Kind: kind}
		}
		return v, nil
	}
	return "", refTypeErr(s, pos, field, "must be a string")
}

// typeErr reports a value of the wrong type, or a syntax error if the
// value is not even JSON.
func refTypeErr(s *scanner, pos int, field, msg string) *Error {
	if _, jerr := s.value(1, MaxMetadataDepth); jerr != nil {
		return refSyntaxErr(pos, field, jerr)
	}
	return &Error{Position: pos, Field: field, Msg: msg, Kind: ErrInvalid}
}

func refTimeField(s *scanner, pos int, field string) (time.Time, *Error) {
	if c := s.peek(); c != '"' && c != 'n' {
		return time.Time{}, refTypeErr(s, pos, field, "must be an RFC 3339 time string like 2026-11-25T10:15:00Z")
	}
	v, err := refStringField(s, pos, field, 64)
	if err != nil || v == "" {
		if err == nil && s.b[s.i-1] == '"' {
			err = &Error{Position: pos, Field: field, Msg: "must be an RFC 3339 time like 2026-11-25T10:15:00Z", Kind: ErrInvalid}
		}
		return time.Time{}, err
	}
	t, perr := time.Parse(time.RFC3339, v)
	if perr != nil {
		return time.Time{}, &Error{Position: pos, Field: field, Msg: "must be an RFC 3339 time like 2026-11-25T10:15:00Z", Kind: ErrInvalid}
	}
	return t.UTC(), nil
}

// objectMembers reads an object whose members are all strings (or null),
// calling set for each; set returns false for an unknown key.
func refObjectMembers(s *scanner, pos int, field string, set func(key, v string) (max int, ok bool)) (bool, *Error) {
	if s.null() {
		return false, nil
	}
	if s.peek() != '{' {
		return false, refTypeErr(s, pos, field, "must be an object")
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		return false, nil
	}
	seen := map[string]bool{}
	for {
		s.ws()
		if s.peek() != '"' {
			return false, refSyntaxErr(pos, field, s.errf("expected a string key"))
		}
		key, jerr := s.str()
		if jerr != nil {
			return false, refSyntaxErr(pos, field, jerr)
		}
		s.ws()
		if jerr := s.expect(':'); jerr != nil {
			return false, refSyntaxErr(pos, field, jerr)
		}
		s.ws()
		name := field + "." + key
		max, ok := set(key, "")
		if !ok {
			return false, &Error{Position: pos, Field: name, Msg: "unknown field", Kind: ErrInvalid}
		}
		if seen[key] {
			return false, &Error{Position: pos, Field: name, Msg: "duplicate field", Kind: ErrInvalid}
		}
		seen[key] = true
		v, err := refStringField(s, pos, name, max)
		if err != nil {
			return false, err
		}
		set(key, v)
		s.ws()
		if s.peek() == ',' {
			s.i++
			continue
		}
		if jerr := s.expect('}'); jerr != nil {
			return false, refSyntaxErr(pos, field, jerr)
		}
		return true, nil
	}
}

func refActorField(s *scanner, pos int) (*Actor, *Error) {
	var a Actor
	_, err := refObjectMembers(s, pos, "actor", func(k, v string) (int, bool) {
		switch k {
		case "id":
			a.ID = v
			return MaxActorIDBytes, true
		case "type":
			a.Type = v
			return MaxActorTypeBytes, true
		case "ip":
			a.IP = v
			return MaxActorIPBytes, true
		}
		return 0, false
	})
	if err != nil || a == (Actor{}) {
		return nil, err
	}
	return &a, nil
}

func refResourceField(s *scanner, pos int) (*Resource, *Error) {
	var r Resource
	_, err := refObjectMembers(s, pos, "resource", func(k, v string) (int, bool) {
		switch k {
		case "id":
			r.ID = v
			return MaxResourceIDBytes, true
		case "type":
			r.Type = v
			return MaxResourceTypeBytes, true
		}
		return 0, false
	})
	if err != nil || r == (Resource{}) {
		return nil, err
	}
	return &r, nil
}

// metadataField reads metadata (an object nested at most
// MaxMetadataDepth deep, or null) and returns it in canonical form.
func refMetadataField(s *scanner, pos int) ([]byte, *Error) {
	if s.null() {
		return nil, nil
	}
	if s.peek() != '{' {
		return nil, refTypeErr(s, pos, "metadata", "must be a JSON object")
	}
	v, jerr := s.value(1, MaxMetadataDepth)
	if jerr != nil {
		err := refSyntaxErr(pos, "metadata", jerr)
		if jerr.deep {
			err.Kind = ErrTooLarge // a contract limit: 413, like the size limits
		}
		return nil, err
	}
	return appendValue(nil, &v), nil
}

// appendCanonical appends e's canonical bytes to dst after checking that
// they would decode back to e (see Canonical). The top-level keys are
// written in sorted order by hand.
func refAppendCanonical(dst []byte, e *Event) ([]byte, *Error) {
	if err := refCheck(e, -1); err != nil {
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
			return nil, refSyntaxErr(-1, "metadata", jerr)
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

// refCanonical is Canonical as it was.
func refCanonical(e Event) ([]byte, error) {
	b, err := refAppendCanonical(make([]byte, 0, 512), &e)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEventBytes {
		return nil, &Error{Position: -1, Msg: "event is " + strconv.Itoa(len(b)) + " bytes in canonical form, over the limit of " + strconv.Itoa(MaxEventBytes), Kind: ErrTooLarge}
	}
	return b, nil
}
