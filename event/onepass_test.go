package event

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 21 made parsing and canonical encoding cheaper (strings checked a
// byte at a time, substrings of the line instead of a string per field,
// metadata that is already canonical checked without a tree and copied).
// The canonical bytes are the contract (commitments, receipts and stored
// events depend on them): these tests hold the new code to the reference
// (reference_test.go, the code as it was) on random and fuzzed input.

// randString returns a string of n characters drawn from a mix meant to
// reach every branch: plain ASCII, characters JSON escapes, controls,
// non-ASCII (C1 controls, U+2028, astral), invalid UTF-8.
func randString(r *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		switch r.IntN(24) {
		case 0:
			b.WriteByte('"')
		case 1:
			b.WriteByte('\\')
		case 2:
			b.WriteByte(byte(r.IntN(0x20)))
		case 3:
			b.WriteString([]string{"é", "\u0085", "\u00a0", "\u2028", "😀", "\u007f", "\u200b", "\ufffd"}[r.IntN(8)])
		case 4:
			if r.IntN(8) == 0 {
				b.WriteByte(0xff) // invalid UTF-8
			} else {
				b.WriteByte(' ')
			}
		default:
			b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789.-_/@:"[r.IntN(42)])
		}
	}
	return b.String()
}

// randJSONString writes s as a JSON string literal, escaping the way a
// writer might: minimally, or with \u escapes, \/ and upper-case hex; raw
// bytes (invalid UTF-8, controls) sometimes left raw.
func randJSONString(r *rand.Rand, s string) string {
	var b strings.Builder
	b.WriteByte('"')
	style := r.IntN(4)
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			if style == 3 && r.IntN(4) == 0 {
				b.WriteByte(c) // raw: invalid JSON
				continue
			}
			switch {
			case c == '\n' && style != 1:
				b.WriteString(`\n`)
			case c == '\t' && style != 1:
				b.WriteString(`\t`)
			case style == 2:
				b.WriteString(`\u00` + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
			default:
				b.WriteString(`\u00` + strconv.FormatUint(uint64(c)|0x100, 16)[1:])
			}
		case c == '/' && style == 1:
			b.WriteString(`\/`)
		case c == 'a' && style == 2:
			b.WriteString(`\u0061`)
		default:
			b.WriteByte(c)
		}
	}
	if style == 1 && r.IntN(3) == 0 {
		b.WriteString(`\ud83d\ude00`) // a surrogate pair
	}
	if r.IntN(40) == 0 {
		b.WriteString(`\ud83d`) // a lone surrogate
	}
	b.WriteByte('"')
	return b.String()
}

// randMetadata writes a random JSON value at depth d: often canonical
// already (sorted keys, no spaces), sometimes not (unsorted, spaces,
// duplicate keys, escapes), sometimes too deep or broken.
func randMetadata(r *rand.Rand, d int, sorted bool) string {
	sp := ""
	if !sorted && r.IntN(4) == 0 {
		sp = " "
	}
	if d > 9 || (d > 1 && r.IntN(3) == 0) {
		switch r.IntN(8) {
		case 0:
			return "true"
		case 1:
			return "null"
		case 2:
			return []string{"0", "-0", "1.50", "1e3", "-12.5E-3", "01", "1.", "-"}[r.IntN(8)]
		case 3:
			return "false"
		default:
			return randJSONString(r, randString(r, r.IntN(6)))
		}
	}
	if d > 1 && r.IntN(4) == 0 {
		var parts []string
		for range r.IntN(4) {
			parts = append(parts, randMetadata(r, d+1, sorted))
		}
		return "[" + sp + strings.Join(parts, ","+sp) + "]"
	}
	keys := make([]string, r.IntN(5))
	for i := range keys {
		keys[i] = []string{"a", "b", "request_id", "é", "A", "k", "z\"q", "cmd", "n"}[r.IntN(9)]
	}
	if sorted {
		slicesSortUnique(&keys)
	}
	var parts []string
	for _, k := range keys {
		kj := `"` + strings.ReplaceAll(k, `"`, `\"`) + `"`
		if r.IntN(10) == 0 {
			kj = randJSONString(r, k)
		}
		parts = append(parts, kj+":"+sp+randMetadata(r, d+1, sorted))
	}
	return "{" + sp + strings.Join(parts, ","+sp) + "}"
}

