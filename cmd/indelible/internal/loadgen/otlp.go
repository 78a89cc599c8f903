package loadgen

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// OTLPBody returns an OTLP/HTTP logs request (ExportLogsServiceRequest,
// protobuf, gzip-compressed) holding the generated events k0 .. k0+n-1 as
// log records: the same values as EventLine (about 300 bytes a record on
// the wire before compression), grouped by source into resources, with
// the attributes docs/otlp.md maps to the event's fields.
func OTLPBody(k0, n int) []byte {
	logs := plog.NewLogs()
	var bySource [3]plog.LogRecordSlice
	for s := range bySource {
		rl := logs.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", fmt.Sprintf("kube-apiserver/prod-eu%d", s))
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("indelible/loadgen")
		bySource[s] = sl.LogRecords()
	}
	for k := k0; k < k0+n; k++ {
		lr := bySource[k%3].AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(EventsBase.Add(time.Duration(k) * time.Millisecond)))
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
	pb, err := (&plog.ProtoMarshaler{}).MarshalLogs(logs)
	if err != nil {
		panic("loadgen: marshalling generated logs: " + err.Error())
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(pb)
	zw.Close()
	return buf.Bytes()
}

// otlpBodies pre-builds n request bodies of per records each.
func otlpBodies(n, per int) [][]byte {
	bodies := make([][]byte, n)
	for b := range bodies {
		bodies[b] = OTLPBody(b*per, per)
	}
	return bodies
}
