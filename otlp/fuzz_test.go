package otlp

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"indelible.dev/event"
)

// checkMapped checks Map's invariants on logs: every record is accounted
// for once, and every event it accepts is valid, with metadata a JSON
// object, and still fits once the server finishes it.
func checkMapped(t *testing.T, logs plog.Logs, opts Options) Result {
	res := Map(logs, opts)
	if res.Total != logs.LogRecordCount() || len(res.Events)+res.Rejected() != res.Total || len(res.Records) != len(res.Events) {
		t.Fatalf("total %d (pdata %d), events %d, rejected %d, records %d", res.Total, logs.LogRecordCount(), len(res.Events), res.Rejected(), len(res.Records))
	}
	for i, e := range res.Events {
		if e.Metadata != nil && (!json.Valid(e.Metadata) || e.Metadata[0] != '{') {
			t.Fatalf("event %d: metadata is not a JSON object: %q", i, e.Metadata)
		}
		if err := event.Check(e); err != nil {
			t.Fatalf("event %d accepted but Check fails: %v", i, err)
		}
		e.Finish(time.Date(2026, 12, 7, 0, 0, 0, 999999999, time.UTC), strings.Repeat("t", event.MaxSubmittedByBytes))
		b, err := event.Canonical(e)
		if err != nil {
			t.Fatalf("event %d accepted but not canonical once finished: %v", i, err)
		}
		if _, err := event.Decode(b); err != nil {
			t.Fatalf("event %d: canonical bytes do not decode: %v", i, err)
		}
	}
	for _, p := range res.Problems {
		if p.Msg == "" {
			t.Fatalf("record %d refused with no message", p.Record)
		}
	}
	return res
}

// FuzzDecode feeds arbitrary bodies to the decoder, in both encodings, and
// the result to the mapping. Differential check: on protobuf the
// pre-scan's record count is pdata's own; on JSON it is an upper bound.
func FuzzDecode(f *testing.F) {
	logs, lrs := newLogs("sshd")
	fullRecord(lrs.AppendEmpty())
	lrs.AppendEmpty().Body().SetEmptyMap().PutEmptySlice("a").AppendEmpty().SetEmptyBytes().FromRaw([]byte("x"))
	pb, _ := (&plog.ProtoMarshaler{}).MarshalLogs(logs)
	js, _ := (&plog.JSONMarshaler{}).MarshalLogs(logs)
	f.Add(pb, false)
	f.Add(js, true)
	f.Add(records(3), false)
	f.Add(deepProto(5), false)
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"eventName":"a","timeUnixNano":"1"}]}]}]}`), true)
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		enc := Proto
		if isJSON {
			enc = JSON
		}
		logs, err := Decode(enc, body)
		if err != nil {
			return
		}
		n := logs.LogRecordCount()
		if enc == Proto {
			if c, err := countProto(body); err != nil || c != n {
				t.Fatalf("countProto = %d, %v; pdata decoded %d records", c, err, n)
			}
		} else if c, _ := countJSON(body); c < n {
			t.Fatalf("countJSON = %d, below pdata's %d", c, n)
		}
		checkMapped(t, logs, Options{})
		checkMapped(t, logs, Options{DefaultAction: "otel.log"})
	})
}

// FuzzMap maps records whose every mapped attribute, body and resource
// value is fuzzed, as strings and as the other value kinds.
func FuzzMap(f *testing.F) {
	f.Add("ssh.login", "alice", "10.0.0.7", "success", "uid-1", "body", int64(200), 1.5, []byte{0xff}, uint64(1764065700123456789))
	f.Add("", "", "", "", "", "", int64(0), 0.0, []byte(nil), uint64(0))
	f.Add("a b", "\x00", "\xff", "DENIED", string(make([]byte, 300)), "<&>", int64(-1), math.Copysign(0, -1), []byte("x"), uint64(1<<63))
	f.Fuzz(func(t *testing.T, action, user, ip, outcome, uid, body string, code int64, d float64, raw []byte, ts uint64) {
		logs, lrs := newLogs(user)
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.Timestamp(ts))
		lr.SetEventName(action)
		lr.SetSeverityText(outcome)
		a := lr.Attributes()
		a.PutStr("event.name", body)
		a.PutStr("user.name", user)
		a.PutStr("client.address", ip)
		a.PutStr("audit.outcome", outcome)
		a.PutStr("log.record.uid", uid)
		a.PutInt("http.response.status_code", code)
		a.PutStr("audit.resource.id", body)
		a.PutStr(body, user)
		a.PutDouble("d", d)
		a.PutEmptyBytes("raw").FromRaw(raw)
		m := lr.Body().SetEmptyMap()
		m.PutStr(user, body)
		m.PutEmptySlice(ip).AppendEmpty().SetStr(outcome)
		checkMapped(t, logs, Options{})
		checkMapped(t, logs, Options{DefaultAction: "otel.log"})
	})
}

// FuzzReadBody decompresses arbitrary bytes: never a panic, never more than
// the limit.
func FuzzReadBody(f *testing.F) {
	f.Add(gzipped(f, []byte("hello")), "gzip")
	f.Add(zstded(f, []byte("hello")), "zstd")
	f.Add([]byte("plain"), "")
	f.Fuzz(func(t *testing.T, wire []byte, enc string) {
		b, err := ReadBody(bytes.NewReader(wire), enc)
		if err == nil && len(b) > MaxRequestBytes {
			t.Fatalf("ReadBody returned %d bytes", len(b))
		}
	})
}