func slicesSortUnique(keys *[]string) {
	m := map[string]bool{}
	var out []string
	for _, k := range *keys {
		if !m[k] {
			m[k] = true
			out = append(out, k)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	*keys = out
}

// randEventJSON writes one writer's event, mostly valid, with fields in a
// random order and each kind of mistake now and then.
func randEventJSON(r *rand.Rand) string {
	str := func(max int) string {
		n := r.IntN(12)
		if r.IntN(30) == 0 {
			n = max - 2 + r.IntN(4)
		}
		if r.IntN(3) == 0 {
			return randJSONString(r, randString(r, n))
		}
		// A plain value, as most are.
		var b strings.Builder
		for range n {
			b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789.-_/@"[r.IntN(41)])
		}
		return `"` + b.String() + `"`
	}
	var fields []string
	add := func(k, v string) {
		if r.IntN(5) > 0 {
			fields = append(fields, `"`+k+`":`+v)
		}
	}
	action := `"user.login"`
	if r.IntN(6) == 0 {
		action = []string{str(MaxActionBytes), `null`, `""`, `"a b"`, `"a\u00a0b"`, `7`}[r.IntN(6)]
	}
	fields = append(fields, `"action":`+action)
	add("id", str(MaxIDBytes))
	add("time", []string{`"2026-11-25T10:15:00.123Z"`, `"2026-11-25T10:15:00+02:00"`, `"0000-01-01T00:30:00+01:00"`, `"9999-12-31T23:30:00-01:00"`, `"yesterday"`, `null`, `""`, `1`}[r.IntN(8)])
	var actor []string
	for _, k := range []string{"id", "type", "ip"} {
		if r.IntN(3) > 0 {
			actor = append(actor, `"`+k+`":`+str(64))
		}
	}
	if r.IntN(20) == 0 {
		actor = append(actor, `"name":"x"`)
	}
	if r.IntN(20) == 0 && len(actor) > 0 {
		actor = append(actor, actor[0])
	}
	r.Shuffle(len(actor), func(i, j int) { actor[i], actor[j] = actor[j], actor[i] })
	add("actor", "{"+strings.Join(actor, ",")+"}")
	add("resource", `{"type":`+str(MaxResourceTypeBytes)+`,"id":`+str(MaxResourceIDBytes)+`}`)
	add("outcome", []string{`"success"`, `"failure"`, `"denied"`, `"unknown"`, `"ok"`, `null`}[r.IntN(6)])
	add("source", str(MaxSourceBytes))
	add("reason", str(MaxReasonBytes))
	add("metadata", randMetadata(r, 1, r.IntN(3) > 0))
	if r.IntN(30) == 0 {
		fields = append(fields, `"received_at":"2026-11-25T10:15:00Z"`)
	}
	if r.IntN(30) == 0 {
		fields = append(fields, `"colour":"red"`)
	}
	if r.IntN(30) == 0 {
		fields = append(fields, fields[0])
	}
	r.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	sep := ","
	if r.IntN(6) == 0 {
		sep = " , "
	}
	return "{" + strings.Join(fields, sep) + "}"
}

// sameAsReference fails unless ParseRequest and the reference agree on
// body: the same events (and, once finished, the same canonical bytes) or
// the same error.
func sameAsReference(t *testing.T, ct string, body []byte) {
	t.Helper()
	orig := append([]byte(nil), body...)
	evs, err := ParseRequest(ct, body)
	revs, rerr := refParseRequest(ct, body)
	if !bytes.Equal(body, orig) {
		t.Fatal("ParseRequest changed its input")
	}
	if !sameError(err, rerr) {
		t.Fatalf("body %q:\nParseRequest error %v\nreference    error %v", body, err, rerr)
	}
	if err != nil {
		return
	}
	if !reflect.DeepEqual(evs, revs) {
		t.Fatalf("body %q:\nParseRequest %+v\nreference    %+v", body, evs, revs)
	}
	for i := range evs {
		evs[i].Finish(t0, "writer\"1")
		revs[i].Finish(t0, "writer\"1")
		b, err := Canonical(evs[i])
		rb, rerr := refCanonical(revs[i])
		if !sameError(err, rerr) || !bytes.Equal(b, rb) {
			t.Fatalf("event %d of %q:\nCanonical %s, %v\nreference %s, %v", i, body, b, err, rb, rerr)
		}
	}
}

func sameError(a, b error) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	var ea, eb *Error
	if errors.As(a, &ea) != errors.As(b, &eb) {
		return false
	}
	if ea != nil && *ea != *eb {
		return false
	}
	return a.Error() == b.Error()
}

func TestOnePassMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 1))
	n := 3000
	if testing.Short() {
		n = 500
	}
	accepted := 0
	for range n {
		k := 1 + r.IntN(4)
		lines := make([]string, k)
		for i := range lines {
			lines[i] = randEventJSON(r)
		}
		sameAsReference(t, ndjsonCT, []byte(strings.Join(lines, "\n")+"\n"))
		sameAsReference(t, jsonCT, []byte("["+strings.Join(lines, ",")+"]"))
		sameAsReference(t, jsonCT, []byte(lines[0]))
		if _, err := ParseRequest(ndjsonCT, []byte(lines[0])); err == nil {
			accepted++
		}
	}
	// The generator must reach both sides.
	if accepted < n/10 || accepted > n*9/10 {
		t.Fatalf("%d of %d single events accepted: the generator is off", accepted, n)
	}
}

