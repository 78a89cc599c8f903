package otlp

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"indelible.dev/event"
)

// t0 is the time of the records built here.
var t0 = time.Date(2026, 11, 25, 10, 15, 0, 123456789, time.UTC)

// newLogs returns logs with one resource (service.name = svc, if set, and
// host.name), one scope and no records yet.
func newLogs(svc string) (plog.Logs, plog.LogRecordSlice) {
	logs := plog.NewLogs()
	rl := logs.ResourceLogs().AppendEmpty()
	if svc != "" {
		rl.Resource().Attributes().PutStr("service.name", svc)
	}
	rl.Resource().Attributes().PutStr("host.name", "node-1")
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("sshd-audit")
	sl.Scope().SetVersion("1.2")
	return logs, sl.LogRecords()
}

// fullRecord sets every field the mapping reads on lr.
func fullRecord(lr plog.LogRecord) {
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Second)))
	lr.SetEventName("ssh.login")
	lr.SetSeverityText("INFO")
	lr.SetSeverityNumber(plog.SeverityNumberInfo)
	lr.Body().SetStr("Accepted publickey for alice from 10.0.0.7")
	lr.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	lr.SetSpanID(pcommon.SpanID{0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0, 1})
	a := lr.Attributes()
	a.PutStr("log.record.uid", "01JDQ7ZP3V0000000000000000")
	a.PutStr("user.name", "alice")
	a.PutStr("client.address", "10.0.0.7")
	a.PutStr("audit.resource.type", "host")
	a.PutStr("audit.resource.id", "bastion-1")
	a.PutStr("audit.outcome", "success")
	a.PutStr("audit.reason", "INC-4211")
	a.PutInt("client.port", 52311)
	a.PutStr("ssh.method", "publickey")
}

func mapOne(t *testing.T, logs plog.Logs, opts Options) (event.Event, string) {
	t.Helper()
	res := Map(logs, opts)
	if res.Total != 1 {
		t.Fatalf("Total = %d, want 1", res.Total)
	}
	if len(res.Events) == 1 {
		return res.Events[0], ""
	}
	return event.Event{}, res.FirstProblem()
}

