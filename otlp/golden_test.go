package otlp

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// update regenerates testdata/otlp: go test ./otlp -run TestGolden -update
var update = flag.Bool("update", false, "rewrite the golden files in testdata/otlp")

const goldenDir = "../testdata/otlp"

// goldenLogs is the golden request: the audit sources docs/otlp.md
// describes, as a Collector would send them after its transform
// processor, and one record with no action (refused).
func goldenLogs() plog.Logs {
	ts := func(s string) pcommon.Timestamp {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return pcommon.NewTimestampFromTime(t)
	}
	logs := plog.NewLogs()

	// sshd and sudo, read from the journal by the Collector's journald or
	// filelog receiver on host bastion-1.
	rl := logs.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "sshd")
	rl.Resource().Attributes().PutStr("host.name", "bastion-1")
	sl := rl.ScopeLogs().AppendEmpty()
	lr := sl.LogRecords().AppendEmpty()
	lr.SetTimestamp(ts("2026-11-25T10:15:00.123456789Z"))
	lr.SetObservedTimestamp(ts("2026-11-25T10:15:00.2Z"))
	lr.SetSeverityText("INFO")
	lr.Body().SetStr("Accepted publickey for alice from 10.0.0.7 port 52311 ssh2: ED25519 SHA256:abc")
	a := lr.Attributes()
	a.PutStr("event.name", "ssh.login")
	a.PutStr("user.name", "alice")
	a.PutStr("client.address", "10.0.0.7")
	a.PutInt("client.port", 52311)
	a.PutStr("audit.resource.type", "host")
	a.PutStr("audit.resource.id", "bastion-1")
	a.PutStr("audit.outcome", "success")
	a.PutStr("log.record.uid", "bastion-1/sshd/8a1f3c")
	lr = sl.LogRecords().AppendEmpty()
	lr.SetTimestamp(ts("2026-11-25T10:16:02Z"))
	lr.Body().SetStr("alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx")
	a = lr.Attributes()
	a.PutStr("event.name", "sudo.command")
	a.PutStr("user.name", "alice")
	a.PutStr("audit.resource.type", "command")
	a.PutStr("audit.resource.id", "/usr/bin/systemctl restart nginx")
	a.PutStr("audit.outcome", "success")
	a.PutStr("sudo.run_as", "root")
	a.PutStr("log.record.uid", "bastion-1/sudo/8a1f41")

	// kube-apiserver audit, from its log file, with the event's fields as
	// attributes.
	rl = logs.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "kube-apiserver")
	rl.Resource().Attributes().PutStr("k8s.cluster.name", "prod-eu1")
	sl = rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("k8s-audit")
	lr = sl.LogRecords().AppendEmpty()
	lr.SetTimestamp(ts("2026-11-25T10:17:30.5Z"))
	lr.SetEventName("k8s.create")
	a = lr.Attributes()
	a.PutStr("user.name", "system:serviceaccount:ci:deployer")
	a.PutStr("client.address", "10.1.2.3")
	a.PutStr("audit.resource.type", "pods/exec")
	a.PutStr("audit.resource.id", "payments/payments-7d9f")
	a.PutInt("http.response.status_code", 403)
	a.PutStr("log.record.uid", "4f6c2d0e-1b2a-4c3d-9e8f-0a1b2c3d4e5f")
	a.PutStr("authorization.k8s.io/decision", "forbid")

	// PostgreSQL with pgaudit, and a service using the OTel SDK.
	rl = logs.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "payments-api")
	sl = rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("payments/audit")
	sl.Scope().SetVersion("2.3.0")
	lr = sl.LogRecords().AppendEmpty()
	lr.SetTimestamp(ts("2026-11-25T10:18:00Z"))
	lr.SetSeverityNumber(plog.SeverityNumberWarn)
	lr.SetEventName("db.query")
	lr.SetTraceID(pcommon.TraceID{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c})
	lr.SetSpanID(pcommon.SpanID{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74})
	body := lr.Body().SetEmptyMap()
	body.PutStr("statement", "SELECT * FROM cards WHERE id = $1")
	body.PutStr("class", "READ")
	a = lr.Attributes()
	a.PutStr("enduser.id", "bob@example.com")
	a.PutStr("audit.resource.type", "table")
	a.PutStr("audit.resource.id", "payments.cards")
	a.PutStr("audit.reason", "INC-4211 card lookup")
	a.PutStr("db.system", "postgresql")
	lr = sl.LogRecords().AppendEmpty()
	lr.SetTimestamp(ts("2026-11-25T10:18:01Z"))
	lr.Body().SetStr("GET /healthz 200") // no action: refused without --otlp-default-action
	lr.Attributes().PutInt("http.response.status_code", 200)
	lr = sl.LogRecords().AppendEmpty()
	lr.SetObservedTimestamp(ts("2026-11-25T10:18:02Z"))
	lr.SetEventName("payment.refund")
	lr.Attributes().PutInt("user.id", 1042)
	lr.Attributes().PutInt("http.response.status_code", 201)
	lr.Attributes().PutDouble("amount", 12.5)
	return logs
}

// goldenFiles are the encodings of the golden request.
var goldenFiles = []string{"logs.pb", "logs.json", "logs.pb.gz", "logs.pb.zst", "logs.json.gz"}

func goldenBytes(t *testing.T) map[string][]byte {
	pb, err := (&plog.ProtoMarshaler{}).MarshalLogs(goldenLogs())
	if err != nil {
		t.Fatal(err)
	}
	js, err := (&plog.JSONMarshaler{}).MarshalLogs(goldenLogs())
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"logs.pb": pb, "logs.json": js, "logs.pb.gz": gzipped(t, pb), "logs.pb.zst": zstded(t, pb), "logs.json.gz": gzipped(t, js),
	}
}

// TestGolden maps each golden request file as indelible ingest otlp
// --explain does and compares the result with explain.ndjson. With
// -update it first rewrites the files from goldenLogs.
func TestGolden(t *testing.T) {
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range goldenBytes(t) {
			if err := os.WriteFile(filepath.Join(goldenDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		res := Map(goldenLogs(), Options{})
		if err := Explain(&out, res); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(goldenDir, "explain.ndjson"), out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(filepath.Join(goldenDir, "explain.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range goldenFiles {
		t.Run(name, func(t *testing.T) {
			wire, err := os.ReadFile(filepath.Join(goldenDir, name))
			if err != nil {
				t.Fatal(err)
			}
			body, err := ReadBody(bytes.NewReader(wire), Sniff(wire))
			if err != nil {
				t.Fatal(err)
			}
			logs, err := Decode(SniffEncoding(body), body)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := Explain(&out, Map(logs, Options{})); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("explained\n%s\nwant\n%s", out.Bytes(), want)
			}
		})
	}
	// The generator and the files agree (protobuf and JSON are
	// deterministic; compressed files are checked by what they hold).
	gb := goldenBytes(t)
	for _, name := range []string{"logs.pb", "logs.json"} {
		got, _ := os.ReadFile(filepath.Join(goldenDir, name))
		if !bytes.Equal(got, gb[name]) {
			t.Errorf("%s differs from what goldenLogs encodes to: run go test ./otlp -run TestGolden -update", name)
		}
	}
}
