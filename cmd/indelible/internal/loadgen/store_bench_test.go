package loadgen

import (
	"context"
	"crypto/rand"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger/kv/pgkv"
)

// TestStoreBench compares the two stores on batched ingest with ids (1,000
// events a request, 4 writers, closed loop), rounds alternating pebble and
// PostgreSQL (internal/pgtest's private cluster on loopback, fsync and
// synchronous_commit on) so both see the same machine load. CPU per event is
// this process's (server and load generator) plus, on PostgreSQL, the
// cluster's processes'. Request latency is POST-to-durable. Skipped unless
// INDELIBLE_STORE_BENCH=1; STBENCH_DUR (default 15s) and STBENCH_ROUNDS
// (default 3) tune it:
//
//	INDELIBLE_STORE_BENCH=1 go test ./cmd/indelible/internal/loadgen -run TestStoreBench -v -count=1 -timeout 0
func TestStoreBench(t *testing.T) {
	if os.Getenv("INDELIBLE_STORE_BENCH") != "1" {
		t.Skip("set INDELIBLE_STORE_BENCH=1 to run the store benchmark")
	}
	dur := envDuration(t, "STBENCH_DUR", 15*time.Second)
	rounds := envCount(t, "STBENCH_ROUNDS", 3)
	skey, _, err := note.GenerateKey(rand.Reader, "example.com/stbench")
	if err != nil {
		t.Fatal(err)
	}
	pgpid := pgtest.PostmasterPID(t)
	type result struct {
		rate, cpu float64 // events/s, CPU µs per event
		p50, p99  time.Duration
	}
	res := map[string][]result{}
	run := func(name string, b *benchServer, pgCPUNow func() time.Duration) {
		cfg := EventsConfig{Writers: 4, PerRequest: 1000, Duration: dur, Start: b.size(), IDs: true, URL: b.hs.URL, Token: b.tok}
		c0, p0 := cpuNow(), pgCPUNow()
		r, err := Events(t.Context(), cfg)
		cpu := cpuNow() - c0 + pgCPUNow() - p0
		b.close()
		if err != nil {
			t.Fatal(err)
		}
		if r.Events == 0 {
			t.Fatalf("%s: no event acknowledged: %v", name, r.FirstErr)
		}
		slices.Sort(r.Latencies)
		x := result{rate: float64(r.Events) / r.Elapsed.Seconds(), cpu: float64(cpu.Microseconds()) / float64(r.Events),
			p50: Percentile(r.Latencies, 50), p99: Percentile(r.Latencies, 99)}
		res[name] = append(res[name], x)
		t.Logf("%-10s %7.0f events/s  %6.1f µs CPU/event  POST-to-durable p50 %v p99 %v  (%d events, %d errors)",
			name, x.rate, x.cpu, x.p50, x.p99, r.Events, r.Errors)
	}
	zero := func() time.Duration { return 0 }
	for range rounds {
		run("pebble", openBenchStore(t, t.TempDir(), skey, nil), zero)
		st, err := pgkv.Open(context.Background(), pgtest.DSN(t), pgkv.Options{})
		if err != nil {
			t.Fatal(err)
		}
		run("postgres", openBenchStore(t, t.TempDir(), skey, st), func() time.Duration { return pgCPU(t, pgpid) })
	}
	med := func(name string, f func(result) float64) float64 {
		var v []float64
		for _, r := range res[name] {
			v = append(v, f(r))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rate := func(r result) float64 { return r.rate }
	cpu := func(r result) float64 { return r.cpu }
	p50 := func(r result) float64 { return float64(r.p50) }
	p99 := func(r result) float64 { return float64(r.p99) }
	for _, n := range []string{"pebble", "postgres"} {
		t.Logf("median %-8s %7.0f events/s, %6.1f µs CPU/event, POST-to-durable p50 %v p99 %v", n, med(n, rate), med(n, cpu),
			time.Duration(med(n, p50)), time.Duration(med(n, p99)))
	}
	t.Logf("postgres/pebble: rate %.2fx, CPU per event %.2fx",
		med("postgres", rate)/med("pebble", rate), med("postgres", cpu)/med("pebble", cpu))
}

// envDuration returns the duration in the environment variable name, or def
// when it is unset; a value that does not parse fails the test.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 15s", name, v)
	}
	return d
}

// envCount returns the count (at least 1) in the environment variable name,
// or def when it is unset; anything else fails the test.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a whole number of at least 1", name, v)
	}
	return n
}