// TestMapFullRecord checks every row of the mapping table (docs/otlp.md)
// on a record that sets them all.
func TestMapFullRecord(t *testing.T) {
	logs, lrs := newLogs("sshd")
	fullRecord(lrs.AppendEmpty())
	e, problem := mapOne(t, logs, Options{})
	if problem != "" {
		t.Fatal(problem)
	}
	want := event.Event{
		ID:       "01JDQ7ZP3V0000000000000000",
		Time:     t0,
		Actor:    &event.Actor{ID: "alice", Type: "user", IP: "10.0.0.7"},
		Action:   "ssh.login",
		Resource: &event.Resource{Type: "host", ID: "bastion-1"},
		Outcome:  "success",
		Source:   "sshd",
		Reason:   "INC-4211",
	}
	got := e
	got.Metadata = nil
	if gb, wb := mustJSON(t, got), mustJSON(t, want); gb != wb {
		t.Errorf("event\n got %s\nwant %s", gb, wb)
	}
	wantMeta := `{"attributes":{"client.port":52311,"ssh.method":"publickey"},"body":"Accepted publickey for alice from 10.0.0.7",` +
		`"resource":{"host.name":"node-1","service.name":"sshd"},"scope":{"name":"sshd-audit","version":"1.2"},"severity":"INFO",` +
		`"span_id":"0a0b0c0d0e0f0001","trace_id":"0102030405060708090a0b0c0d0e0f10"}`
	if string(e.Metadata) != wantMeta {
		t.Errorf("metadata\n got %s\nwant %s", e.Metadata, wantMeta)
	}
	// The event is valid and canonical once finished.
	e.Finish(time.Now(), "collector")
	if _, err := event.Canonical(e); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMapPrecedence checks each "else" of the mapping table.
func TestMapPrecedence(t *testing.T) {
	type check func(t *testing.T, e event.Event)
	for _, tc := range []struct {
		name  string
		svc   string
		opts  Options
		setup func(lr plog.LogRecord)
		check check
	}{
		{"action from event.name", "svc", Options{}, func(lr plog.LogRecord) {
			lr.Attributes().PutStr("event.name", "a.b")
			lr.Attributes().PutStr("audit.action", "c.d")
		}, func(t *testing.T, e event.Event) {
			eq(t, "action", e.Action, "a.b")
			eq(t, "meta", string(e.Metadata), `{"attributes":{"audit.action":"c.d"},"resource":{"host.name":"node-1","service.name":"svc"},"scope":{"name":"sshd-audit","version":"1.2"}}`)
		}},
		{"event_name over event.name", "svc", Options{}, func(lr plog.LogRecord) {
			lr.SetEventName("x.y")
			lr.Attributes().PutStr("event.name", "a.b")
		}, func(t *testing.T, e event.Event) {
			eq(t, "action", e.Action, "x.y")
			if !strings.Contains(string(e.Metadata), `"event.name":"a.b"`) {
				t.Errorf("unused event.name not kept: %s", e.Metadata)
			}
		}},
		{"action from audit.action", "", Options{}, func(lr plog.LogRecord) { lr.Attributes().PutStr("audit.action", "c.d") },
			func(t *testing.T, e event.Event) { eq(t, "action", e.Action, "c.d") }},
		{"default action", "", Options{DefaultAction: "otel.log"}, func(lr plog.LogRecord) {},
			func(t *testing.T, e event.Event) { eq(t, "action", e.Action, "otel.log") }},
		{"time from observed", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) {
			lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(t0))
		}, func(t *testing.T, e event.Event) { eq(t, "time", e.Time.String(), t0.String()) }},
		{"no time", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) {},
			func(t *testing.T, e event.Event) { eq(t, "time zero", e.Time.IsZero(), true) }},
		{"actor user.id first", "svc", Options{DefaultAction: "x"}, func(lr plog.LogRecord) {
			lr.Attributes().PutStr("user.name", "alice")
			lr.Attributes().PutStr("enduser.id", "a-1")
			lr.Attributes().PutInt("user.id", 1000)
		}, func(t *testing.T, e event.Event) {
			eq(t, "actor", *e.Actor, event.Actor{ID: "1000", Type: "user"})
			if !strings.Contains(string(e.Metadata), `"enduser.id":"a-1"`) || !strings.Contains(string(e.Metadata), `"user.name":"alice"`) {
				t.Errorf("unused user attributes not kept: %s", e.Metadata)
			}
		}},
		{"actor enduser.id", "svc", Options{DefaultAction: "x"}, func(lr plog.LogRecord) {
			lr.Attributes().PutStr("user.name", "alice")
			lr.Attributes().PutStr("enduser.id", "a-1")
		}, func(t *testing.T, e event.Event) { eq(t, "actor", *e.Actor, event.Actor{ID: "a-1", Type: "user"}) }},
		{"actor service", "svc", Options{DefaultAction: "x"}, func(lr plog.LogRecord) {
			lr.Attributes().PutStr("client.address", "::1")
		}, func(t *testing.T, e event.Event) {
			eq(t, "actor", *e.Actor, event.Actor{ID: "svc", Type: "service", IP: "::1"})
			eq(t, "source", e.Source, "svc")
		}},
		{"no actor", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) {},
			func(t *testing.T, e event.Event) {
				eq(t, "actor", e.Actor == nil, true)
				eq(t, "resource", e.Resource == nil, true)
			}},
		{"outcome event.outcome", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) {
			lr.Attributes().PutStr("event.outcome", "Failure")
			lr.Attributes().PutInt("http.response.status_code", 200)
		}, func(t *testing.T, e event.Event) { eq(t, "outcome", e.Outcome, "failure") }},
		{"outcome audit.outcome first", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) {
			lr.Attributes().PutStr("event.outcome", "failure")
			lr.Attributes().PutStr("audit.outcome", "denied")
		}, func(t *testing.T, e event.Event) { eq(t, "outcome", e.Outcome, "denied") }},
		{"outcome not one of four falls through", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) {
			lr.Attributes().PutStr("audit.outcome", "ok")
			lr.Attributes().PutInt("http.response.status_code", 204)
		}, func(t *testing.T, e event.Event) {
			eq(t, "outcome", e.Outcome, "success")
			eq(t, "meta", string(e.Metadata), `{"attributes":{"audit.outcome":"ok","http.response.status_code":204}}`)
		}},
		{"outcome 403", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) { lr.Attributes().PutInt("http.response.status_code", 403) },
			func(t *testing.T, e event.Event) { eq(t, "outcome", e.Outcome, "denied") }},
		{"outcome 401 as string", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) { lr.Attributes().PutStr("http.response.status_code", "401") },
			func(t *testing.T, e event.Event) { eq(t, "outcome", e.Outcome, "denied") }},
		{"outcome 404", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) { lr.Attributes().PutInt("http.response.status_code", 404) },
			func(t *testing.T, e event.Event) { eq(t, "outcome", e.Outcome, "failure") }},
		{"outcome 503", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) { lr.Attributes().PutInt("http.response.status_code", 503) },
			func(t *testing.T, e event.Event) { eq(t, "outcome", e.Outcome, "failure") }},
		{"outcome 302", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) { lr.Attributes().PutInt("http.response.status_code", 302) },
			func(t *testing.T, e event.Event) { eq(t, "outcome", e.Outcome, "unknown") }},
		{"outcome never from severity", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) {
			lr.SetSeverityNumber(plog.SeverityNumberError)
		}, func(t *testing.T, e event.Event) {
			eq(t, "outcome", e.Outcome, "unknown")
			eq(t, "meta", string(e.Metadata), `{"severity":17}`)
		}},
		{"body kinds", "", Options{DefaultAction: "x"}, func(lr plog.LogRecord) {
			m := lr.Body().SetEmptyMap()
			m.PutDouble("d", 1.5)
			m.PutBool("b", true)
			m.PutEmptyBytes("y").FromRaw([]byte{0xff, 0})
			s := m.PutEmptySlice("s")
			s.AppendEmpty().SetStr("<&>\u2028\x01")
			s.AppendEmpty()
			s.AppendEmpty().SetDouble(0)
			m.PutStr("bad", "a\xffb")
		}, func(t *testing.T, e event.Event) {
			eq(t, "meta", string(e.Metadata), `{"body":{"b":true,"bad":"a\ufffdb","d":1.5,"s":["<&>`+"\u2028"+`\u0001",null,0],"y":"/wA="}}`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs, lrs := newLogs(tc.svc)
			if tc.svc == "" {
				// No resource or scope either: only what the case sets.
				logs.ResourceLogs().At(0).Resource().Attributes().Clear()
				logs.ResourceLogs().At(0).ScopeLogs().At(0).Scope().SetName("")
				logs.ResourceLogs().At(0).ScopeLogs().At(0).Scope().SetVersion("")
			}
			tc.setup(lrs.AppendEmpty())
			e, problem := mapOne(t, logs, tc.opts)
			if problem != "" {
				t.Fatal(problem)
			}
			tc.check(t, e)
			e.Finish(time.Now(), "tok")
			if _, err := event.Canonical(e); err != nil {
				t.Fatalf("mapped event not canonical: %v", err)
			}
		})
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestMapRefused checks that each kind of bad record is refused alone, with
// a message naming it, and the good ones around it are kept.
func TestMapRefused(t *testing.T) {
	deep := func(lr plog.LogRecord) {
		m := lr.Body().SetEmptyMap()
		for range 10 {
			m = m.PutEmptyMap("k")
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(lr plog.LogRecord)
		want  string
	}{
		{"no action", func(lr plog.LogRecord) {}, "no action"},
		{"reserved action", func(lr plog.LogRecord) { lr.SetEventName("indelible.read") }, "server's own"},
		{"action with space", func(lr plog.LogRecord) { lr.SetEventName("user login") }, `field "action"`},
		{"id too long", func(lr plog.LogRecord) {
			lr.SetEventName("a")
			lr.Attributes().PutStr("log.record.uid", strings.Repeat("x", 257))
		}, `field "id"`},
		{"control character", func(lr plog.LogRecord) {
			lr.SetEventName("a")
			lr.Attributes().PutStr("user.name", "al\nice")
		}, `field "actor.id"`},
		{"time past 2262", func(lr plog.LogRecord) {
			lr.SetEventName("a")
			lr.SetTimestamp(pcommon.Timestamp(1 << 63))
		}, "past the year 2262"},
		{"too deep", func(lr plog.LogRecord) { lr.SetEventName("a"); deep(lr) }, "deep"},
		{"keys equal once made UTF-8", func(lr plog.LogRecord) {
			lr.SetEventName("a")
			lr.Attributes().PutStr("k\xff", "1")
			lr.Attributes().PutStr("k\xfe", "2")
		}, "duplicate"},
		{"too large", func(lr plog.LogRecord) {
			lr.SetEventName("a")
			lr.Body().SetStr(strings.Repeat("x", event.MaxEventBytes))
		}, "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs, lrs := newLogs("svc")
			lrs.AppendEmpty().SetEventName("good.before")
			tc.setup(lrs.AppendEmpty())
			lrs.AppendEmpty().SetEventName("good.after")
			res := Map(logs, Options{})
			if res.Total != 3 || res.Rejected() != 1 || len(res.Events) != 2 {
				t.Fatalf("total %d, rejected %d, events %d; want 3, 1, 2 (%v)", res.Total, res.Rejected(), len(res.Events), res.Problems)
			}
			if res.Events[0].Action != "good.before" || res.Events[1].Action != "good.after" || res.Records[0] != 0 || res.Records[1] != 2 {
				t.Errorf("kept %+v at %v", res.Events, res.Records)
			}
			msg := res.FirstProblem()
			if !strings.HasPrefix(msg, "log record 1 (resourceLogs[0].scopeLogs[0].logRecords[1]): ") || !strings.Contains(msg, tc.want) {
				t.Errorf("problem %q, want it to name record 1 and contain %q", msg, tc.want)
			}
		})
	}
}

// TestMapDuplicateAttributes: OTLP does not forbid a key twice on the wire;
// the first value wins, as in pdata's Get, and the metadata stays valid.
func TestMapDuplicateAttributes(t *testing.T) {
	// pdata's Put replaces, so the duplicate is added to the JSON, which
	// pdata decodes into a map holding both entries.
	logs, lrs := newLogs("")
	lr := lrs.AppendEmpty()
	lr.SetEventName("a")
	lr.Attributes().PutStr("k", "first")
	lr.Attributes().PutStr("user.name", "alice")
	js, _ := (&plog.JSONMarshaler{}).MarshalLogs(logs)
	js2 := strings.Replace(string(js), `{"key":"k","value":{"stringValue":"first"}}`,
		`{"key":"k","value":{"stringValue":"first"}},{"key":"k","value":{"stringValue":"second"}}`, 1)
	if js2 == string(js) {
		t.Fatalf("could not add a duplicate to %s", js)
	}
	logs2, err := Decode(JSON, []byte(js2))
	if err != nil {
		t.Fatal(err)
	}
	e, problem := mapOne(t, logs2, Options{})
	if problem != "" {
		t.Fatal(problem)
	}
	if !strings.Contains(string(e.Metadata), `"k":"first"`) || strings.Contains(string(e.Metadata), "second") {
		t.Errorf("metadata %s: want the first value of k only", e.Metadata)
	}
	e.Finish(time.Now(), "tok")
	if _, err := event.Canonical(e); err != nil {
		t.Fatal(err)
	}
}

// TestMapReservedSource: a resource whose service.name is the server's own
// source ("indelible", any case) cannot become an event's source: its
// records are refused, not the batch.
func TestMapReservedSource(t *testing.T) {
	logs, lrs := newLogs(" Indelible")
	lrs.AppendEmpty().SetEventName("a.b")
	res := Map(logs, Options{})
	if len(res.Events) != 0 || res.Rejected() != 1 || !strings.Contains(res.FirstProblem(), `field "source"`) {
		t.Fatalf("events %d, problems %v", len(res.Events), res.Problems)
	}
}
