package evidence

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"indelible.dev/event"
)

// quickCases are canonical events (and a few near misses) for
// TestQuickCanonical and the fuzzer's seeds.
func quickCases(t testing.TB) (fast, slow [][]byte) {
	at := time.Date(2026, 11, 25, 10, 15, 0, 123456000, time.UTC)
	canon := func(e event.Event) []byte {
		e.Finish(at.Add(time.Second), "writer")
		b, err := event.Canonical(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	full := event.Event{ID: "req-1", Time: at, Actor: &event.Actor{ID: "alice@example.com", Type: "user", IP: "10.0.0.1"},
		Action: "kubectl.get", Resource: &event.Resource{Type: "pod", ID: "prod/api-1"}, Outcome: "success",
		Source: "kube-apiserver", Reason: "INC-1 <debug> & {x}",
		Metadata: []byte(`{"a":[1,-2.50e+3,true,false,null,{"z":{}},[]],"b":"xy","c":{"d":{"e":0}},"n":-0.0}`)}
	fast = [][]byte{
		canon(full),
		canon(event.Event{Action: "login"}),
		canon(event.Event{Action: "login", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Actor: &event.Actor{Type: "svc"}}),
		canon(event.Event{Action: "x", Metadata: []byte(`{}`), Resource: &event.Resource{ID: "r"}}),
		canon(event.Event{Action: "x", Metadata: []byte(`{"k":"v","k2":[[[[[[[1]]]]]]]}`), Outcome: "denied"}),
	}
	slow = [][]byte{
		canon(event.Event{Action: "login", Actor: &event.Actor{ID: "zoë"}}),            // non-ASCII
		canon(event.Event{Action: "login", Metadata: []byte(`{"k":"a\\tb"}`)}),         // an escape
		canon(event.Event{Action: "indelible.erase", Metadata: []byte(`{"index":3}`)}), // erasures go the slow way
		canon(event.Event{Action: "x", Metadata: []byte(`{"k":"é"}`)}),
		canon(event.Event{Action: "x", Metadata: []byte(`{"a":{"b":{"c":{"d":{"e":{"f":{"g":{}}}}}}}}`)}), // depth 8: canonical, but...
	}
	return fast, slow
}

// TestQuickCanonical: the quick scan accepts the plain canonical events
// with the fields Decode gives, and refuses near misses of them.
func TestQuickCanonical(t *testing.T) {
	fast, slow := quickCases(t)
	for _, b := range fast {
		f, ok := quickCanonical(b)
		if !ok {
			t.Errorf("quickCanonical refused %s", b)
			continue
		}
		checkQuick(t, b, f)
	}
	for _, b := range slow[:4] {
		if _, ok := quickCanonical(b); ok {
			t.Errorf("quickCanonical took %s, which needs the slow path", b)
		}
	}
	// Depth 8 is allowed, depth 9 not.
	if _, ok := quickCanonical(slow[4]); !ok {
		t.Errorf("quickCanonical refused metadata 8 deep: %s", slow[4])
	}
	deep := bytes.Replace(slow[4], []byte(`"g":{}`), []byte(`"g":{"h":[]}`), 1)
	if _, ok := quickCanonical(deep); ok {
		t.Errorf("quickCanonical took metadata 9 deep: %s", deep)
	}
	// Near misses of a canonical event: each is not canonical (or not an
	// event) and must be refused.
	b := fast[0]
	for _, m := range []struct{ old, new string }{
		{`{"action"`, `{ "action"`},
		{`"action":"kubectl.get",`, ``},
		{`"action":"kubectl.get",`, `"action":"kubectl get",`},
		{`"actor":{"id":"alice@example.com","ip":"10.0.0.1","type":"user"}`, `"actor":{"ip":"10.0.0.1","id":"alice@example.com","type":"user"}`},
		{`"actor":{"id":"alice@example.com","ip":"10.0.0.1","type":"user"}`, `"actor":{}`},
		{`"actor":{"id":"alice@example.com",`, `"actor":{"id":"",`},
		{`"actor":{"id":"alice@example.com",`, `"actor":{"id":"alice@example.com","id":"x",`},
		{`"id":"req-1",`, `"id":"req-1","id":"req-1",`},
		{`"id":"req-1",`, `"id":"",`},
		{`"id":"req-1",`, `"id":null,`},
		{`"id":"req-1",`, `"zz":"req-1",`},
		{`"outcome":"success"`, `"outcome":"ok"`},
		{`"received_at":"2026-11-25T10:15:01.123456Z"`, `"received_at":"2026-11-25T10:15:01.123456000Z"`},
		{`"received_at":"2026-11-25T10:15:01.123456Z"`, `"received_at":"2026-11-25T11:15:01.123456+01:00"`},
		{`"received_at":"2026-11-25T10:15:01.123456Z"`, `"received_at":"2026-13-25T10:15:01.123456Z"`},
		{`"time":"2026-11-25T10:15:00.123456Z"`, `"time":"0001-01-01T00:00:00Z"`},
		{`"time":"2026-11-25T10:15:00.123456Z"`, `"time":"2026-11-25T10:15:00,123456Z"`},
		{`"metadata":{"a"`, `"metadata":{"b":1,"a"`},
		{`"b":"xy",`, `"b":"xy","b":"xy",`},
		{`"n":-0.0`, `"n":-00`},
		{`"n":-0.0`, `"n":+1`},
		{`"n":-0.0`, `"n":1.`},
		{`"n":-0.0`, `"n": 1`},
		{`"metadata":{`, `"metadata":[{`},
		{`"reason":"INC-1 <debug> & {x}",`, `"reason":"INC-1 <debug> & {x}","reason":"x",`},
		{`"source":"kube-apiserver"`, `"source":"kube` + strings.Repeat("x", 300) + `"`},
		{`"submitted_by":"writer"`, `"submitted_by":"writer","extra":1`},
	} {
		if !bytes.Contains(b, []byte(m.old)) {
			t.Fatalf("the case %q is not in %s", m.old, b)
		}
		nb := bytes.Replace(b, []byte(m.old), []byte(m.new), 1)
		if _, ok := quickCanonical(nb); ok {
			t.Errorf("quickCanonical took %s", nb)
		}
	}
	for k := range b {
		if _, ok := quickCanonical(b[:k]); ok {
			t.Errorf("quickCanonical took a prefix of %d bytes", k)
		}
	}
}

// checkQuick fails unless b is canonical and f holds what Decode gives.
func checkQuick(t *testing.T, b []byte, f openFields) {
	t.Helper()
	e, err := event.Decode(b)
	if err != nil {
		t.Fatalf("quickCanonical took %q, which does not decode: %v", b, err)
	}
	cb, err := event.Canonical(e)
	if err != nil || !bytes.Equal(cb, b) {
		t.Fatalf("quickCanonical took %q, whose canonical form is %q (%v)", b, cb, err)
	}
	o := e.Outcome
	if o == "" {
		o = "-"
	}
	got := [4]string{string(f.day), string(f.action), string(f.outcome), string(f.receivedAt)}
	want := [4]string{DayOf(e.Time), e.Action, o, e.ReceivedAt.UTC().Format(time.RFC3339Nano)}
	if got != want {
		t.Fatalf("quickCanonical(%q) gives %q, Decode %q", b, got, want)
	}
}

// FuzzQuickCanonical: whatever the quick scan accepts is canonical (Decode
// then Canonical give back the same bytes), with the same fields.
func FuzzQuickCanonical(f *testing.F) {
	fast, slow := quickCases(f)
	for _, b := range append(fast, slow...) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if fl, ok := quickCanonical(b); ok {
			checkQuick(t, b, fl)
		}
	})
}

