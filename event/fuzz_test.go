package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkAccepted asserts what every accepted event must satisfy: once
// finished it canonicalises within the limit, decodes back to the same
// bytes, and is JSON that encoding/json reads to the same values as the
// writer's metadata.
func checkAccepted(t *testing.T, evs []Event) {
	t.Helper()
	if len(evs) == 0 || len(evs) > MaxEvents {
		t.Fatalf("%d events accepted", len(evs))
	}
	for i, e := range evs {
		if e.Action == "" || !e.ReceivedAt.IsZero() || e.SubmittedBy != "" {
			t.Fatalf("event %d: %+v", i, e)
		}
		e.Finish(time.Date(2026, 11, 25, 10, 15, 0, 123456789, time.UTC), strings.Repeat("n", MaxSubmittedByBytes))
		b, err := Canonical(e)
		if err != nil {
			t.Fatalf("event %d: accepted but Canonical fails: %v", i, err)
		}
		d, err := Decode(b)
		if err != nil {
			t.Fatalf("event %d: Decode(%s): %v", i, b, err)
		}
		b2, err := Canonical(d)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("event %d: Canonical(Decode(b)) = %s, %v; want %s", i, b2, err, b)
		}
		if !json.Valid(b) {
			t.Fatalf("event %d: not JSON: %s", i, b)
		}
		if e.Metadata != nil {
			var orig, canon any
			dec := json.NewDecoder(bytes.NewReader(e.Metadata))
			dec.UseNumber()
			if err := dec.Decode(&orig); err != nil {
				t.Fatalf("event %d: encoding/json rejects metadata %s: %v", i, e.Metadata, err)
			}
			var whole struct{ Metadata json.RawMessage }
			if err := json.Unmarshal(b, &whole); err != nil {
				t.Fatal(err)
			}
			dec = json.NewDecoder(bytes.NewReader(whole.Metadata))
			dec.UseNumber()
			if err := dec.Decode(&canon); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(orig, canon) {
				t.Fatalf("event %d: metadata changed: %s -> %s", i, e.Metadata, whole.Metadata)
			}
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"action":"a"}`,
		`[{"action":"a","actor":{"id":"x","ip":"1.2.3.4","type":"user"}},{"action":"b","outcome":"denied"}]`,
		`{"id":"1","time":"2026-11-25T10:15:00.5+02:00","action":"kubectl.exec","resource":{"type":"pod","id":"p"},"source":"s","reason":"r","metadata":{"b":[1.50,-0,1e3,true,null],"a":{"\u00e9":"\ud83d\ude00"}}}`,
		`{"action":"a","metadata":{"k":1,"k":2}}`,
		`{"action":"a","received_at":"2026-01-01T00:00:00Z"}`,
		`{"action":"a"} x`,
		`{"action":"a","metadata":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":1}}}}}}}}}`,
	} {
		f.Add(false, []byte(s))
	}
	f.Add(true, []byte("{\"action\":\"a\"}\r\n\n{\"action\":\"b\",\"metadata\":{}}\n"))
	f.Add(true, []byte("{\"action\":\"a\"}\n{\"action\":\n"))
	f.Fuzz(func(t *testing.T, ndjson bool, body []byte) {
		ct := jsonCT
		if ndjson {
			ct = ndjsonCT
		}
		evs, err := ParseRequest(ct, body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Position < -1 || e.Position >= MaxEvents {
				t.Fatalf("error %v (%T) is not a sound *Error", err, err)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v has kind %v", err, e.Kind)
			}
			return
		}
		checkAccepted(t, evs)
		if !ndjson && len(evs) == 1 && !json.Valid(body) {
			t.Fatalf("accepted what encoding/json rejects: %q", body)
		}
	})
}

func FuzzParseOpening(f *testing.F) {
	f.Add(make([]byte, SaltSize+2))
	f.Add(append(make([]byte, SaltSize), `{"action":"a"}`...))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOpening(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if !bytes.Equal(o.Encode(), b) {
			t.Fatal("Encode(ParseOpening(b)) != b")
		}
		if o.Commitment() != Commitment(o.Salt, b[SaltSize:]) {
			t.Fatal("commitment")
		}
		// Decoding the bytes never panics, whatever they hold.
		if e, err := Decode(o.Bytes); err == nil {
			if _, err := Canonical(e); err != nil {
				t.Fatalf("decoded but cannot canonicalise: %v", err)
			}
		}
	})
}

func FuzzFromKubernetes(f *testing.F) {
	if b, err := os.ReadFile(sampleEventList); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"items":[{"verb":"get","stage":"ResponseStarted","auditID":"a","objectRef":{"resource":"pods","subresource":"exec","namespace":"n","name":"p"},"responseStatus":{"code":101}}]}`))
	f.Add([]byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"verb":"list","user":{"username":"system:serviceaccount:a:b"},"sourceIPs":["::1"]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := FromKubernetes(body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			return
		}
		for _, e := range evs {
			if !strings.HasPrefix(e.Action, "k8s.") || e.Source != "kube-apiserver" {
				t.Fatalf("%+v", e)
			}
		}
		checkAccepted(t, evs)
	})
}
