package event

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is a small strict JSON reader (RFC 8259) and the canonical
// writer. encoding/json is not used for writers' events because it accepts
// duplicate keys, invalid UTF-8 (replacing it) and lone surrogates, and
// loses the literal text of numbers; each of those would make the stored
// bytes differ from what the writer meant, or make two different inputs
// store the same bytes.

// jsonError is a syntax or shape error at byte offset off of the input,
// inside the value at path (relative to where the caller started reading,
// e.g. ".a[2]").
type jsonError struct {
	off   int
	path  string
	msg   string
	shape bool // well-formed so far, but breaks a rule of ours (depth, duplicate key)
	deep  bool // nested deeper than allowed: a limit (413), not a malformation
}

// scanner reads JSON from b, starting at i.
type scanner struct {
	b []byte
	// src, if not empty, is b as a string: str then returns a string with
	// no escapes as a substring of it instead of a new allocation (the
	// NDJSON parser converts each line once: issue 21).
	src string
	i   int
	// plain is set by str: the string read had no escape and only
	// printable ASCII (no byte 0x7f or above), so it needs no check of its
	// characters.
	plain bool
}

func (s *scanner) errf(msg string) *jsonError { return &jsonError{off: s.i, msg: msg} }

// ws skips insignificant whitespace.
func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// expect consumes c or fails.
func (s *scanner) expect(c byte) *jsonError {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return nil
	}
	if s.i >= len(s.b) {
		return s.errf("unexpected end of input, expected '" + string(c) + "'")
	}
	return s.errf("unexpected " + quoteByte(s.b[s.i]) + ", expected '" + string(c) + "'")
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(c) + "'"
	}
	return "byte 0x" + strconv.FormatUint(uint64(c), 16)
}