// TestCanonicalMatchesReference: events built as a mapping builds them (not
// parsed), valid or not, encode as they did.
func TestCanonicalMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 2))
	s := func() string {
		if r.IntN(3) == 0 {
			return ""
		}
		return randString(r, r.IntN(10))
	}
	ok := 0
	for range 20000 {
		e := Event{
			ID: s(), Action: s(), Outcome: []string{"", "success", "denied", "bad"}[r.IntN(4)],
			Source: s(), Reason: s(), SubmittedBy: s(),
		}
		if r.IntN(8) > 0 {
			e.Action = "a" + e.Action
		}
		if r.IntN(3) > 0 {
			e.Actor = &Actor{ID: s(), Type: s(), IP: s()}
		}
		if r.IntN(3) > 0 {
			e.Resource = &Resource{ID: s(), Type: s()}
		}
		if r.IntN(3) > 0 {
			e.Time = time.Unix(r.Int64N(1<<36)-1<<35, r.Int64N(1e9)).In(time.FixedZone("x", 3600*(r.IntN(25)-12)))
		}
		if r.IntN(3) > 0 {
			e.ReceivedAt = t0
		}
		if r.IntN(2) > 0 {
			m := randMetadata(r, 1, r.IntN(2) > 0)
			if r.IntN(10) == 0 {
				m = " " + m
			}
			if r.IntN(10) == 0 {
				m = []string{"[]", "1", "", "{} x", "{"}[r.IntN(5)]
			}
			e.Metadata = []byte(m)
		}
		b, err := Canonical(e)
		rb, rerr := refCanonical(e)
		if !sameError(err, rerr) || !bytes.Equal(b, rb) {
			t.Fatalf("%+v (metadata %q):\nCanonical %s, %v\nreference %s, %v", e, e.Metadata, b, err, rb, rerr)
		}
		if err == nil {
			ok++
		}
		if cerr, rcerr := Check(e), refCheckEvent(e); !sameError(cerr, rcerr) {
			t.Fatalf("%+v: Check %v, reference %v", e, cerr, rcerr)
		}
	}
	if ok < 1000 {
		t.Fatalf("only %d of 20000 events encoded: the generator is off", ok)
	}
}

