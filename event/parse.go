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
// UTC, and an empty actor or resource object dropped. They do not alias
// body, but share memory with each other (issue 21: a few allocations per
// request, not one per field): an NDJSON event's strings are substrings of
// one copy of its line, and the events' actors, resources and metadata come
// from shared blocks, so whoever keeps an event keeps its line, and should
// copy Metadata rather than write into it.
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
		e, err := parseWriterEvent(s, 0, nil)
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
	a := &parseAlloc{chunk: 64}
	for {
		if len(evs) == MaxEvents {
			return nil, tooMany()
		}
		s.ws()
		e, err := parseWriterEvent(s, len(evs), a)
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
	n := min(bytes.Count(body, []byte{'\n'})+1, MaxEvents)
	evs := make([]Event, 0, n)
	a := &parseAlloc{chunk: n}
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
		// The line as one string: the event's strings are substrings of
		// it (one allocation per event, not one per field).
		s := &scanner{b: l, src: string(l)}
		s.ws()
		var err *Error
		e, err := parseWriterEvent(s, len(evs), a)
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

// parseAlloc hands out what a request's events point to (their actor and
// resource, their metadata's bytes) from a few allocations shared by the
// request's events rather than one per event and field (issue 21). A nil
// *parseAlloc allocates each on its own.
type parseAlloc struct {
	chunk     int // events per allocation of actors or resources
	actors    []Actor
	resources []Resource
	meta      []byte // free room for metadata
}

// metaChunk is the least parseAlloc allocates for metadata at a time.
const metaChunk = 16 << 10

func (a *parseAlloc) actor(v Actor) *Actor {
	if a == nil {
		p := new(Actor)
		*p = v
		return p
	}
	if len(a.actors) == 0 {
		a.actors = make([]Actor, a.chunk)
	}
	p := &a.actors[0]
	*p, a.actors = v, a.actors[1:]
	return p
}

func (a *parseAlloc) resource(v Resource) *Resource {
	if a == nil {
		p := new(Resource)
		*p = v
		return p
	}
	if len(a.resources) == 0 {
		a.resources = make([]Resource, a.chunk)
	}
	p := &a.resources[0]
	*p, a.resources = v, a.resources[1:]
	return p
}

// bytes returns a copy of b, with no room to append into.
func (a *parseAlloc) bytes(b []byte) []byte {
	if a == nil {
		return append([]byte(nil), b...)
	}
	if cap(a.meta)-len(a.meta) < len(b) {
		a.meta = make([]byte, 0, max(metaChunk, len(b)))
	}
	n := len(a.meta)
	a.meta = append(a.meta, b...)
	return a.meta[n:len(a.meta):len(a.meta)]
}

// appendValue returns v's canonical bytes, at most n, with no room to
// append into.
func (a *parseAlloc) appendValue(n int, v *value) []byte {
	if a == nil {
		return appendValue(make([]byte, 0, n), v)
	}
	if cap(a.meta)-len(a.meta) < n {
		a.meta = make([]byte, 0, max(metaChunk, n))
	}
	k := len(a.meta)
	a.meta = appendValue(a.meta, v)
	return a.meta[k:len(a.meta):len(a.meta)]
}

// parseWriterEvent parses one writer's event at pos and checks its size.
func parseWriterEvent(s *scanner, pos int, a *parseAlloc) (Event, *Error) {
	start := s.i
	e, err := parseEventAlloc(s, pos, false, a)
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
	return parseEventAlloc(s, pos, stored, nil)
}

// parseEventAlloc is parseEvent taking the event's actor, resource and
// metadata from a.
func parseEventAlloc(s *scanner, pos int, stored bool, a *parseAlloc) (Event, *Error) {
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
			e.Actor, err = actorField(s, pos, a)
		case "resource":
			bit = bitResource
			e.Resource, err = resourceField(s, pos, a)
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
			e.Metadata, err = metadataFieldAlloc(s, pos, a)
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
	// Each string was checked as it was read (stringField): only the rules
	// across fields are left.
	if err := checkRules(&e, pos); err != nil {
		return e, err
	}
	if err := checkYears(&e, pos); err != nil {
		return e, err
	}
	return e, nil
}

// checkRules checks the required action, that it holds no whitespace, and
// the outcome's values.
func checkRules(e *Event, pos int) *Error {
	bad := func(field, msg string) *Error {
		return &Error{Position: pos, Field: field, Msg: msg, Kind: ErrInvalid}
	}
	if e.Action == "" {
		return bad("action", "is required")
	}
	if hasSpace(e.Action) {
		return bad("action", "must not contain whitespace (use a dotted name like \"user.login\")")
	}
	switch e.Outcome {
	case "", OutcomeSuccess, OutcomeFailure, OutcomeDenied, OutcomeUnknown:
	default:
		return bad("outcome", "must be one of success, failure, denied, unknown")
	}
	return nil
}

// hasSpace reports whether v holds a character unicode.IsSpace.
func hasSpace(v string) bool {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= utf8.RuneSelf:
			for _, r := range v[i:] {
				if unicode.IsSpace(r) {
					return true
				}
			}
			return false
		case c == ' ' || ('\t' <= c && c <= '\r'):
			return true
		}
	}
	return false
}

