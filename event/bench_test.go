package event

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// ndjsonBatch is n events of about 300 bytes each, one per line.
func ndjsonBatch(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id":"evt-%08d","time":"2026-11-25T10:15:00.123Z","actor":{"id":"alice@example.com","type":"user","ip":"10.0.0.7"},"action":"kubectl.exec","resource":{"type":"pod","id":"prod/payments-7d9f"},"outcome":"success","source":"kube-apiserver/prod-eu1","reason":"INC-4211 debugging","metadata":{"cmd":"sh","tty":true,"n":%d}}`+"\n", i, i)
	}
	return []byte(b.String())
}

func BenchmarkParseRequestNDJSON(b *testing.B) {
	body := ndjsonBatch(1000)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseRequest(ndjsonCT, body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
}

func BenchmarkCanonical(b *testing.B) {
	evs, err := ParseRequest(ndjsonCT, ndjsonBatch(1))
	if err != nil {
		b.Fatal(err)
	}
	e := evs[0]
	e.Finish(time.Now(), "ci")
	for b.Loop() {
		if _, err := Canonical(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFromKubernetes(b *testing.B) {
	body, err := os.ReadFile(sampleEventList)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := FromKubernetes(body); err != nil {
			b.Fatal(err)
		}
	}
}
