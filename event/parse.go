package event

import (
	"bytes"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Caps on the string fields, in bytes of UTF-8 (each is documented in the
// package doc).
const (
	MaxActionBytes       = 256
	MaxActorIDBytes      = 1024
	MaxActorTypeBytes    = 64
	MaxActorIPBytes      = 64
	MaxResourceTypeBytes = 256
	MaxResourceIDBytes   = 1024
	MaxSourceBytes       = 256
	MaxReasonBytes       = 4096
	MaxSubmittedByBytes  = 64 // the token name (auth.MaxNameLen)
)

// serverReserve is the most the server's additions (received_at,
// submitted_by, and time when the writer gave none) add to an event's
// canonical bytes. ParseRequest checks a writer's event against
// MaxEventBytes minus this, so an accepted event always fits once finished.
const serverReserve = len(`,"received_at":""`) + len("2006-01-02T15:04:05.999999999Z") +
	len(`,"submitted_by":""`) + MaxSubmittedByBytes +
	len(`,"time":""`) + len("2006-01-02T15:04:05.999999999Z")

// fieldBit numbers the top-level fields, to catch duplicates.
const (
	bitID = 1 << iota
	bitTime
	bitActor
	bitAction
	bitResource
	bitOutcome
	bitSource
	bitReason
	bitMetadata
	bitReceivedAt
	bitSubmittedBy
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
func ParseRequest(contentType string, body []byte) ([]Event, error) {
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
		return parseNDJSON(body)
	}
	return parseJSON(body)
}

func tooMany() *Error {
	return &Error{Position: -1, Msg: "more than " + strconv.Itoa(MaxEvents) + " events", Kind: ErrTooLarge}
}

// parseJSON parses one object or an array of objects.
func parseJSON(body []byte) ([]Event, error) {
	s := &scanner{b: body}
	s.ws()
	switch s.peek() {
	case '{':
		e, err := parseWriterEvent(s, 0)
		if err != nil {
			return nil, err
		}
		if err := trailing(s, 0); err != nil {
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
			return nil, tooMany()
		}
		s.ws()
		e, err := parseWriterEvent(s, len(evs))
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
			return nil, syntaxErr(len(evs)-1, "", jerr)
		}
		break
	}
	if err := trailing(s, -1); err != nil {
		return nil, err
	}
	return evs, nil
}

// parseNDJSON parses one object per line; blank lines are skipped.
func parseNDJSON(body []byte) ([]Event, error) {
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
			return nil, tooMany()
		}
		s := &scanner{b: l}
		s.ws()
		var err *Error
		e, err := parseWriterEvent(s, len(evs))
		if err == nil {
			err = trailing(s, len(evs))
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
func trailing(s *scanner, pos int) *Error {
	s.ws()
	if s.i < len(s.b) {
		return &Error{Position: pos, Msg: "unexpected data after the JSON value at byte " + strconv.Itoa(s.i), Kind: ErrInvalid}
	}
	return nil
}

// syntaxErr turns a JSON error into an *Error for the event at pos; field
// names the enclosing field, if any.
func syntaxErr(pos int, field string, e *jsonError) *Error {
	msg := "invalid JSON at byte " + strconv.Itoa(e.off) + ": " + e.msg
	if e.shape {
		msg = e.msg
	}
	return &Error{Position: pos, Field: field + e.path, Msg: msg, Kind: ErrInvalid}
}

// parseWriterEvent parses one writer's event at pos and checks its size.
func parseWriterEvent(s *scanner, pos int) (Event, *Error) {
	start := s.i
	e, err := parseEvent(s, pos, false)
	if err != nil {
		return Event{}, err
	}
	// Canonical bytes are never longer than the JSON they came from (they
	// drop whitespace, nulls and escapes, and shorten times), so only a
	// long input needs the exact check.
	if s.i-start > MaxEventBytes-serverReserve {
		if err := checkWriterSize(&e, pos); err != nil {
			return Event{}, err
		}
	}
	return e, nil
}

// checkWriterSize fails when the canonical bytes of writer's event e (at
// position pos of the request) leave no room for the server's fields
// within MaxEventBytes.
func checkWriterSize(e *Event, pos int) *Error {
	b, cerr := appendCanonical(nil, e)
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
func parseEvent(s *scanner, pos int, stored bool) (Event, *Error) {
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
			return e, syntaxErr(pos, "", s.errf("expected a string key"))
		}
		key, jerr := s.str()
		if jerr != nil {
			return e, syntaxErr(pos, "", jerr)
		}
		s.ws()
		if jerr := s.expect(':'); jerr != nil {
			return e, syntaxErr(pos, "", jerr)
		}
		s.ws()
		var bit int
		var err *Error
		switch key {
		case "id":
			bit = bitID
			e.ID, err = stringField(s, pos, key, MaxIDBytes)
		case "time":
			bit = bitTime
			e.Time, err = timeField(s, pos, key)
		case "action":
			bit = bitAction
			if s.peek() == 'n' {
				return e, bad(key, "is required")
			}
			e.Action, err = stringField(s, pos, key, MaxActionBytes)
		case "actor":
			bit = bitActor
			e.Actor, err = actorField(s, pos)
		case "resource":
			bit = bitResource
			e.Resource, err = resourceField(s, pos)
		case "outcome":
			bit = bitOutcome
			e.Outcome, err = stringField(s, pos, key, 16)
		case "source":
			bit = bitSource
			e.Source, err = stringField(s, pos, key, MaxSourceBytes)
		case "reason":
			bit = bitReason
			e.Reason, err = stringField(s, pos, key, MaxReasonBytes)
		case "metadata":
			bit = bitMetadata
			e.Metadata, err = metadataField(s, pos)
		case "received_at", "submitted_by":
			if !stored {
				return e, bad(key, "is set by the server, not the writer")
			}
			if key == "received_at" {
				bit = bitReceivedAt
				e.ReceivedAt, err = timeField(s, pos, key)
			} else {
				bit = bitSubmittedBy
				e.SubmittedBy, err = stringField(s, pos, key, MaxSubmittedByBytes)
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
			return e, syntaxErr(pos, "", jerr)
		}
		break
	}
	if err := check(&e, pos); err != nil {
		return e, err
	}
	return e, nil
}

// check applies the rules that do not depend on the JSON text: the
// required action, the outcome's values, each string's charset.
func check(e *Event, pos int) *Error {
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
		{"actor.id", actorPart(e.Actor, 0), MaxActorIDBytes},
		{"actor.type", actorPart(e.Actor, 1), MaxActorTypeBytes},
		{"actor.ip", actorPart(e.Actor, 2), MaxActorIPBytes},
		{"resource.type", resourcePart(e.Resource, 0), MaxResourceTypeBytes},
		{"resource.id", resourcePart(e.Resource, 1), MaxResourceIDBytes},
	}
	for _, f := range fields {
		if msg := checkString(f.v, f.max); msg != "" {
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

func actorPart(a *Actor, i int) string {
	if a == nil {
		return ""
	}
	return [...]string{a.ID, a.Type, a.IP}[i]
}

func resourcePart(r *Resource, i int) string {
	if r == nil {
		return ""
	}
	return [...]string{r.Type, r.ID}[i]
}

// checkString returns why v is not acceptable as a field value, or "".
func checkString(v string, max int) string {
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
func stringField(s *scanner, pos int, field string, max int) (string, *Error) {
	switch s.peek() {
	case 'n':
		if s.null() {
			return "", nil
		}
	case '"':
		v, jerr := s.str()
		if jerr != nil {
			return "", syntaxErr(pos, field, jerr)
		}
		if msg := checkString(v, max); msg != "" {
			kind := ErrInvalid
			if field == "id" && len(v) > max {
				kind = ErrTooLarge // the id's length is a contract limit: 413
			}
			return "", &Error{Position: pos, Field: field, Msg: msg, Kind: kind}
		}
		return v, nil
	}
	return "", typeErr(s, pos, field, "must be a string")
}

// typeErr reports a value of the wrong type, or a syntax error if the
// value is not even JSON.
func typeErr(s *scanner, pos int, field, msg string) *Error {
	if _, jerr := s.value(1, MaxMetadataDepth); jerr != nil {
		return syntaxErr(pos, field, jerr)
	}
	return &Error{Position: pos, Field: field, Msg: msg, Kind: ErrInvalid}
}

func timeField(s *scanner, pos int, field string) (time.Time, *Error) {
	if c := s.peek(); c != '"' && c != 'n' {
		return time.Time{}, typeErr(s, pos, field, "must be an RFC 3339 time string like 2026-11-25T10:15:00Z")
	}
	v, err := stringField(s, pos, field, 64)
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
func objectMembers(s *scanner, pos int, field string, set func(key, v string) (max int, ok bool)) (bool, *Error) {
	if s.null() {
		return false, nil
	}
	if s.peek() != '{' {
		return false, typeErr(s, pos, field, "must be an object")
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
			return false, syntaxErr(pos, field, s.errf("expected a string key"))
		}
		key, jerr := s.str()
		if jerr != nil {
			return false, syntaxErr(pos, field, jerr)
		}
		s.ws()
		if jerr := s.expect(':'); jerr != nil {
			return false, syntaxErr(pos, field, jerr)
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
		v, err := stringField(s, pos, name, max)
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
			return false, syntaxErr(pos, field, jerr)
		}
		return true, nil
	}
}

func actorField(s *scanner, pos int) (*Actor, *Error) {
	var a Actor
	_, err := objectMembers(s, pos, "actor", func(k, v string) (int, bool) {
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

func resourceField(s *scanner, pos int) (*Resource, *Error) {
	var r Resource
	_, err := objectMembers(s, pos, "resource", func(k, v string) (int, bool) {
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
func metadataField(s *scanner, pos int) ([]byte, *Error) {
	if s.null() {
		return nil, nil
	}
	if s.peek() != '{' {
		return nil, typeErr(s, pos, "metadata", "must be a JSON object")
	}
	v, jerr := s.value(1, MaxMetadataDepth)
	if jerr != nil {
		err := syntaxErr(pos, "metadata", jerr)
		if jerr.deep {
			err.Kind = ErrTooLarge // a contract limit: 413, like the size limits
		}
		return nil, err
	}
	return appendValue(nil, &v), nil
}