// checkYears checks that the times are within the years RFC 3339 can write.
func checkYears(e *Event, pos int) *Error {
	for _, f := range [...]struct {
		name string
		t    time.Time
	}{{"time", e.Time}, {"received_at", e.ReceivedAt}} {
		if !f.t.IsZero() && (f.t.Year() < 0 || f.t.Year() > 9999) {
			return &Error{Position: pos, Field: f.name, Msg: "year outside 0000..9999", Kind: ErrInvalid}
		}
	}
	return nil
}

// Bits of check's result: the string fields whose canonical form needs
// escapes (a '"' or a '\'; the other characters JSON escapes are rejected).
const (
	escID = 1 << iota
	escAction
	escSource
	escReason
	escSubmittedBy
	escActorID
	escActorType
	escActorIP
	escResourceType
	escResourceID
)

// check applies the rules that do not depend on the JSON text: the
// required action, the outcome's values, each string's cap and charset. It
// returns which strings need escapes in canonical form (esc* bits).
func check(e *Event, pos int) (esc int, err *Error) {
	if err := checkRules(e, pos); err != nil {
		return 0, err
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
	for k, f := range fields {
		msg, q := checkString(f.v, f.max)
		if msg != "" {
			return 0, &Error{Position: pos, Field: f.name, Msg: msg, Kind: ErrInvalid}
		}
		if q {
			esc |= 1 << k
		}
	}
	if err := checkYears(e, pos); err != nil {
		return 0, err
	}
	return esc, nil
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

// checkString returns why v is not acceptable as a field value, or "";
// and, if it is, whether its JSON needs escapes (it holds a '"' or a '\').
func checkString(v string, max int) (msg string, esc bool) {
	if len(v) > max {
		return "longer than " + strconv.Itoa(max) + " bytes", false
	}
	// Eight bytes at a time while they are printable ASCII other than '"'
	// and '\\', then ASCII a byte at a time, the rest a rune at a time.
	i := 0
	for ; i+8 <= len(v); i += 8 {
		w := uint64(v[i]) | uint64(v[i+1])<<8 | uint64(v[i+2])<<16 | uint64(v[i+3])<<24 |
			uint64(v[i+4])<<32 | uint64(v[i+5])<<40 | uint64(v[i+6])<<48 | uint64(v[i+7])<<56
		if !plainWord(w) {
			break
		}
	}
	for ; i < len(v); i++ {
		switch c := v[i]; {
		case c >= utf8.RuneSelf:
			for _, r := range v[i:] {
				if r == utf8.RuneError {
					if !utf8.ValidString(v) {
						return "invalid UTF-8", false
					}
					continue
				}
				if unicode.IsControl(r) {
					return "must not contain control characters", false
				}
				if r == '"' || r == '\\' {
					esc = true
				}
			}
			return "", esc
		case c < 0x20 || c == 0x7f:
			return "must not contain control characters", false
		case c == '"' || c == '\\':
			esc = true
		}
	}
	return "", esc
}

// plainWord reports whether the eight bytes of w are all printable ASCII
// (0x20..0x7e) and none is '"' or '\\' (the bit tricks of "Bit Twiddling
// Hacks": a byte less than n, greater than n, equal to c).
func plainWord(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(x uint64) bool { return (x-ones)&^x&highs != 0 }
	less := (w-0x20*ones)&^w&highs != 0
	more := ((w+(127-0x7e)*ones)|w)&highs != 0
	return !less && !more && !hasZero(w^'"'*ones) && !hasZero(w^'\\'*ones)
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
		// A plain string (printable ASCII, no escape) can only be too long.
		if len(v) > max || !s.plain {
			if msg, _ := checkString(v, max); msg != "" {
				kind := ErrInvalid
				if field == "id" && len(v) > max {
					kind = ErrTooLarge // the id's length is a contract limit: 413
				}
				return "", &Error{Position: pos, Field: field, Msg: msg, Kind: kind}
			}
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

// objectStrings reads an object whose members are all strings (or null)
// named in names (at most 8; paths are their JSON paths), with the caps in
// maxes, into vals; it reports
// whether the object had any member (null and {} have none).
func objectStrings(s *scanner, pos int, field string, names, paths []string, maxes []int, vals []string) (bool, *Error) {
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
	var seen uint8
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
		k := 0
		for k < len(names) && names[k] != key {
			k++
		}
		if k == len(names) {
			return false, &Error{Position: pos, Field: field + "." + key, Msg: "unknown field", Kind: ErrInvalid}
		}
		if seen&(1<<k) != 0 {
			return false, &Error{Position: pos, Field: field + "." + key, Msg: "duplicate field", Kind: ErrInvalid}
		}
		seen |= 1 << k
		v, err := stringField(s, pos, paths[k], maxes[k])
		if err != nil {
			return false, err
		}
		vals[k] = v
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

// The members of actor and resource, their JSON paths (for errors, without
// building them for each event) and their caps.
var (
	actorNames    = []string{"id", "type", "ip"}
	actorPaths    = []string{"actor.id", "actor.type", "actor.ip"}
	actorMaxes    = []int{MaxActorIDBytes, MaxActorTypeBytes, MaxActorIPBytes}
	resourceNames = []string{"id", "type"}
	resourcePaths = []string{"resource.id", "resource.type"}
	resourceMaxes = []int{MaxResourceIDBytes, MaxResourceTypeBytes}
)

func actorField(s *scanner, pos int, a *parseAlloc) (*Actor, *Error) {
	var v [3]string
	_, err := objectStrings(s, pos, "actor", actorNames, actorPaths, actorMaxes, v[:])
	if err != nil || v == [3]string{} {
		return nil, err
	}
	return a.actor(Actor{ID: v[0], Type: v[1], IP: v[2]}), nil
}

func resourceField(s *scanner, pos int, a *parseAlloc) (*Resource, *Error) {
	var v [2]string
	_, err := objectStrings(s, pos, "resource", resourceNames, resourcePaths, resourceMaxes, v[:])
	if err != nil || v == [2]string{} {
		return nil, err
	}
	return a.resource(Resource{ID: v[0], Type: v[1]}), nil
}

// metadataField reads metadata (an object nested at most
// MaxMetadataDepth deep, or null) and returns it in canonical form.
func metadataField(s *scanner, pos int) ([]byte, *Error) {
	return metadataFieldAlloc(s, pos, nil)
}

// metadataFieldAlloc is metadataField taking the bytes from a.
func metadataFieldAlloc(s *scanner, pos int, a *parseAlloc) ([]byte, *Error) {
	if s.null() {
		return nil, nil
	}
	if s.peek() != '{' {
		return nil, typeErr(s, pos, "metadata", "must be a JSON object")
	}
	// Already canonical (the usual case): a copy of its bytes.
	start := s.i
	if s.skipCanonical(1, MaxMetadataDepth) {
		return a.bytes(s.b[start:s.i]), nil
	}
	s.i = start
	v, jerr := s.value(1, MaxMetadataDepth)
	if jerr != nil {
		err := syntaxErr(pos, "metadata", jerr)
		if jerr.deep {
			err.Kind = ErrTooLarge // a contract limit: 413, like the size limits
		}
		return nil, err
	}
	// Canonical bytes are never longer than the JSON they come from.
	return a.appendValue(s.i-start, &v), nil
}
