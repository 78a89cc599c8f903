package alert

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"indelible.dev/event"
)

// whereExprs read the event every way a where may: fields, nested
// metadata, presence, size, membership, iteration, equality, conversion.
var whereExprs = []string{
	`event.metadata.a == "x"`,
	`has(event.metadata.b)`,
	`event.metadata.size() > 1`,
	`"k" in event.metadata`,
	`event.metadata.n.m > 2.0`,
	`has(event.metadata.n) && has(event.metadata.n.m) && event.metadata.n.m == 3.0`,
	`event.metadata == {"a": "x"}`,
	`event.metadata.all(k, k.size() < 5)`,
	`event.metadata.exists(k, event.metadata[k] == true)`,
	`event.metadata.l.size() == 2 && event.metadata.l[0] == 1.0`,
	`string(event.metadata.a) == "x" && type(event.metadata) == map`,
	`event.actor.id.startsWith("a") && event.action == "secret.read"`,
	`timestamp(event.time).getHours("UTC") < 12`,
	`has(event.received_at) || has(event.reason)`,
	`event.metadata["a"] == "x" || !("z" in event.metadata)`,
	`event.size() > 3 && "metadata" in event`,
}

// evalBoth runs expr with the lazy event (Input as the activation) and
// with the whole object decoded first (the earlier way); it returns both
// results as text ("error" for any error).
func evalBoth(t *testing.T, expr string, e event.Event) (lazy, eager string) {
	t.Helper()
	p, err := compileWhere(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	show := func(v any, err error) string {
		if err != nil {
			return "error"
		}
		return fmt.Sprint(v)
	}
	in := &Input{Event: e}
	out, _, err := p.Eval(in)
	if err == nil {
		lazy = show(out.Value(), nil)
	} else {
		lazy = "error"
	}
	in2 := &Input{Event: e}
	obj, err := in2.object(needTime | needMetadata)
	if err != nil {
		return lazy, "error"
	}
	out, _, err = p.Eval(map[string]any{"event": obj})
	if err == nil {
		eager = show(out.Value(), nil)
	} else {
		eager = "error"
	}
	return lazy, eager
}

func celEvent(md string) event.Event {
	return event.Event{Time: t0, Actor: &event.Actor{ID: "alice"}, Action: "secret.read", Outcome: "denied", Metadata: json.RawMessage(md)}
}

// TestLazyEventSameAsDecoded: for metadata of every shape, where sees the
// same through the lazy event as through the decoded object.
func TestLazyEventSameAsDecoded(t *testing.T) {
	for _, md := range []string{
		`{"a":"x"}`, `{"a":"x","b":null,"k":1}`, `{"n":{"m":3},"l":[1,"two"]}`, `{"a":"\u0078"}`, `{"a\u0062":true,"b":1}`,
		`{"a":"y","a":"x"}`, `{}`, `{"n":{"m":"3"}}`, `{"l":[1,2],"a":"x"}`, ` { "a" : "x" , "n" : { "m" : 2.5e1 } } `, `{"k":-0.5e-3}`,
		`[1,2]`, `"str"`, `{"a":}`, `{"a":"x"`, `{"a":1x}`, ``,
	} {
		var m map[string]any
		object := json.Unmarshal([]byte(md), &m) == nil && m != nil
		for _, expr := range whereExprs {
			lazy, eager := evalBoth(t, expr, celEvent(md))
			if !object && !strings.Contains(expr, "metadata") {
				// Bad metadata fails a where that reads it (or the whole
				// event), not one that reads other fields.
				if lazy == "error" {
					t.Errorf("metadata %s, %s: an error, though it does not read metadata", md, expr)
				}
				continue
			}
			if lazy != eager {
				t.Errorf("metadata %s, %s: lazy %s, decoded %s", md, expr, lazy, eager)
			}
		}
	}
}

// FuzzLazyEvent: any metadata bytes: the lazy event never panics, and where
// the metadata is a JSON object it answers what the decoded object does.
func FuzzLazyEvent(f *testing.F) {
	f.Add(`{"a":"x","n":{"m":3},"l":[1,2],"k":true}`, uint8(0))
	f.Add(`{"a":"\"x\\"}`, uint8(4))
	f.Add(`{"a":[{"b":{}}],"b":-1.5E+2}`, uint8(1))
	f.Fuzz(func(t *testing.T, md string, which uint8) {
		expr := whereExprs[int(which)%len(whereExprs)]
		lazy, eager := evalBoth(t, expr, celEvent(md))
		var m map[string]any
		if json.Unmarshal([]byte(md), &m) != nil || m == nil {
			return // not an object: an error either way, or a value the lazy scan allows
		}
		if lazy != eager {
			t.Fatalf("metadata %q, %s: lazy %s, decoded %s", md, expr, lazy, eager)
		}
	})
}

// BenchmarkWhereMetadata: one where over metadata, lazy vs decoded.
func BenchmarkWhereMetadata(b *testing.B) {
	p, err := compileWhere(`event.metadata.user_agent.startsWith("kubectl/")`)
	if err != nil {
		b.Fatal(err)
	}
	e := event.Event{Time: time.Now(), Action: "kubectl.verb01", Metadata: json.RawMessage(`{"request_id":"12345","user_agent":"kubectl/v1.31"}`)}
	b.Run("lazy", func(b *testing.B) {
		for range b.N {
			in := Input{Event: e}
			if out, _, err := p.Eval(&in); err != nil || out.Value() != true {
				b.Fatal(out, err)
			}
		}
	})
	b.Run("decoded", func(b *testing.B) {
		for range b.N {
			in := Input{Event: e}
			obj, _ := in.object(needMetadata)
			if out, _, err := p.Eval(map[string]any{"event": obj}); err != nil || out.Value() != true {
				b.Fatal(out, err)
			}
		}
	})
}

// FuzzMetadataPath: group_by and distinct read metadata paths from the raw
// JSON: for valid JSON the value is the one the decoded object gives.
func FuzzMetadataPath(f *testing.F) {
	f.Add(`{"a":{"b":"x"},"n":1e3,"t":true,"z":null,"s":"\u00e9"}`, "metadata.a.b")
	f.Add(`{"a":{"b":"x"},"n":1e3}`, "metadata.n")
	f.Add(`{"a":"y","a":"x"}`, "metadata.a")
	f.Add(`{"a":[1,2]}`, "metadata.a")
	f.Add(`{"a":"\ud800"}`, "metadata.a")
	f.Fuzz(func(t *testing.T, md, path string) {
		in := &Input{Event: event.Event{Metadata: json.RawMessage(md)}}
		got, ok := metadataPath([]byte(md), path)
		if !ok || !json.Valid([]byte(md)) {
			return
		}
		if want := decodedPathValue(in, path); got != want {
			t.Fatalf("metadata %s, %s: %q from the raw JSON, %q decoded", md, path, got, want)
		}
	})
}

// TestMetadataPathTable: the plain values of metadata paths.
func TestMetadataPathTable(t *testing.T) {
	md := `{"ns":"prod-eu","n":{"m":1.50,"big":1e21},"t":true,"z":null,"o":{"k":1},"e":"caf\u00e9"}`
	for path, want := range map[string]string{
		"metadata.ns": "prod-eu", "metadata.n.m": "1.5", "metadata.n.big": "1000000000000000000000", "metadata.t": "true",
		"metadata.z": "", "metadata.o": `{"k":1}`, "metadata.e": "café", "metadata.missing": "", "metadata.ns.x": "",
	} {
		in := &Input{Event: event.Event{Metadata: json.RawMessage(md)}}
		if got := pathValue(in, path); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}
