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

// loadgenBatch is n events as the load generator of TestEventsBench writes
// them (cmd/indelible/internal/loadgen): an id, and metadata whose keys are
// in order already, as JSON encoders of maps write them.
func loadgenBatch(n int) []byte {
	var b strings.Builder
	for k := range n {
		fmt.Fprintf(&b, `{"id":"r0123456-%020d","time":"2026-11-25T10:15:00.%03dZ","actor":{"id":"user%04d@example.com","type":"user","ip":"10.0.3.7"}`, k, k%1000, k%5000)
		fmt.Fprintf(&b, `,"action":"kubectl.verb%02d","resource":{"type":"pod","id":"prod/payments-%05d"}`, k%40, k%20000)
		fmt.Fprintf(&b, `,"outcome":%q,"source":"kube-apiserver/prod-eu%d"`, []string{"success", "failure", "denied", "unknown"}[k%4], k%3)
		fmt.Fprintf(&b, `,"reason":"INC-4211 debugging","metadata":{"request_id":"%d"}}`+"\n", k)
	}
	return []byte(b.String())
}

// BenchmarkParseRequestNDJSON: 1,000 events a request; "unsorted" has
// metadata whose keys are out of order (canonicalised through a tree),
// "loadgen" the load generator's events.
func BenchmarkParseRequestNDJSON(b *testing.B) {
	for _, c := range []struct {
		name string
		body []byte
	}{{"unsorted", ndjsonBatch(1000)}, {"loadgen", loadgenBatch(1000)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if _, err := ParseRequest(ndjsonCT, c.body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
		})
	}
}

// BenchmarkParseAndCanonical is what a request costs the event package per
// event: parsing, then each event's canonical bytes once finished.
func BenchmarkParseAndCanonical(b *testing.B) {
	body := loadgenBatch(1000)
	now := time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC)
	for b.Loop() {
		evs, err := ParseRequest(ndjsonCT, body)
		if err != nil {
			b.Fatal(err)
		}
		for i := range evs {
			evs[i].Finish(now, "writer")
			if _, err := Canonical(evs[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
}

func BenchmarkCanonical(b *testing.B) {
	evs, err := ParseRequest(ndjsonCT, loadgenBatch(1))
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

func BenchmarkDecode(b *testing.B) {
	evs, err := ParseRequest(ndjsonCT, loadgenBatch(1))
	if err != nil {
		b.Fatal(err)
	}
	e := evs[0]
	e.Finish(time.Now(), "ci")
	c, err := Canonical(e)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Decode(c); err != nil {
			b.Fatal(err)
		}
	}
}
