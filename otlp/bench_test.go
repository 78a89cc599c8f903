package otlp

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"indelible.dev/event"
)

// benchRequest is a request of n records like cmd/indelible/internal/loadgen's.
func benchRequest(n int) []byte {
	logs := plog.NewLogs()
	var bySource [3]plog.LogRecordSlice
	for s := range bySource {
		rl := logs.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", fmt.Sprintf("kube-apiserver/prod-eu%d", s))
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("indelible/loadgen")
		bySource[s] = sl.LogRecords()
	}
	for k := range n {
		lr := bySource[k%3].AppendEmpty()
		lr.SetTimestamp(pcommon.Timestamp(1764460800000000000 + int64(k)*1e6))
		lr.SetEventName(fmt.Sprintf("kubectl.verb%02d", k%40))
		a := lr.Attributes()
		a.PutStr("user.id", fmt.Sprintf("user%04d@example.com", k%5000))
		a.PutStr("client.address", "10.0.3.7")
		a.PutStr("audit.resource.type", "pod")
		a.PutStr("audit.resource.id", fmt.Sprintf("prod/payments-%05d", k%20000))
		a.PutStr("audit.outcome", []string{"success", "failure", "denied", "unknown"}[k%4])
		a.PutStr("audit.reason", "INC-4211 debugging")
		a.PutStr("request_id", fmt.Sprint(k))
	}
	b, _ := (&plog.ProtoMarshaler{}).MarshalLogs(logs)
	return b
}

// BenchmarkDecodeMap is the OTLP handler's own work for a request of 1,000
// records (Decode and Map, per record), beside BenchmarkParseNDJSON, the
// same for POST /v1/events.
func BenchmarkDecodeMap(b *testing.B) {
	body := benchRequest(1000)
	b.ReportAllocs()
	for b.Loop() {
		logs, err := Decode(Proto, body)
		if err != nil {
			b.Fatal(err)
		}
		res := Map(logs, Options{})
		if len(res.Events) != 1000 {
			b.Fatal(res.FirstProblem())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/record")
}

func BenchmarkParseNDJSON(b *testing.B) {
	var body []byte
	for k := range 1000 {
		body = fmt.Appendf(body, `{"time":"2026-11-30T00:00:%02d.%03d000000Z","actor":{"id":"user%04d@example.com","type":"user","ip":"10.0.3.7"},"action":"kubectl.verb%02d","resource":{"type":"pod","id":"prod/payments-%05d"},"outcome":"success","source":"kube-apiserver/prod-eu%d","reason":"INC-4211 debugging","metadata":{"request_id":"%d"}}`+"\n",
			k/1000, k%1000, k%5000, k%40, k%20000, k%3, k)
	}
	b.ReportAllocs()
	for b.Loop() {
		evs, err := event.ParseRequest("application/x-ndjson", body)
		if err != nil || len(evs) != 1000 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/record")
}
