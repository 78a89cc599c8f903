package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"indelible.dev/event"
)

// The attributes the mapping reads (docs/otlp.md). R is a record's
// attributes, S its resource's.
const (
	attrUID        = "log.record.uid"            // R: id
	attrEventName  = "event.name"                // R: action, after the record's event_name
	attrAction     = "audit.action"              // R: action
	attrUserID     = "user.id"                   // R: actor.id (type user), in this order
	attrEndUserID  = "enduser.id"                //
	attrUserName   = "user.name"                 //
	attrClientAddr = "client.address"            // R: actor.ip
	attrResType    = "audit.resource.type"       // R: resource.type
	attrResID      = "audit.resource.id"         // R: resource.id
	attrOutcome    = "audit.outcome"             // R: outcome, then event.outcome
	attrEvOutcome  = "event.outcome"             //
	attrHTTPStatus = "http.response.status_code" // R: outcome when neither is set (kept in metadata)
	attrReason     = "audit.reason"              // R: reason
	attrService    = "service.name"              // S: source, and actor (type service) when R names no user
)

// Options configure Map.
type Options struct {
	// DefaultAction is the action of a record that names none (no
	// event_name, event.name or audit.action). Empty: such records are
	// refused.
	DefaultAction string
}

// Problem is why one record was refused.
type Problem struct {
	Record int    // 0-based position of the record in the request, across every resource and scope
	Msg    string // names the record (its position and path) and the problem
}

// Result is what Map makes of a request.
type Result struct {
	// Events are the accepted records' events, in request order; Records
	// gives each one's position in the request.
	Events  []event.Event
	Records []int
	// Problems lists the refused records, in request order.
	Problems []Problem
	// Total counts the request's records.
	Total int
}

// Rejected returns the number of refused records.
func (r *Result) Rejected() int { return len(r.Problems) }

// FirstProblem returns the message of the first refused record, or "".
func (r *Result) FirstProblem() string {
	if len(r.Problems) == 0 {
		return ""
	}
	return r.Problems[0].Msg
}

// Map maps every log record of logs to an event (docs/otlp.md has the
// table). A record that cannot become a valid event (no action and no
// DefaultAction, a reserved action, a field over its cap or with control
// characters, metadata nested too deep, an event over event.MaxEventBytes
// with the server's fields, a timestamp past 2262) is refused and listed in
// Problems; the others are mapped. Each event passes event.Check, so
// appending it cannot fail on its content. Map never fails as a whole.
func Map(logs plog.Logs, opts Options) Result {
	var res Result
	res.Events = make([]event.Event, 0, logs.LogRecordCount())
	res.Records = make([]int, 0, logs.LogRecordCount())
	m := mapper{opts: opts}
	rls := logs.ResourceLogs()
	for i := range rls.Len() {
		rl := rls.At(i)
		res0 := rl.Resource().Attributes()
		m.resourceJSON = m.resourceJSON[:0]
		m.depth, m.badKey = 2, false
		if res0.Len() > 0 {
			m.resourceJSON, m.kvs = m.appendMap(m.resourceJSON, res0, nil, m.kvs, 2)
		}
		m.resDepth, m.resBad = m.depth, m.badKey
		m.service, _ = stringAttr(res0, attrService)
		sls := rl.ScopeLogs()
		for j := range sls.Len() {
			sl := sls.At(j)
			m.scopeJSON = appendScope(m.scopeJSON[:0], sl.Scope())
			lrs := sl.LogRecords()
			for k := range lrs.Len() {
				pos := res.Total
				res.Total++
				e, msg := m.record(lrs.At(k))
				if msg != "" {
					res.Problems = append(res.Problems, Problem{Record: pos, Msg: "log record " + itoa(pos) +
						" (resourceLogs[" + itoa(i) + "].scopeLogs[" + itoa(j) + "].logRecords[" + itoa(k) + "]): " + msg})
					continue
				}
				res.Events = append(res.Events, e)
				res.Records = append(res.Records, pos)
			}
		}
	}
	return res
}

// mapper holds what the records of one resource and scope share.
type mapper struct {
	opts         Options
	service      string
	resourceJSON []byte // S as a JSON object, or empty
	scopeJSON    []byte // {"name","version"}, or empty
	used         []string
	kvs          []kv // appendMap's scratch
	// Set while writing a record's metadata: the deepest nesting written
	// (the metadata object is 1), and whether a key was not valid UTF-8
	// (replaced, so two keys may now be equal).
	depth    int
	badKey   bool
	resDepth int  // depth of the resource's attributes, as a metadata value
	resBad   bool // a key of the resource's attributes was not valid UTF-8
}