// str reads a JSON string (s.b[s.i] must be '"') and returns its value. It
// rejects raw control characters, invalid UTF-8, bad escapes and escaped
// lone surrogates, so every accepted string has exactly one value and that
// value is valid UTF-8.
func (s *scanner) str() (string, *jsonError) {
	s.i++ // the opening quote
	s.plain = false
	j := s.i
	ascii := true
	for j < len(s.b) {
		c := s.b[j]
		if c == '"' {
			v := s.b[s.i:j]
			if !ascii && !utf8.Valid(v) {
				return "", s.errf("invalid UTF-8 in string")
			}
			s.plain = ascii
			var str string
			if len(s.src) == len(s.b) {
				str = s.src[s.i:j]
			} else {
				str = string(v)
			}
			s.i = j + 1
			return str, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		if c >= 0x7f {
			ascii = false
		}
		j++
	}
	buf := append([]byte(nil), s.b[s.i:j]...)
	s.i = j
	for {
		if s.i >= len(s.b) {
			return "", s.errf("unterminated string")
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(buf) {
				return "", s.errf("invalid UTF-8 in string")
			}
			return string(buf), nil
		case c < 0x20:
			return "", s.errf("control character in string (it must be escaped)")
		case c != '\\':
			buf = append(buf, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			return "", s.errf("unterminated string")
		}
		switch e := s.b[s.i+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(s.b[s.i+2:])
			if !ok {
				return "", s.errf(`bad \u escape`)
			}
			if utf16.IsSurrogate(r) {
				var r2 rune
				if r < 0xdc00 && len(s.b) >= s.i+12 && s.b[s.i+6] == '\\' && s.b[s.i+7] == 'u' {
					r2, ok = hex4(s.b[s.i+8:])
				}
				r = utf16.DecodeRune(r, r2)
				if !ok || r == utf8.RuneError {
					return "", s.errf("lone UTF-16 surrogate in string")
				}
				s.i += 6
			}
			buf = utf8.AppendRune(buf, r)
			s.i += 6
			continue
		default:
			return "", s.errf("bad escape in string")
		}
		s.i += 2
	}
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a JSON number and returns its literal text.
func (s *scanner) number() (string, *jsonError) {
	start := s.i
	if !s.skipNumber() {
		return "", s.errf("bad number") // at the offset where the grammar failed
	}
	if len(s.src) == len(s.b) {
		return s.src[start:s.i], nil
	}
	return string(s.b[start:s.i]), nil
}

// literal consumes word (true, false or null).
func (s *scanner) literal(word string) *jsonError {
	if s.skipWord(word) {
		return nil
	}
	return s.errf("invalid literal")
}

// null consumes a null if one is next and reports whether it did.
func (s *scanner) null() bool {
	if s.peek() == 'n' && s.literal("null") == nil {
		return true
	}
	return false
}

// value is a parsed JSON value, as metadata holds it.
type value struct {
	kind byte    // '{', '[', '"', '0' (number), 't', 'f', 'n'
	str  string  // a string's value, or a number's literal text
	arr  []value // an array's elements
	obj  []member
}

// member is one member of an object; parsed objects keep their members
// sorted by key (bytewise), with no duplicates.
type member struct {
	key string
	val value
}

// value reads any JSON value at nesting depth depth (a container at depth
// greater than maxDepth is an error).
func (s *scanner) value(depth, maxDepth int) (value, *jsonError) {
	s.ws()
	switch c := s.peek(); {
	case c == '{' || c == '[':
		if depth > maxDepth {
			return value{}, &jsonError{off: s.i, msg: "nested deeper than " + strconv.Itoa(maxDepth) + " levels", shape: true, deep: true}
		}
		if c == '{' {
			return s.object(depth, maxDepth)
		}
		return s.array(depth, maxDepth)
	case c == '"':
		v, err := s.str()
		return value{kind: '"', str: v}, err
	case c == '-' || ('0' <= c && c <= '9'):
		v, err := s.number()
		return value{kind: '0', str: v}, err
	case c == 't':
		return value{kind: 't'}, s.literal("true")
	case c == 'f':
		return value{kind: 'f'}, s.literal("false")
	case c == 'n':
		return value{kind: 'n'}, s.literal("null")
	case s.i >= len(s.b):
		return value{}, s.errf("unexpected end of input")
	default:
		return value{}, s.errf("unexpected " + quoteByte(c))
	}
}

func (s *scanner) object(depth, maxDepth int) (value, *jsonError) {
	s.i++ // '{'
	v := value{kind: '{'}
	s.ws()
	if s.peek() == '}' {
		s.i++
		return v, nil
	}
	for {
		s.ws()
		if s.peek() != '"' {
			return value{}, s.errf("expected a string key")
		}
		k, err := s.str()
		if err != nil {
			return value{}, err
		}
		s.ws()
		if err := s.expect(':'); err != nil {
			return value{}, err
		}
		m, err := s.value(depth+1, maxDepth)
		if err != nil {
			err.path = "." + k + err.path
			return value{}, err
		}
		if v.obj == nil {
			v.obj = make([]member, 0, 4)
		}
		v.obj = append(v.obj, member{k, m})
		s.ws()
		if s.peek() == ',' {
			s.i++
			continue
		}
		if err := s.expect('}'); err != nil {
			return value{}, err
		}
		break
	}
	slices.SortFunc(v.obj, func(a, b member) int { return strings.Compare(a.key, b.key) })
	for i := 1; i < len(v.obj); i++ {
		if v.obj[i].key == v.obj[i-1].key {
			return value{}, &jsonError{off: s.i, msg: "duplicate key " + strconv.Quote(v.obj[i].key), shape: true}
		}
	}
	return v, nil
}

func (s *scanner) array(depth, maxDepth int) (value, *jsonError) {
	s.i++ // '['
	v := value{kind: '['}
	s.ws()
	if s.peek() == ']' {
		s.i++
		return v, nil
	}
	for {
		e, err := s.value(depth+1, maxDepth)
		if err != nil {
			err.path = "[" + strconv.Itoa(len(v.arr)) + "]" + err.path
			return value{}, err
		}
		v.arr = append(v.arr, e)
		s.ws()
		if s.peek() == ',' {
			s.i++
			continue
		}
		if err := s.expect(']'); err != nil {
			return value{}, err
		}
		return v, nil
	}
}

// appendValue writes v canonically: members in key order (parsed objects
// are already sorted), no whitespace, numbers as their literal text,
// strings by appendString.
func appendValue(dst []byte, v *value) []byte {
	switch v.kind {
	case '{':
		dst = append(dst, '{')
		for i := range v.obj {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, v.obj[i].key)
			dst = append(dst, ':')
			dst = appendValue(dst, &v.obj[i].val)
		}
		return append(dst, '}')
	case '[':
		dst = append(dst, '[')
		for i := range v.arr {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, &v.arr[i])
		}
		return append(dst, ']')
	case '"':
		return appendString(dst, v.str)
	case '0':
		return append(dst, v.str...)
	case 't':
		return append(dst, "true"...)
	case 'f':
		return append(dst, "false"...)
	default:
		return append(dst, "null"...)
	}
}

// appendString writes s (valid UTF-8) as a JSON string, escaping only what
// JSON requires: '"' and '\\' with a backslash, the control characters
// U+0000..U+001F as \b, \f, \n, \r, \t or \u00xx (lower-case hex).
// Everything else, '<', '>', '&', U+2028 and U+2029 included, is written
// as itself, so a string has exactly one canonical form.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// skipCanonical reports whether the JSON value at s.i (a container at
// nesting depth depth) is valid, nested at most maxDepth deep and already
// in canonical form: exactly what value then appendValue would write for
// it (no whitespace, object keys in strictly increasing bytewise order and
// without escapes, strings escaped as appendString escapes them). If so, it
// moves s.i past the value; if not, s.i is left anywhere and the caller
// starts over with value, which reports what is wrong. It allocates
// nothing: the writers' metadata is nearly always canonical already (JSON
// encoders of maps sort their keys), and so is every event's metadata the
// server stores, so parsing it and writing it back (a tree of values, a
// string per key) is needed only when it is not.
func (s *scanner) skipCanonical(depth, maxDepth int) bool {
	switch c := s.peek(); {
	case c == '{':
		if depth > maxDepth {
			return false
		}
		s.i++
		if s.peek() == '}' {
			s.i++
			return true
		}
		var prev []byte
		for first := true; ; first = false {
			if s.peek() != '"' {
				return false
			}
			k := s.i + 1
			if !s.skipCanonicalString(true) {
				return false
			}
			key := s.b[k : s.i-1]
			if !first && bytes.Compare(prev, key) >= 0 {
				return false // out of order, or a duplicate
			}
			prev = key
			if s.peek() != ':' {
				return false
			}
			s.i++
			if !s.skipCanonical(depth+1, maxDepth) {
				return false
			}
			switch s.peek() {
			case ',':
				s.i++
			case '}':
				s.i++
				return true
			default:
				return false
			}
		}
	case c == '[':
		if depth > maxDepth {
			return false
		}
		s.i++
		if s.peek() == ']' {
			s.i++
			return true
		}
		for {
			if !s.skipCanonical(depth+1, maxDepth) {
				return false
			}
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return true
			default:
				return false
			}
		}
	case c == '"':
		return s.skipCanonicalString(false)
	case c == '-' || ('0' <= c && c <= '9'):
		return s.skipNumber()
	case c == 't':
		return s.skipWord("true")
	case c == 'f':
		return s.skipWord("false")
	case c == 'n':
		return s.skipWord("null")
	}
	return false
}

