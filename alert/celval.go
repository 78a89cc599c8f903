package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"time"

	"cel.dev/cel-go/common/types"
	celref "cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"
)

// What where sees as `event` is built on demand: eventVal answers a field
// from the event's struct when the expression selects it, and metadata is
// rawObject, which finds a key in the raw JSON without decoding the rest.
// Anything else asked of them (iterating, size, equality, conversion) uses
// the whole object, decoded once: the same values GET /v1/events shows.

var (
	_ traits.Mapper          = (*eventVal)(nil)
	_ traits.Mapper          = (*rawObject)(nil)
	_ interpreter.Activation = (*Input)(nil)
)

// ResolveName makes an Input the activation of where: one variable, event.
func (in *Input) ResolveName(name string) (any, bool) {
	if name != "event" {
		return nil, false
	}
	if in.val == nil {
		in.valBuf = eventVal{in: in}
		in.val = &in.valBuf // no allocation: the follower reuses one Input
	}
	return in.val, true
}

// Parent implements interpreter.Activation: there is none.
func (in *Input) Parent() interpreter.Activation { return nil }

type eventVal struct {
	in   *Input
	full traits.Mapper
}

// whole is the event as one object (or an error value), its metadata the
// lazy rawObject.
func (v *eventVal) whole() (traits.Mapper, celref.Val) {
	if v.full == nil {
		e := &v.in.Event
		obj := eventObject(e)
		obj["time"] = e.Time.UTC().Format(time.RFC3339Nano)
		if !e.ReceivedAt.IsZero() {
			obj["received_at"] = e.ReceivedAt.UTC().Format(time.RFC3339Nano)
		}
		if len(e.Metadata) > 0 {
			md, ok := v.Find(types.String("metadata"))
			if !ok {
				return nil, md
			}
			obj["metadata"] = md
		}
		v.full = types.DefaultTypeAdapter.NativeToValue(obj).(traits.Mapper)
	}
	return v.full, nil
}

// stringMap is a CEL map of the non-empty values of kv (key, value, ...),
// or not found if there is none.
func stringMap(kv ...string) (celref.Val, bool) {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] != "" {
			m[kv[i]] = kv[i+1]
		}
	}
	if len(m) == 0 {
		return nil, false
	}
	return types.NewStringStringMap(types.DefaultTypeAdapter, m), true
}

func (v *eventVal) Find(key celref.Val) (celref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		m, err := v.whole()
		if err != nil {
			return err, false
		}
		return m.Find(key)
	}
	e := &v.in.Event
	str := func(s string) (celref.Val, bool) {
		if s == "" {
			return nil, false
		}
		return types.String(s), true
	}
	switch k {
	case "id":
		return str(e.ID)
	case "action":
		return str(e.Action)
	case "outcome":
		return str(e.Outcome)
	case "source":
		return str(e.Source)
	case "reason":
		return str(e.Reason)
	case "submitted_by":
		return str(e.SubmittedBy)
	case "time":
		return types.String(e.Time.UTC().Format(time.RFC3339Nano)), true
	case "received_at":
		if e.ReceivedAt.IsZero() {
			return nil, false
		}
		return types.String(e.ReceivedAt.UTC().Format(time.RFC3339Nano)), true
	case "actor":
		if a := e.Actor; a != nil {
			return stringMap("id", a.ID, "type", a.Type, "ip", a.IP)
		}
		return nil, false
	case "resource":
		if r := e.Resource; r != nil {
			return stringMap("id", r.ID, "type", r.Type)
		}
		return nil, false
	case "metadata":
		if len(e.Metadata) == 0 {
			return nil, false
		}
		if v.in.md == nil {
			// One scan checks it is a whole JSON object, so that a where
			// reading it fails on bad metadata as a full decode would.
			i := skipSpace(e.Metadata, 0)
			if i >= len(e.Metadata) || e.Metadata[i] != '{' || trailing(e.Metadata, skipValue(e.Metadata, i, 0)) != nil {
				return types.NewErr("metadata: not a JSON object"), false
			}
			v.in.mdBuf = rawObject{b: e.Metadata}
			v.in.md = &v.in.mdBuf
		}
		return v.in.md, true
	}
	return nil, false
}