type kv struct {
	k string
	v pcommon.Value
}

// record maps one log record, or says why it cannot.
func (m *mapper) record(lr plog.LogRecord) (event.Event, string) {
	var e event.Event
	attrs := lr.Attributes()
	m.used = m.used[:0]
	take := func(key string) (string, bool) {
		v, ok := stringAttr(attrs, key)
		if ok && v != "" {
			m.used = append(m.used, key)
		}
		return v, ok
	}

	if id, ok := take(attrUID); ok {
		e.ID = id
	}
	ts := lr.Timestamp()
	if ts == 0 {
		ts = lr.ObservedTimestamp()
	}
	if ts != 0 {
		if uint64(ts) > math.MaxInt64 {
			return e, "time_unix_nano " + strconv.FormatUint(uint64(ts), 10) + " is past the year 2262"
		}
		e.Time = time.Unix(0, int64(ts)).UTC()
	}

	switch {
	case lr.EventName() != "":
		e.Action = lr.EventName()
	default:
		if a, ok := take(attrEventName); ok && a != "" {
			e.Action = a
		} else if a, ok := take(attrAction); ok && a != "" {
			e.Action = a
		}
	}
	if e.Action == "" {
		if m.opts.DefaultAction == "" {
			return e, "no action: set the record's event_name, or the attribute event.name or audit.action (or start the server with --otlp-default-action)"
		}
		e.Action = m.opts.DefaultAction
	}

	var actor event.Actor
	for _, k := range [...]string{attrUserID, attrEndUserID, attrUserName} {
		if v, ok := take(k); ok && v != "" {
			actor.ID, actor.Type = v, "user"
			break
		}
	}
	if actor.ID == "" && m.service != "" {
		actor.ID, actor.Type = m.service, "service"
	}
	if ip, ok := take(attrClientAddr); ok {
		actor.IP = ip
	}
	if actor != (event.Actor{}) {
		e.Actor = &actor
	}

	var r event.Resource
	r.Type, _ = take(attrResType)
	r.ID, _ = take(attrResID)
	if r != (event.Resource{}) {
		e.Resource = &r
	}

	e.Outcome = event.OutcomeUnknown
	if o, ok := outcomeAttr(attrs, attrOutcome); ok {
		e.Outcome = o
		m.used = append(m.used, attrOutcome)
	} else if o, ok := outcomeAttr(attrs, attrEvOutcome); ok {
		e.Outcome = o
		m.used = append(m.used, attrEvOutcome)
	} else if code, ok := intAttr(attrs, attrHTTPStatus); ok {
		// The status code itself stays in the attributes: the outcome
		// only summarises it.
		switch {
		case code >= 200 && code < 300:
			e.Outcome = event.OutcomeSuccess
		case code == 401 || code == 403:
			e.Outcome = event.OutcomeDenied
		case code >= 400 && code < 600:
			e.Outcome = event.OutcomeFailure
		}
	}
	e.Source = m.service
	e.Reason, _ = take(attrReason)
	// The server's own actions and source (indelible.*, "indelible") are
	// refused on the writers' path: the record is, not the batch.
	if err := event.Reserved(&e, -1); err != nil {
		var ee *event.Error
		errors.As(err, &ee)
		return e, "field " + strconv.Quote(ee.Field) + " of its event: " + ee.Msg
	}

	e.Metadata = m.metadata(lr)
	// event.Check encodes the event to check its metadata and size, which
	// was half the mapping's cost. The metadata written here is a valid
	// JSON object with unique keys and the depth known, and its canonical
	// form is no longer than it; so when it is shallow enough, its keys
	// were valid UTF-8 and a bound on the event's size is within the
	// limit, checking the fields is enough. Otherwise, Check.
	check := event.Check
	if m.depth <= event.MaxMetadataDepth && !m.badKey && sizeBound(&e) <= maxCheckedBytes {
		check = event.CheckFields
	}
	if err := check(e); err != nil {
		var ee *event.Error
		if errors.As(err, &ee) {
			if ee.Field != "" {
				return e, "field " + strconv.Quote(ee.Field) + " of its event: " + ee.Msg
			}
			return e, ee.Msg
		}
		return e, err.Error()
	}
	return e, ""
}