// skipCanonicalString is skipCanonical for a string (s.b[s.i] is '"'): valid
// UTF-8, and escaped exactly as appendString escapes: '"' and '\' with a
// backslash, U+0008, U+0009, U+000A, U+000C, U+000D as \b \t \n \f \r, the
// other controls below U+0020 as \u00xx in lower-case hex, nothing else. A
// key (key true) may hold no escape at all.
func (s *scanner) skipCanonicalString(key bool) bool {
	j := s.i + 1
	ascii := true
	for j < len(s.b) {
		c := s.b[j]
		switch {
		case c == '"':
			if !ascii && !utf8.Valid(s.b[s.i+1:j]) {
				return false
			}
			s.i = j + 1
			return true
		case c < 0x20:
			return false
		case c >= 0x80:
			ascii = false
		case c == '\\':
			if key || j+1 >= len(s.b) {
				return false
			}
			switch s.b[j+1] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				j += 2
				continue
			case 'u':
				if j+6 > len(s.b) || s.b[j+2] != '0' || s.b[j+3] != '0' {
					return false
				}
				h, l := s.b[j+4], s.b[j+5]
				var v byte
				switch h {
				case '0':
				case '1':
					v = 16
				default:
					return false
				}
				switch {
				case '0' <= l && l <= '9':
					v += l - '0'
				case 'a' <= l && l <= 'f':
					v += l - 'a' + 10
				default:
					return false
				}
				switch v {
				case '\b', '\t', '\n', '\f', '\r':
					return false // written short
				}
				j += 6
				continue
			}
			return false
		}
		j++
	}
	return false
}

// skipNumber moves s.i past a JSON number, reporting whether there was one
// (number, without the string).
func (s *scanner) skipNumber() bool {
	digits := func() bool {
		n := s.i
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
		}
		return s.i > n
	}
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		digits()
	default:
		return false
	}
	if s.peek() == '.' {
		s.i++
		if !digits() {
			return false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !digits() {
			return false
		}
	}
	return true
}

// skipWord moves s.i past word (true, false or null) if it is next.
func (s *scanner) skipWord(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}