func (v *eventVal) Get(key celref.Val) celref.Val          { return getOf(v, key) }
func (v *eventVal) Contains(key celref.Val) celref.Val     { return containsOf(v, key) }
func (v *eventVal) Type() celref.Type                      { return types.MapType }
func (v *eventVal) Iterator() traits.Iterator              { return wholeOf(v.whole).Iterator() }
func (v *eventVal) Size() celref.Val                       { return wholeOf(v.whole).Size() }
func (v *eventVal) Equal(o celref.Val) celref.Val          { return wholeOf(v.whole).Equal(o) }
func (v *eventVal) Value() any                             { return wholeOf(v.whole).Value() }
func (v *eventVal) ConvertToType(t celref.Type) celref.Val { return convertOf(v, v.whole, t) }
func (v *eventVal) ConvertToNative(t reflect.Type) (any, error) {
	return wholeOf(v.whole).ConvertToNative(t)
}

// rawObject is a JSON object, as a CEL map whose values are found in the
// raw bytes when asked for.
type rawObject struct {
	b    []byte
	full traits.Mapper
}

func newRawObject(b []byte) *rawObject { return &rawObject{b: b} }

func (o *rawObject) whole() (traits.Mapper, celref.Val) {
	if o.full == nil {
		var m map[string]any
		if err := json.Unmarshal(o.b, &m); err != nil || m == nil {
			return nil, types.NewErr("metadata: not a JSON object")
		}
		o.full = types.DefaultTypeAdapter.NativeToValue(m).(traits.Mapper)
	}
	return o.full, nil
}

func (o *rawObject) Find(key celref.Val) (celref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		m, err := o.whole()
		if err != nil {
			return err, false
		}
		return m.Find(key)
	}
	raw, found, err := jsonMember(o.b, string(k))
	if err != nil {
		return types.NewErr("metadata: %v", err), false
	}
	if !found {
		return nil, false
	}
	return jsonValue(raw), true
}

func (o *rawObject) Get(key celref.Val) celref.Val          { return getOf(o, key) }
func (o *rawObject) Contains(key celref.Val) celref.Val     { return containsOf(o, key) }
func (o *rawObject) Type() celref.Type                      { return types.MapType }
func (o *rawObject) Iterator() traits.Iterator              { return wholeOf(o.whole).Iterator() }
func (o *rawObject) Size() celref.Val                       { return wholeOf(o.whole).Size() }
func (o *rawObject) Equal(x celref.Val) celref.Val          { return wholeOf(o.whole).Equal(x) }
func (o *rawObject) Value() any                             { return wholeOf(o.whole).Value() }
func (o *rawObject) ConvertToType(t celref.Type) celref.Val { return convertOf(o, o.whole, t) }
func (o *rawObject) ConvertToNative(t reflect.Type) (any, error) {
	return wholeOf(o.whole).ConvertToNative(t)
}