// TestQuickCanonicalRandom: random events, their strings drawn from plain
// characters and from ones the quick scan leaves to the slow path
// (quotes, backslashes, controls in metadata, non-ASCII): whatever it
// accepts is canonical with Decode's fields, and it accepts every event
// that is plain throughout (the common case must stay fast).
func TestQuickCanonicalRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	plain := "abcXYZ019 .-_:/<>&{}[],@"
	special := []string{`"`, `\`, "é", "\u2028", "\t"}
	str := func(n int, allowSpecial bool) (string, bool) {
		var b strings.Builder
		isPlain := true
		for range n {
			if allowSpecial && r.IntN(20) == 0 {
				b.WriteString(special[r.IntN(len(special))])
				isPlain = false
			} else {
				b.WriteByte(plain[r.IntN(len(plain))])
			}
		}
		return b.String(), isPlain
	}
	accepted := 0
	for k := range 3000 {
		allPlain := true
		field := func(max int, special bool) string {
			if r.IntN(3) == 0 {
				return ""
			}
			s, p := str(1+r.IntN(max), special)
			allPlain = allPlain && p
			return s
		}
		action, _ := str(1+r.IntN(20), false)
		action = strings.ReplaceAll(action, " ", ".")
		e := event.Event{
			ID: field(20, true), Action: action, Source: field(20, true), Reason: field(40, true),
			Outcome: []string{"", "success", "failure", "denied", "unknown"}[r.IntN(5)],
			Time:    time.Date(2000+r.IntN(30), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(3)*r.IntN(1e9), time.UTC),
		}
		if r.IntN(2) == 0 {
			e.Actor = &event.Actor{ID: field(20, true), Type: field(10, true), IP: field(10, false)}
		}
		if r.IntN(2) == 0 {
			e.Resource = &event.Resource{ID: field(20, true), Type: field(10, true)}
		}
		if r.IntN(2) == 0 {
			m := map[string]any{}
			for range r.IntN(5) {
				kk, p1 := str(1+r.IntN(6), true)
				vv, p2 := str(r.IntN(10), true)
				allPlain = allPlain && p1 && p2
				m[kk] = []any{vv, r.IntN(100), r.Float64(), nil, true, map[string]any{"n": vv}}[r.IntN(6)]
			}
			e.Metadata, _ = json.Marshal(m)
		}
		e.Finish(time.Date(2026, 11, 25, 10, 0, 0, k*1000, time.UTC), "writer")
		b, err := event.Canonical(e)
		if err != nil {
			continue // a random field broke a rule: not an event
		}
		f, ok := quickCanonical(b)
		if ok {
			accepted++
			checkQuick(t, b, f)
		} else if allPlain && !bytes.Contains(b, []byte(`\`)) {
			t.Fatalf("quickCanonical refused a plain event: %s", b)
		}
	}
	if accepted < 500 {
		t.Fatalf("only %d of 3000 random events took the quick path", accepted)
	}
}
