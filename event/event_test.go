package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
)

const jsonCT = "application/json"
const ndjsonCT = "application/x-ndjson"

var t0 = time.Date(2026, 11, 25, 10, 15, 0, 123456789, time.UTC)

func TestParseRequestRejects(t *testing.T) {
	deep := `{"a":` + strings.Repeat(`{"a":`, 7) + `{}` + strings.Repeat(`}`, 8)
	big := `{"action":"a","metadata":{"x":"` + strings.Repeat("x", MaxEventBytes) + `"}}`
	tests := []struct {
		name     string
		ct, body string
		kind     error
		pos      int
		field    string
		msg      string // a substring of Error()
	}{
		{"invalid JSON", jsonCT, `{"action":"a",`, ErrInvalid, 0, "", "invalid JSON"},
		{"invalid JSON literal", jsonCT, `{"action":tru}`, ErrInvalid, 0, "action", "invalid JSON"},
		{"not an object", jsonCT, `"action"`, ErrInvalid, -1, "", "JSON object or an array"},
		{"unknown field", jsonCT, `{"action":"a","colour":"red"}`, ErrInvalid, 0, "colour", `field "colour": unknown field`},
		{"unknown actor field", jsonCT, `{"action":"a","actor":{"name":"x"}}`, ErrInvalid, 0, "actor.name", "unknown field"},
		{"unknown resource field", jsonCT, `{"action":"a","resource":{"kind":"x"}}`, ErrInvalid, 0, "resource.kind", "unknown field"},
		{"duplicate field", jsonCT, `{"action":"a","action":"b"}`, ErrInvalid, 0, "action", "duplicate"},
		{"duplicate actor field", jsonCT, `{"action":"a","actor":{"id":"x","id":"y"}}`, ErrInvalid, 0, "actor.id", "duplicate"},
		{"duplicate metadata key", jsonCT, `{"action":"a","metadata":{"k":1,"\u006b":2}}`, ErrInvalid, 0, "metadata", `duplicate key "k"`},
		{"missing action", jsonCT, `{"actor":{"id":"alice"}}`, ErrInvalid, 0, "action", "required"},
		{"empty object", jsonCT, `{}`, ErrInvalid, 0, "action", "required"},
		{"null action", jsonCT, `{"action":null}`, ErrInvalid, 0, "action", "required"},
		{"empty action", jsonCT, `{"action":""}`, ErrInvalid, 0, "action", "required"},
		{"action with space", jsonCT, `{"action":"user login"}`, ErrInvalid, 0, "action", "whitespace"},
		{"action too long", jsonCT, `{"action":"` + strings.Repeat("a", MaxActionBytes+1) + `"}`, ErrInvalid, 0, "action", "longer than 256"},
		{"action not a string", jsonCT, `{"action":7}`, ErrInvalid, 0, "action", "must be a string"},
		{"actor id not a string", jsonCT, `{"action":"a","actor":{"id":5}}`, ErrInvalid, 0, "actor.id", `event 0: field "actor.id": must be a string`},
		{"actor not an object", jsonCT, `{"action":"a","actor":"alice"}`, ErrInvalid, 0, "actor", "must be an object"},
		{"bad time", jsonCT, `{"action":"a","time":"yesterday"}`, ErrInvalid, 0, "time", "RFC 3339"},
		{"time without zone", jsonCT, `{"action":"a","time":"2026-11-25T10:15:00"}`, ErrInvalid, 0, "time", "RFC 3339"},
		{"empty time", jsonCT, `{"action":"a","time":""}`, ErrInvalid, 0, "time", "RFC 3339"},
		{"time a number", jsonCT, `{"action":"a","time":1764000000}`, ErrInvalid, 0, "time", "RFC 3339"},
		{"bad outcome", jsonCT, `{"action":"a","outcome":"ok"}`, ErrInvalid, 0, "outcome", "success, failure, denied, unknown"},
		{"id too long", jsonCT, `{"action":"a","id":"` + strings.Repeat("i", MaxIDBytes+1) + `"}`, ErrTooLarge, 0, "id", "longer than 256"},
		{"control character", jsonCT, `{"action":"a","reason":"a\u0007b"}`, ErrInvalid, 0, "reason", "control"},
		{"newline in actor", jsonCT, `{"action":"a","actor":{"id":"a\nb"}}`, ErrInvalid, 0, "actor.id", "control"},
		{"raw control character", jsonCT, "{\"action\":\"a\",\"source\":\"a\tb\"}", ErrInvalid, 0, "source", "invalid JSON"},
		{"invalid UTF-8", jsonCT, "{\"action\":\"a\",\"source\":\"a\xffb\"}", ErrInvalid, 0, "source", "UTF-8"},
		{"lone surrogate", jsonCT, `{"action":"a","metadata":{"k":"\ud800"}}`, ErrInvalid, 0, "metadata.k", "surrogate"},
		{"metadata not an object", jsonCT, `{"action":"a","metadata":[1,2]}`, ErrInvalid, 0, "metadata", "must be a JSON object"},
		{"metadata a string", jsonCT, `{"action":"a","metadata":"x"}`, ErrInvalid, 0, "metadata", "must be a JSON object"},
		{"metadata too deep", jsonCT, `{"action":"a","metadata":` + deep + `}`, ErrTooLarge, 0, "metadata.a.a.a.a.a.a.a.a", "nested deeper than 8"},
		{"metadata bad number", jsonCT, `{"action":"a","metadata":{"n":01}}`, ErrInvalid, 0, "metadata", "invalid JSON"},
		{"received_at by writer", jsonCT, `{"action":"a","received_at":"2026-11-25T10:15:00Z"}`, ErrInvalid, 0, "received_at", "set by the server"},
		{"submitted_by by writer", jsonCT, `{"action":"a","submitted_by":"root"}`, ErrInvalid, 0, "submitted_by", "set by the server"},
		{"trailing garbage", jsonCT, `{"action":"a"} {"action":"b"}`, ErrInvalid, 0, "", "unexpected data after"},
		{"trailing garbage after array", jsonCT, `[{"action":"a"}]]`, ErrInvalid, -1, "", "unexpected data after"},
		{"empty array", jsonCT, `[]`, ErrInvalid, -1, "", "no events"},
		{"array with one bad event", jsonCT, `[{"action":"a"},{"action":"b"},{"action":"c","outcome":"maybe"},{"action":"d"}]`, ErrInvalid, 2, "outcome", "event 2:"},
		{"array unterminated", jsonCT, `[{"action":"a"},{"action":"b"}`, ErrInvalid, 1, "", "invalid JSON"},
		{"ndjson with one bad line", ndjsonCT, "{\"action\":\"a\"}\n\n{\"action\":\"b\"}\n{\"action\":\"c\",\"time\":\"noon\"}\n", ErrInvalid, 2, "time", "(line 4)"},
		{"ndjson two values on a line", ndjsonCT, "{\"action\":\"a\"}{\"action\":\"b\"}\n", ErrInvalid, 0, "", "(line 1)"},
		{"ndjson array line", ndjsonCT, "[{\"action\":\"a\"}]\n", ErrInvalid, 0, "", "JSON object"},
		{"ndjson only blank lines", ndjsonCT, "\n \n\r\n", ErrInvalid, -1, "", "empty body"},
		{"oversize event", jsonCT, big, ErrTooLarge, 0, "", "bytes in canonical form"},
		{"oversize request", jsonCT, `{"action":"a","reason":"` + strings.Repeat(" ", MaxRequestBytes) + `"}`, ErrTooLarge, -1, "", "over 16777216 bytes"},
		{"too many events", ndjsonCT, strings.Repeat("{\"action\":\"a\"}\n", MaxEvents+1), ErrTooLarge, -1, "", "more than 10000 events"},
		{"too many events in an array", jsonCT, "[" + strings.Repeat(`{"action":"a"},`, MaxEvents) + `{"action":"a"}]`, ErrTooLarge, -1, "", "more than 10000 events"},
		{"wrong content type", "text/plain", `{"action":"a"}`, ErrContentType, -1, "", "text/plain"},
		{"form content type", "application/x-www-form-urlencoded", `action=a`, ErrContentType, -1, "", "application/x-www-form-urlencoded"},
		{"no content type", "", `{"action":"a"}`, ErrContentType, -1, "", "content type"},
		{"bad charset", "application/json; charset=latin1", `{"action":"a"}`, ErrContentType, -1, "", "latin1"},
		{"empty body", jsonCT, "", ErrInvalid, -1, "", "empty body"},
		{"whitespace body", jsonCT, " \n\t ", ErrInvalid, -1, "", "empty body"},
		{"empty ndjson body", ndjsonCT, "", ErrInvalid, -1, "", "empty body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := ParseRequest(tt.ct, []byte(tt.body))
			if err == nil {
				t.Fatalf("accepted: %+v", evs)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %q is not %v", err, tt.kind)
			}
			if e.Position != tt.pos {
				t.Errorf("Position = %d, want %d (%v)", e.Position, tt.pos, err)
			}
			if e.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", e.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestParseRequestAccepts(t *testing.T) {
	tests := []struct {
		name, ct, body string
		n              int
	}{
		{"object", jsonCT, `{"action":"a"}`, 1},
		{"charset", "application/json; charset=UTF-8", `{"action":"a"}`, 1},
		{"case-insensitive media type", "Application/JSON", `{"action":"a"}`, 1},
		{"array", jsonCT, ` [ {"action":"a"} , {"action":"b"} ] `, 2},
		{"ndjson", ndjsonCT, "{\"action\":\"a\"}\r\n\n  \n{\"action\":\"b\"}", 2},
		{"nulls as absent", jsonCT, `{"action":"a","id":null,"time":null,"actor":null,"resource":{"id":null},"metadata":null,"outcome":null}`, 1},
		{"max events", ndjsonCT, strings.Repeat("{\"action\":\"a\"}\n", MaxEvents), MaxEvents},
		{"metadata 8 deep", jsonCT, `{"action":"a","metadata":{"a":{"a":{"a":{"a":{"a":{"a":{"a":[]}}}}}}}}`, 1},
		{"much whitespace", jsonCT, `{"action":"a",` + strings.Repeat(" ", MaxEventBytes) + `"reason":"r"}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := ParseRequest(tt.ct, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != tt.n {
				t.Fatalf("%d events, want %d", len(evs), tt.n)
			}
		})
	}
}

func TestParseRequestFields(t *testing.T) {
	body := `{
		"id": "req-1", "time": "2026-11-25T12:15:00.5+02:00",
		"actor": {"id": "alice@example.com", "type": "user", "ip": "10.0.0.7"},
		"action": "kubectl.exec",
		"resource": {"type": "pod", "id": "prod/payments-7d9f"},
		"outcome": "success", "source": "kube-apiserver/prod-eu1", "reason": "INC-4211 debugging",
		"metadata": {"z": [1.50, 1e3, -0], "a": {"y": "<&>\u2028", "b": true}, "n": null}
	}`
	evs, err := ParseRequest(jsonCT, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := Event{
		ID:       "req-1",
		Time:     time.Date(2026, 11, 25, 10, 15, 0, 5e8, time.UTC),
		Actor:    &Actor{ID: "alice@example.com", Type: "user", IP: "10.0.0.7"},
		Action:   "kubectl.exec",
		Resource: &Resource{Type: "pod", ID: "prod/payments-7d9f"},
		Outcome:  OutcomeSuccess, Source: "kube-apiserver/prod-eu1", Reason: "INC-4211 debugging",
		Metadata: json.RawMessage("{\"a\":{\"b\":true,\"y\":\"<&>\u2028\"},\"n\":null,\"z\":[1.50,1e3,-0]}"),
	}
	if !reflect.DeepEqual(evs[0], want) {
		t.Fatalf("got  %+v\nwant %+v", evs[0], want)
	}
	e := evs[0]
	e.Finish(t0, "ci")
	b, err := Canonical(e)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes := `{"action":"kubectl.exec","actor":{"id":"alice@example.com","ip":"10.0.0.7","type":"user"},"id":"req-1",` +
		"\"metadata\":{\"a\":{\"b\":true,\"y\":\"<&>\u2028\"},\"n\":null,\"z\":[1.50,1e3,-0]},\"outcome\":\"success\"," +
		`"reason":"INC-4211 debugging","received_at":"2026-11-25T10:15:00.123456789Z","resource":{"id":"prod/payments-7d9f","type":"pod"},` +
		`"source":"kube-apiserver/prod-eu1","submitted_by":"ci","time":"2026-11-25T10:15:00.5Z"}`
	if string(b) != wantBytes {
		t.Fatalf("Canonical:\n got %s\nwant %s", b, wantBytes)
	}
}

func TestFinish(t *testing.T) {
	var e Event
	e.Finish(t0.In(time.FixedZone("x", 3600)), "ci")
	if e.ReceivedAt != t0 || e.Time != t0 || e.SubmittedBy != "ci" {
		t.Fatalf("%+v", e)
	}
	given := time.Date(2020, 1, 1, 0, 0, 0, 0, time.FixedZone("y", -7200))
	e = Event{Time: given}
	e.Finish(t0, "ci")
	if !e.Time.Equal(given) || e.Time.Location() != time.UTC {
		t.Fatalf("Time = %v", e.Time)
	}
}

func TestCanonicalEscaping(t *testing.T) {
	e := Event{Action: "a", Metadata: json.RawMessage(`{"s":"\"\\\/\b\f\n\r\t\u0001\u001f\u007f\u00e9\ud83d\ude00<>&"}`)}
	b, err := Canonical(e)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\"action\":\"a\",\"metadata\":{\"s\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\u00e9\U0001F600<>&\"}}"
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	// encoding/json reads the same string back.
	var v struct{ Metadata map[string]string }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.Metadata["s"] != "\"\\/\b\f\n\r\t\x01\x1f\x7f\u00e9\U0001F600<>&" {
		t.Fatalf("%q", v.Metadata["s"])
	}
}

func TestCanonicalRejects(t *testing.T) {
	for name, e := range map[string]Event{
		"no action":       {},
		"bad outcome":     {Action: "a", Outcome: "yes"},
		"control":         {Action: "a", Source: "x\x00"},
		"bad UTF-8":       {Action: "a", Reason: "\xff"},
		"metadata array":  {Action: "a", Metadata: json.RawMessage(`[]`)},
		"metadata broken": {Action: "a", Metadata: json.RawMessage(`{"a":`)},
		"metadata trail":  {Action: "a", Metadata: json.RawMessage(`{} {}`)},
		"year 10000":      {Action: "a", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if b, err := Canonical(e); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Canonical = %s, %v; want ErrInvalid", name, b, err)
		}
	}
	e := Event{Action: "a", Reason: strings.Repeat("r", MaxReasonBytes), Metadata: json.RawMessage(`{"x":"` + strings.Repeat("x", MaxEventBytes) + `"}`)}
	if _, err := Canonical(e); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v", err)
	}
}

// TestParsedEventFitsOnceFinished: an event at the size limit a writer may
// use still fits MaxEventBytes once the server adds its fields.
func TestParsedEventFitsOnceFinished(t *testing.T) {
	base := `{"action":"a","metadata":{"x":""}}`
	pad := MaxEventBytes - serverReserve - len(base)
	for _, extra := range []int{0, 1} {
		body := `{"action":"a","metadata":{"x":"` + strings.Repeat("x", pad+extra) + `"}}`
		evs, err := ParseRequest(jsonCT, []byte(body))
		if extra == 1 {
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("one byte over: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		e := evs[0]
		e.Finish(time.Date(2026, 11, 25, 10, 15, 0, 123456789, time.UTC), strings.Repeat("n", MaxSubmittedByBytes))
		b, err := Canonical(e)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != MaxEventBytes {
			t.Fatalf("finished event is %d bytes, want exactly %d", len(b), MaxEventBytes)
		}
	}
}

// randomEvent returns a random valid, finished event.
func randomEvent(r *rand.Rand) Event {
	str := func() string {
		const alphabet = "abcXYZ019 _.-@/<>&\"\\é\u2028😀"
		rs := []rune(alphabet)
		n := r.IntN(12)
		var b strings.Builder
		for range n {
			b.WriteRune(rs[r.IntN(len(rs))])
		}
		return b.String()
	}
	var e Event
	e.Action = "act." + strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return '_'
		}
		return r
	}, str()) + "x"
	if r.IntN(2) == 0 {
		e.ID = str()
	}
	if r.IntN(2) == 0 {
		e.Actor = &Actor{ID: str(), Type: str(), IP: str()}
		if *e.Actor == (Actor{}) {
			e.Actor.ID = "x"
		}
	}
	if r.IntN(2) == 0 {
		e.Resource = &Resource{Type: str(), ID: "r" + str()}
	}
	e.Outcome = []string{"", OutcomeSuccess, OutcomeFailure, OutcomeDenied, OutcomeUnknown}[r.IntN(5)]
	e.Source, e.Reason = str(), str()
	if r.IntN(2) == 0 {
		e.Time = time.Unix(r.Int64N(1<<35), r.Int64N(1e9)).UTC()
	}
	if r.IntN(2) == 0 {
		var gen func(depth int) any
		gen = func(depth int) any {
			switch k := r.IntN(7); {
			case k == 0 && depth < MaxMetadataDepth:
				m := map[string]any{}
				for range r.IntN(4) {
					m[str()] = gen(depth + 1)
				}
				return m
			case k == 1 && depth < MaxMetadataDepth:
				a := []any{}
				for range r.IntN(4) {
					a = append(a, gen(depth+1))
				}
				return a
			case k == 2:
				return json.Number([]string{"0", "-1", "1.50", "1e3", "2E-7", "123456789012345678901234567890"}[r.IntN(6)])
			case k == 3:
				return r.IntN(2) == 0
			case k == 4:
				return nil
			default:
				return str() + "\n\x01"
			}
		}
		m := map[string]any{}
		for range r.IntN(5) {
			m[str()] = gen(2)
		}
		b, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		e.Metadata = b
	}
	e.Finish(time.Unix(r.Int64N(1<<35), r.Int64N(1e9)), "tok-"+fmt.Sprint(r.IntN(100)))
	return e
}

func TestCanonicalRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		e := randomEvent(r)
		b, err := Canonical(e)
		if err != nil {
			t.Fatalf("%d: Canonical(%+v): %v", i, e, err)
		}
		d, err := Decode(b)
		if err != nil {
			t.Fatalf("%d: Decode(%s): %v", i, b, err)
		}
		b2, err := Canonical(d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("%d: Canonical(Decode(Canonical(e))) differs:\n%s\n%s", i, b, b2)
		}
		b3, _ := Canonical(e)
		if !bytes.Equal(b, b3) {
			t.Fatalf("%d: Canonical not deterministic", i)
		}
		// The decoded event is the event (metadata canonicalised).
		e.Metadata = d.Metadata
		if e.Actor != nil && *e.Actor == (Actor{}) {
			e.Actor = nil
		}
		if !reflect.DeepEqual(d, e) {
			t.Fatalf("%d: Decode(Canonical(e)) = %+v, want %+v", i, d, e)
		}
		// The bytes are JSON that encoding/json reads to the same values.
		var a, c any
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("%d: encoding/json rejects %s: %v", i, b, err)
		}
		std, _ := json.Marshal(a)
		json.Unmarshal(std, &c)
		if !reflect.DeepEqual(a, c) {
			t.Fatalf("%d: unstable", i)
		}
	}
}

// TestCanonicalKeyOrder: the order of keys in the input, at every level,
// and insignificant whitespace do not change the canonical bytes.
func TestCanonicalKeyOrder(t *testing.T) {
	inputs := []string{
		`{"action":"a","actor":{"id":"x","type":"user","ip":"1.2.3.4"},"metadata":{"b":{"d":1,"c":[{"f":2,"e":3}]},"a":"z"},"outcome":"denied","time":"2026-01-01T00:00:00Z"}`,
		`{"time":"2026-01-01T01:00:00+01:00","outcome":"denied","metadata":{"a":"z","b":{"c":[{"e":3,"f":2}],"d":1}},"actor":{"ip":"1.2.3.4","type":"user","id":"x"},"action":"a"}`,
		"{ \"metadata\" : { \"b\" : { \"c\" : [ { \"e\" : 3 ,\n\"f\" : 2 } ] , \"d\" : 1 } , \"a\" : \"\\u007a\" } ,\t\"action\" : \"a\" , \"outcome\":\"denied\",\"actor\":{\"type\":\"user\",\"ip\":\"1.2.3.4\",\"id\":\"x\"},\"time\":\"2026-01-01T00:00:00.000Z\" }",
	}
	var first []byte
	for i, in := range inputs {
		evs, err := ParseRequest(jsonCT, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		evs[0].Finish(t0, "ci")
		b, err := Canonical(evs[0])
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatalf("input %d:\n%s\nwant\n%s", i, b, first)
		}
	}
}

func TestDecode(t *testing.T) {
	if _, err := Decode([]byte(`{"action":"a","received_at":"2026-01-01T00:00:00Z","submitted_by":"ci"}`)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{``, `{}`, `{"action":"a"} x`, `{"action":"a","extra":1}`, `[]`, `{"action":"a","submitted_by":"` + strings.Repeat("n", 65) + `"}`} {
		if _, err := Decode([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// TestCommitmentGolden pins the commitment of DESIGN's layout with a vector
// computed here independently, and its value.
func TestCommitmentGolden(t *testing.T) {
	var salt [SaltSize]byte
	for i := range salt {
		salt[i] = byte(i)
	}
	eventBytes := []byte(`{"action":"user.login","actor":{"id":"alice"},"received_at":"2026-11-25T10:15:00Z","submitted_by":"ci","time":"2026-11-25T10:15:00Z"}`)
	h := sha256.New()
	h.Write([]byte("indelible/event/v1"))
	h.Write([]byte{0x00})
	h.Write(salt[:])
	h.Write(eventBytes)
	want := h.Sum(nil)
	got := Commitment(salt, eventBytes)
	if !bytes.Equal(got[:], want) {
		t.Fatalf("Commitment = %x, want %x", got, want)
	}
	const golden = "5aa786104183ec6e4c614529dd912ddfc6410e0b667c118a1e9875351c74c1aa"
	if hex.EncodeToString(got[:]) != golden {
		t.Fatalf("Commitment = %x, golden %s", got, golden)
	}
	o := Opening{Salt: salt, Bytes: eventBytes}
	if o.Commitment() != got {
		t.Fatal("Opening.Commitment differs")
	}
	// The receipt's extra is salt || event bytes.
	if !bytes.Equal(o.Encode(), append(salt[:], eventBytes...)) {
		t.Fatal("Encode")
	}
	// Any change to salt or bytes changes it.
	salt[0] ^= 1
	if Commitment(salt, eventBytes) == got {
		t.Fatal("salt not committed")
	}
}

func TestParseOpening(t *testing.T) {
	var salt [SaltSize]byte
	salt[31] = 9
	o := Opening{Salt: salt, Bytes: []byte(`{"action":"a"}`)}
	enc := o.Encode()
	p, err := ParseOpening(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, o) {
		t.Fatalf("%+v", p)
	}
	enc[SaltSize] = 'X'
	if p.Bytes[0] != '{' {
		t.Fatal("Bytes aliases the input")
	}
	for _, n := range []int{0, 1, SaltSize, SaltSize + 1, SaltSize + MaxEventBytes + 1} {
		if _, err := ParseOpening(make([]byte, n)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
	if _, err := ParseOpening(make([]byte, SaltSize+MaxEventBytes)); err != nil {
		t.Error(err)
	}
}

func TestErrorString(t *testing.T) {
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{Position: 3, Field: "actor.id", Msg: "must be a string"}, `event 3: field "actor.id": must be a string`},
		{Error{Position: 0, Msg: "invalid JSON"}, `event 0: invalid JSON`},
		{Error{Position: -1, Msg: "empty body"}, `empty body`},
		{Error{Position: -1, Field: "items", Msg: "no events"}, `field "items": no events`},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%q, want %q", got, tt.want)
		}
	}
}
