package eventstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"indelible.dev/event"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

// benchEvents returns n events of about 300 canonical bytes with realistic
// spreads of values: a few thousand actors and resources, tens of actions.
func benchEvents(n, seed int, base time.Time) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		k := seed*n + i
		evs[i] = event.Event{
			Time:     base.Add(time.Duration(k) * time.Millisecond),
			Actor:    &event.Actor{ID: fmt.Sprintf("user%04d@example.com", k%5000), Type: "user", IP: "10.0.3.7"},
			Action:   fmt.Sprintf("kubectl.verb%02d", k%40),
			Resource: &event.Resource{Type: "pod", ID: fmt.Sprintf("prod/payments-%05d", k%20000)},
			Outcome:  []string{"success", "failure", "denied", "unknown"}[k%4],
			Source:   fmt.Sprintf("kube-apiserver/prod-eu%d", k%3),
			Reason:   "INC-4211 debugging the payment service",
			Metadata: []byte(`{"request_id":"` + strconv.Itoa(k) + `","user_agent":"kubectl/v1.31"}`),
		}
	}
	return evs
}

// BenchmarkAppend: 1000 events of about 300 bytes per call, 4 concurrent
// callers, a real log on disk (each call waits for its fsync).
func BenchmarkAppend(b *testing.B) {
	e := newEnv(b, nil)
	const per, callers = 1000, 4
	batches := make([][]event.Event, 16)
	for k := range batches {
		batches[k] = benchEvents(per, k, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC))
	}
	if c, _ := event.Canonical(batches[0][0]); len(c) < 250 || len(c) > 350 {
		b.Fatalf("event of %d bytes", len(c))
	}
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	var next sync.Mutex
	n := 0
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				k := n
				n++
				next.Unlock()
				if k >= b.N {
					return
				}
				if _, err := e.l.Append(context.Background(), "bench", batches[k%len(batches)]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*per)/time.Since(start).Seconds(), "events/s")
	// The machine is shared: process CPU time per event is the steadier figure.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*per), "cpu-us/event")
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var (
	listOnce sync.Once
	listEnv  *env
)

// listStore builds (once per run) a store of EVENTS_BENCH_N events
// (default 1,000,000) for the listing benchmarks.
func listStore(b *testing.B) *env {
	listOnce.Do(func() {
		n := 1_000_000
		if s := os.Getenv("EVENTS_BENCH_N"); s != "" {
			n, _ = strconv.Atoi(s)
		}
		dir, err := os.MkdirTemp("", "events-bench")
		if err != nil {
			b.Fatal(err)
		}
		e := &env{t: b, dir: dir, master: make([]byte, MasterKeySize), clock: tlogtest.NewClock()}
		e.signer, e.vkey = newSigner(b)
		e.open()
		base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		start := time.Now()
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := w; k*1000 < n; k += 4 {
					if _, err := e.l.Append(context.Background(), "bench", benchEvents(1000, k, base)); err != nil {
						panic(err)
					}
				}
			}()
		}
		wg.Wait()
		fmt.Fprintf(os.Stderr, "built %d events in %v\n", n, time.Since(start))
		listEnv = e
	})
	return listEnv
}

func BenchmarkList(b *testing.B) {
	e := listStore(b)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		q    Query
	}{
		{"actor", Query{Actor: "user0042@example.com"}},
		{"action", Query{Action: "kubectl.verb07"}},
		{"time-range", Query{Since: base.Add(10 * time.Second), Until: base.Add(60 * time.Second)}},
		{"time-range+actor", Query{Actor: "user0042@example.com", Since: base.Add(10 * time.Second), Until: base.Add(90 * time.Second)}},
		{"actor+action", Query{Actor: "user0042@example.com", Action: "kubectl.verb02"}},
		{"none", Query{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			c.q.Limit = 100
			for b.Loop() {
				p, err := e.l.List(c.q)
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Records) == 0 {
					b.Fatal("empty page")
				}
			}
		})
	}
}

// BenchmarkLedgerBaseline appends what BenchmarkAppend does minus the events
// layer: 1000 bare 32-byte entries per call, 4 callers, no sidecar. The
// difference in cpu-us/event is this layer's cost (sealing, index keys,
// and the extra pebble writes).
func BenchmarkLedgerBaseline(b *testing.B) {
	e := newEnv(b, nil)
	entries := make([]ledger.Entry, 1000)
	for i := range entries {
		c := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		entries[i].Data = c[:]
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	var n atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n.Add(1) <= int64(b.N) {
				if _, err := e.log.AppendEntries(context.Background(), entries); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*1000)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*1000), "cpu-us/event")
}