// refCheckEvent is Check as it was.
func refCheckEvent(e Event) error {
	b, cerr := refAppendCanonical(make([]byte, 0, 512+len(e.Metadata)), &e)
	if cerr != nil {
		return cerr
	}
	if len(b) > MaxEventBytes-serverReserve {
		return &Error{Position: -1, Msg: "event is " + strconv.Itoa(len(b)) + " bytes in canonical form, over the limit of " +
			strconv.Itoa(MaxEventBytes-serverReserve) + " (" + strconv.Itoa(MaxEventBytes) + " once the server's fields are added)", Kind: ErrTooLarge}
	}
	return nil
}

func FuzzOnePassMatchesReference(f *testing.F) {
	r := rand.New(rand.NewPCG(21, 3))
	for range 40 {
		f.Add(r.IntN(2) == 0, []byte(randEventJSON(r)))
	}
	f.Add(true, []byte("{\"action\":\"a\",\"metadata\":{\"a\":\"\\u001f\\n\",\"b\":[1,{\"c\":null}]}}\n\n{\"action\":\"b\"}"))
	f.Fuzz(func(t *testing.T, ndjson bool, body []byte) {
		ct := jsonCT
		if ndjson {
			ct = ndjsonCT
		}
		sameAsReference(t, ct, body)
	})
}

// FuzzSkipCanonical: whatever skipCanonical accepts, the tree path accepts
// too and writes back byte for byte.
func FuzzSkipCanonical(f *testing.F) {
	r := rand.New(rand.NewPCG(21, 4))
	for range 40 {
		f.Add([]byte(randMetadata(r, 1, r.IntN(4) > 0)))
	}
	f.Add([]byte(`{"a":"\u0000\u001f\b\"\\","b":[-0.5e+3,true,false,null,{}],"c":"é😀"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &scanner{b: b}
		if !s.skipCanonical(1, MaxMetadataDepth) {
			return
		}
		end := s.i
		s = &scanner{b: b}
		v, err := s.value(1, MaxMetadataDepth)
		if err != nil {
			t.Fatalf("skipCanonical accepts %q, value rejects it: %s", b[:end], err.msg)
		}
		if s.i != end {
			t.Fatalf("%q: skipCanonical ends at %d, value at %d", b, end, s.i)
		}
		if w := appendValue(nil, &v); !bytes.Equal(w, b[:end]) {
			t.Fatalf("skipCanonical accepts %q, canonical form is %q", b[:end], w)
		}
	})
}

// TestSkipCanonicalAcceptsCanonical: what appendValue writes, skipCanonical
// accepts (so the fast path is the one taken for stored and parsed events),
// unless an object key needs escapes.
func TestSkipCanonicalAcceptsCanonical(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 5))
	n := 0
	for range 5000 {
		m := randMetadata(r, 1, r.IntN(2) == 0)
		s := &scanner{b: []byte(m)}
		v, err := s.value(1, MaxMetadataDepth)
		if err != nil || s.peek() != 0 {
			continue
		}
		w := appendValue(nil, &v)
		if bytes.Contains(w, []byte(`"z\"q`)) {
			continue // a key with an escape: left to the tree path
		}
		s = &scanner{b: w}
		if !s.skipCanonical(1, MaxMetadataDepth) || s.i != len(w) {
			t.Fatalf("canonical %q (from %q) not accepted", w, m)
		}
		n++
	}
	if n < 1000 {
		t.Fatalf("only %d valid metadata values generated", n)
	}
}

// TestPlainWord: the word-at-a-time test agrees with the byte-at-a-time
// one, on random words and on words one byte away from plain.
func TestPlainWord(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 8))
	plain := func(w uint64) bool {
		for k := range 8 {
			c := byte(w >> (8 * k))
			if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				return false
			}
		}
		return true
	}
	for range 200000 {
		w := r.Uint64()
		if r.IntN(2) == 0 { // mostly printable, one byte anything
			w = 0
			for k := range 8 {
				w |= uint64(0x20+r.IntN(0x5f)) << (8 * k)
			}
			k := r.IntN(8)
			w = w&^(0xff<<(8*k)) | uint64(r.IntN(256))<<(8*k)
		}
		if plainWord(w) != plain(w) {
			t.Fatalf("%#016x: plainWord %v", w, plainWord(w))
		}
	}
}