// maxCheckedBytes is the size bound below which an event needs no
// encoding to know it fits: the writer's share of event.MaxEventBytes
// (event.Check leaves room for the server's fields, at most 170 bytes),
// with margin.
const maxCheckedBytes = event.MaxEventBytes - 1024

// sizeBound bounds the canonical size of e: its metadata as written (the
// canonical form is never longer), each string field twice over (escaped
// quotes and backslashes), and the keys, punctuation and time.
func sizeBound(e *event.Event) int {
	n := len(e.Metadata) + 2*(len(e.ID)+len(e.Action)+len(e.Source)+len(e.Reason)+len(e.Outcome)) + 256
	if e.Actor != nil {
		n += 2 * (len(e.Actor.ID) + len(e.Actor.Type) + len(e.Actor.IP))
	}
	if e.Resource != nil {
		n += 2 * (len(e.Resource.Type) + len(e.Resource.ID))
	}
	return n
}

// metadata returns the record's metadata object: the attributes left once
// the mapped ones are taken out, the body, the resource's attributes, the
// scope, the severity and the trace context, each only when present; nil
// when none is. Keys are written in sorted order.
func (m *mapper) metadata(lr plog.LogRecord) []byte {
	b := make([]byte, 0, 64+len(m.resourceJSON)+len(m.scopeJSON)+32*lr.Attributes().Len())
	sep := byte('{')
	key := func(k string) {
		b = append(b, sep, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		sep = ','
	}
	m.depth, m.badKey = 1, false
	attrs := lr.Attributes()
	if attrs.Len() > len(m.used) {
		mark := len(b)
		key("attributes")
		n := len(b)
		b, m.kvs = m.appendMap(b, attrs, m.used, m.kvs, 2)
		if len(b) == n+2 { // {}: every attribute was mapped
			b, sep = b[:mark], byte(b[mark])
		}
	}
	if body := lr.Body(); body.Type() != pcommon.ValueTypeEmpty {
		key("body")
		b = m.appendValue(b, body, 2)
	}
	if len(m.resourceJSON) > 0 {
		key("resource")
		b = append(b, m.resourceJSON...)
		m.depth = max(m.depth, m.resDepth)
		m.badKey = m.badKey || m.resBad
	}
	if len(m.scopeJSON) > 0 {
		key("scope")
		b = append(b, m.scopeJSON...)
		m.depth = max(m.depth, 2)
	}
	if t := lr.SeverityText(); t != "" {
		key("severity")
		b = appendString(b, t)
	} else if n := lr.SeverityNumber(); n != 0 {
		key("severity")
		b = strconv.AppendInt(b, int64(n), 10)
	}
	if id := lr.SpanID(); !id.IsEmpty() {
		key("span_id")
		b = append(b, '"')
		b = hex.AppendEncode(b, id[:])
		b = append(b, '"')
	}
	if id := lr.TraceID(); !id.IsEmpty() {
		key("trace_id")
		b = append(b, '"')
		b = hex.AppendEncode(b, id[:])
		b = append(b, '"')
	}
	if sep == '{' {
		return nil
	}
	return append(b, '}')
}

// stringAttr returns attribute key of m as a string: a string as is, an
// integer in decimal. Other kinds are not used by the mapping (they stay
// in the metadata).
func stringAttr(m pcommon.Map, key string) (string, bool) {
	v, ok := m.Get(key)
	if !ok {
		return "", false
	}
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return v.Str(), true
	case pcommon.ValueTypeInt:
		return strconv.FormatInt(v.Int(), 10), true
	}
	return "", false
}

// outcomeAttr returns attribute key as an outcome, if it is one (in any
// case); another value is not used (it stays in the metadata).
func outcomeAttr(m pcommon.Map, key string) (string, bool) {
	v, ok := m.Get(key)
	if !ok || v.Type() != pcommon.ValueTypeStr {
		return "", false
	}
	switch o := strings.ToLower(v.Str()); o {
	case event.OutcomeSuccess, event.OutcomeFailure, event.OutcomeDenied, event.OutcomeUnknown:
		return o, true
	}
	return "", false
}

