package loadgen

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/eventstore"
)

// TestOTLPLoad is the short version of the OTLP benchmark, in the normal
// run: OTLP senders against a real server for a moment; every record sent
// is stored (a full success, no partial one) with the mapped fields.
func TestOTLPLoad(t *testing.T) {
	skey, _, err := note.GenerateKey(rand.Reader, "example.com/otlpload")
	if err != nil {
		t.Fatal(err)
	}
	b := openBench(t, t.TempDir(), skey)
	defer b.close()
	res, err := Events(t.Context(), EventsConfig{URL: b.hs.URL, Token: b.tok, Writers: 2, PerRequest: 100, Duration: 300 * time.Millisecond, OTLP: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Events == 0 {
		t.Fatalf("%d events, %d errors: %v", res.Events, res.Errors, res.FirstErr)
	}
	// Every event sent is in the log (the token's creation is not: the
	// bench token store records nothing).
	if _, _, err := b.log.WaitSize(t.Context(), res.Events); err != nil {
		t.Fatal(err)
	}
	page, err := b.layer.List(eventstore.Query{Actor: "user0001@example.com", Limit: 1})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("%v, %d records", err, len(page.Records))
	}
	e := page.Records[0].Event
	if e.Action != "kubectl.verb01" || e.Resource == nil || e.Resource.ID != "prod/payments-00001" || e.Outcome != "failure" || e.Source != "kube-apiserver/prod-eu1" {
		t.Errorf("mapped event %s", page.Records[0].EventBytes)
	}
}

// TestOTLPBodySize: a generated record is about 300 bytes of protobuf, like
// an EventLine.
func TestOTLPBodySize(t *testing.T) {
	zr, err := gzip.NewReader(bytes.NewReader(OTLPBody(0, 1000)))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	per := len(pb) / 1000
	line := len(EventLine(nil, 500))
	t.Logf("OTLP record %d bytes of protobuf; NDJSON event %d bytes", per, line)
	if per < 200 || per > 400 {
		t.Errorf("OTLP record of %d bytes, want about 300", per)
	}
}

// TestOTLPBench (BENCHMARKS.md, "OpenTelemetry logs in") compares POST
// /v1/logs (OTLP protobuf, gzip, 1,000 records of ~300 B a request, 4
// senders) with POST /v1/events (NDJSON, 1,000 events a request, 4
// writers) on one store, alternating phases, and logs each phase's
// events/s and process CPU per event, then the medians. Skipped unless
// INDELIBLE_OTLP_BENCH=1. OTLPBENCH_DUR (default 10s) is each phase's
// length, OTLPBENCH_ROUNDS (default 3) the number of A/B rounds;
// OTLPBENCH_ONLY=otlp or ndjson runs one side (to profile it).
//
//	INDELIBLE_OTLP_BENCH=1 go test ./cmd/indelible/internal/loadgen -run TestOTLPBench -v -timeout 0
func TestOTLPBench(t *testing.T) {
	if os.Getenv("INDELIBLE_OTLP_BENCH") != "1" {
		t.Skip("set INDELIBLE_OTLP_BENCH=1 to run the OTLP benchmark")
	}
	dur := envDuration(t, "OTLPBENCH_DUR", 10*time.Second)
	rounds := envCount(t, "OTLPBENCH_ROUNDS", 3)
	skey, _, err := note.GenerateKey(rand.Reader, "example.com/otlpbench")
	if err != nil {
		t.Fatal(err)
	}
	b := openBench(t, t.TempDir(), skey)
	defer b.close()
	type sample struct{ rate, cpu float64 } // events/s, us/event
	got := map[bool][]sample{}
	for r := range rounds {
		for _, otlp := range []bool{r%2 == 1, r%2 == 0} { // alternate which goes first
			if only := os.Getenv("OTLPBENCH_ONLY"); only != "" && only != map[bool]string{true: "otlp", false: "ndjson"}[otlp] {
				continue
			}
			cfg := EventsConfig{URL: b.hs.URL, Token: b.tok, Writers: 4, PerRequest: 1000, Duration: dur, Start: b.size(), OTLP: otlp}
			cpu0 := cpuNow()
			res, err := Events(t.Context(), cfg)
			cpu := cpuNow() - cpu0
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors > 0 {
				t.Fatalf("otlp=%v: %d errors: %v", otlp, res.Errors, res.FirstErr)
			}
			s := sample{float64(res.Events) / res.Elapsed.Seconds(), float64(cpu.Microseconds()) / float64(res.Events)}
			got[otlp] = append(got[otlp], s)
			t.Logf("round %d %s: %.0f events/s, %.2f us CPU/event (%.2f cores)", r, name(otlp), s.rate, s.cpu, cpu.Seconds()/res.Elapsed.Seconds())
		}
		if n := len(got[true]); n > 0 && len(got[false]) == n {
			t.Logf("round %d: OTLP/NDJSON CPU per event %.2f", r, got[true][n-1].cpu/got[false][n-1].cpu)
		}
	}
	med := func(ss []sample, f func(sample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		slices.Sort(v)
		return (v[(len(v)-1)/2] + v[len(v)/2]) / 2
	}
	rate := func(s sample) float64 { return s.rate }
	cpu := func(s sample) float64 { return s.cpu }
	if len(got[false]) == 0 || len(got[true]) == 0 {
		return
	}
	nr, nc := med(got[false], rate), med(got[false], cpu)
	or, oc := med(got[true], rate), med(got[true], cpu)
	t.Logf("medians: NDJSON %.0f events/s, %.2f us/event; OTLP %.0f events/s, %.2f us/event; OTLP/NDJSON rate %.2f, CPU %.2f",
		nr, nc, or, oc, or/nr, oc/nc)
}

func name(otlp bool) string {
	if otlp {
		return "OTLP protobuf gzip"
	}
	return "NDJSON          "
}