func getOf(m traits.Mapper, key celref.Val) celref.Val {
	v, found := m.Find(key)
	if !found {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

func containsOf(m traits.Mapper, key celref.Val) celref.Val {
	v, found := m.Find(key)
	if !found && types.IsError(v) {
		return v
	}
	return types.Bool(found)
}

func convertOf(self celref.Val, whole func() (traits.Mapper, celref.Val), t celref.Type) celref.Val {
	switch t {
	case types.MapType:
		return self
	case types.TypeType:
		return types.MapType
	}
	return wholeOf(whole).ConvertToType(t)
}

// wholeOf is whole's mapper, or a map that is the error (its every method
// answers the error).
func wholeOf(whole func() (traits.Mapper, celref.Val)) traits.Mapper {
	m, err := whole()
	if err != nil {
		return errMap{err}
	}
	return m
}

// errMap is a Mapper that is an error.
type errMap struct{ celref.Val }

func (e errMap) Contains(celref.Val) celref.Val       { return e.Val }
func (e errMap) Get(celref.Val) celref.Val            { return e.Val }
func (e errMap) Iterator() traits.Iterator            { return errIter(e) }
func (e errMap) Size() celref.Val                     { return e.Val }
func (e errMap) Find(celref.Val) (celref.Val, bool)   { return e.Val, false }
func (e errMap) Equal(celref.Val) celref.Val          { return e.Val }
func (e errMap) ConvertToType(celref.Type) celref.Val { return e.Val }
func (e errMap) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("metadata: not a JSON object")
}

type errIter struct{ celref.Val }

func (e errIter) HasNext() celref.Val { return e.Val }
func (e errIter) Next() celref.Val    { return e.Val }

// jsonValue is the CEL value of one raw JSON value, as json.Unmarshal into
// any and the default adapter would make it: objects stay raw.
func jsonValue(raw []byte) celref.Val {
	switch raw[0] {
	case '"':
		if s := raw[1 : len(raw)-1]; bytes.IndexByte(s, '\\') < 0 {
			return types.String(s)
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return types.NewErr("metadata: %v", err)
		}
		return types.String(s)
	case '{':
		return newRawObject(raw)
	case 't':
		return types.True
	case 'f':
		return types.False
	case 'n':
		return types.NullValue
	case '[':
		var a []any
		if err := json.Unmarshal(raw, &a); err != nil {
			return types.NewErr("metadata: %v", err)
		}
		return types.DefaultTypeAdapter.NativeToValue(a)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return types.NewErr("metadata: %v", err)
	}
	return types.Double(f)
}

var errMalformed = errors.New("malformed JSON")

// jsonMember returns the raw value of key in the JSON object b (the last
// one if it is there twice, as json.Unmarshal does), scanning it without
// decoding. b is the metadata of a stored event, valid JSON; anything else
// is an error, never a panic.
func jsonMember(b []byte, key string) (val []byte, found bool, err error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false, errors.New("not a JSON object")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil, false, trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, false, errMalformed
		}
		ks := i
		i = skipString(b, i)
		if i < 0 {
			return nil, false, errMalformed
		}
		match := keyEquals(b[ks:i], key)
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return nil, false, errMalformed
		}
		i = skipSpace(b, i+1)
		vs := i
		i = skipValue(b, i, 0)
		if i < 0 {
			return nil, false, errMalformed
		}
		if match {
			val, found = b[vs:i], true
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, false, errMalformed
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			if err := trailing(b, i+1); err != nil {
				return nil, false, err
			}
			return val, found, nil
		default:
			return nil, false, errMalformed
		}
	}
}

func trailing(b []byte, i int) error {
	if i < 0 || skipSpace(b, i) != len(b) {
		return errMalformed
	}
	return nil
}

// keyEquals reports whether the raw JSON string q (quotes included) is key.
func keyEquals(q []byte, key string) bool {
	s := q[1 : len(q)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s) == key
	}
	var k string
	return json.Unmarshal(q, &k) == nil && k == key
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"'),
// or -1.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		default:
			if b[i] < 0x20 {
				return -1
			}
		}
	}
	return -1
}

// maxJSONDepth bounds the nesting skipValue follows.
const maxJSONDepth = 1000

// skipValue returns the index after the JSON value starting at b[i], or
// -1 if there is none. Literals and numbers are checked by jsonValue when
// asked for; here they only have to end.
func skipValue(b []byte, i, depth int) int {
	if i >= len(b) || depth > maxJSONDepth {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		end := byte('}')
		if b[i] == '[' {
			end = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == end {
			return i + 1
		}
		for {
			if end == '}' {
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				if i = skipString(b, i); i < 0 {
					return -1
				}
				if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
					return -1
				}
				i = skipSpace(b, i+1)
			}
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			if i = skipSpace(b, i); i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case end:
				return i + 1
			default:
				return -1
			}
		}
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(b[i:], []byte(lit)) {
			return i + len(lit)
		}
	}
	return skipNumber(b, i)
}

// skipNumber returns the index after the JSON number at b[i], or -1.
func skipNumber(b []byte, i int) int {
	digits := func() bool {
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > s
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return -1
		}
	}
	return i
}