// intAttr returns attribute key as an integer: an integer, or a string of
// decimal digits.
func intAttr(m pcommon.Map, key string) (int64, bool) {
	v, ok := m.Get(key)
	if !ok {
		return 0, false
	}
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return v.Int(), true
	case pcommon.ValueTypeStr:
		i, err := strconv.ParseInt(v.Str(), 10, 64)
		return i, err == nil
	}
	return 0, false
}

// appendScope appends {"name","version"} of s (the non-empty ones), or
// nothing if both are empty.
func appendScope(b []byte, s pcommon.InstrumentationScope) []byte {
	if s.Name() == "" && s.Version() == "" {
		return b
	}
	sep := byte('{')
	if s.Name() != "" {
		b = append(b, sep)
		b = append(b, `"name":`...)
		b = appendString(b, s.Name())
		sep = ','
	}
	if s.Version() != "" {
		b = append(b, sep)
		b = append(b, `"version":`...)
		b = appendString(b, s.Version())
	}
	return append(b, '}')
}

// appendMap appends m as a JSON object at nesting depth d (the metadata
// object is 1), keys sorted bytewise, skipping the keys in skip, with kvs
// as scratch (returned for the next call). A key repeated in m (OTLP does
// not forbid it on the wire) keeps its first value, as pcommon.Map.Get
// does. It records the depth reached and keys that are not UTF-8.
func (mp *mapper) appendMap(b []byte, m pcommon.Map, skip []string, kvs []kv, d int) ([]byte, []kv) {
	mp.depth = max(mp.depth, d)
	kvs = kvs[:0]
	for k, v := range m.All() {
		if !slices.Contains(skip, k) {
			kvs = append(kvs, kv{k, v})
		}
	}
	slices.SortStableFunc(kvs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	// Nested maps need scratch of their own: kvs is in use until the end.
	var inner []kv
	b = append(b, '{')
	for i, e := range kvs {
		if i > 0 && e.k == kvs[i-1].k {
			continue
		}
		if len(b) > 0 && b[len(b)-1] != '{' {
			b = append(b, ',')
		}
		if !utf8.ValidString(e.k) {
			mp.badKey = true
		}
		b = appendString(b, e.k)
		b = append(b, ':')
		b, inner = mp.appendValueScratch(b, e.v, d+1, inner)
	}
	return append(b, '}'), kvs
}

// appendValue appends an AnyValue as JSON at nesting depth d: strings,
// booleans and integers as themselves, doubles as numbers (NaN and the
// infinities as the strings "NaN", "Infinity", "-Infinity", as protobuf's
// JSON mapping writes them), bytes as base64, arrays as arrays, key-value
// lists as objects, an empty value as null.
func (mp *mapper) appendValue(b []byte, v pcommon.Value, d int) []byte {
	b, _ = mp.appendValueScratch(b, v, d, nil)
	return b
}

func (mp *mapper) appendValueScratch(b []byte, v pcommon.Value, d int, kvs []kv) ([]byte, []kv) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return appendString(b, v.Str()), kvs
	case pcommon.ValueTypeBool:
		return strconv.AppendBool(b, v.Bool()), kvs
	case pcommon.ValueTypeInt:
		return strconv.AppendInt(b, v.Int(), 10), kvs
	case pcommon.ValueTypeDouble:
		f := v.Double()
		switch {
		case math.IsNaN(f):
			return append(b, `"NaN"`...), kvs
		case math.IsInf(f, 1):
			return append(b, `"Infinity"`...), kvs
		case math.IsInf(f, -1):
			return append(b, `"-Infinity"`...), kvs
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64), kvs
	case pcommon.ValueTypeBytes:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.Bytes().AsRaw())
		return append(b, '"'), kvs
	case pcommon.ValueTypeSlice:
		mp.depth = max(mp.depth, d)
		s := v.Slice()
		b = append(b, '[')
		for i := range s.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			b, kvs = mp.appendValueScratch(b, s.At(i), d+1, kvs)
		}
		return append(b, ']'), kvs
	case pcommon.ValueTypeMap:
		return mp.appendMap(b, v.Map(), nil, kvs, d)
	}
	return append(b, "null"...), kvs
}

// appendString appends s as a JSON string: '"', '\' and control characters
// escaped, invalid UTF-8 replaced by U+FFFD (protobuf strings should be
// UTF-8, but the wire does not enforce it).
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
