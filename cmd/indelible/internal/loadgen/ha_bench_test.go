package loadgen

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pgkv"
)

// TestHABench is issue 20's benchmark set for the stores a node can run on:
// pebble, PostgreSQL (internal/pgtest's private cluster), and PostgreSQL
// with a synchronous streaming standby (pgtest.StartPair: a commit returns
// once the standby has flushed its WAL), all on this machine over loopback,
// in one run, rounds alternating the stores so that they share the machine's
// load. Each round gives each store a new, empty store (a directory, a
// database) served by the real ledger, events layer and HTTP API in this
// process (as TestStoreBench), and runs the phases in order:
//
//   - durable: POST /v1/events at a fixed offered rate (EventsAtRate,
//     HABENCH_RATE events/s as requests of HABENCH_PER events, ids on),
//     latency from each request's send time to its reply, which follows
//     the commit (POST-to-durable);
//   - checkpoint: the same with ?wait=checkpoint, whose reply follows a
//     signed checkpoint covering the events, with their receipts
//     (POST-to-checkpoint; no bucket and no witnesses here);
//   - single (not by default): single-event requests at
//     HABENCH_SINGLE_RATE requests/s, POST-to-durable;
//   - ingest: batched ingest, closed loop (1,000 events a request with ids,
//     4 writers, as TestStoreBench).
//
// CPU is this process's (server and load generator) plus that of every
// PostgreSQL process (both servers' with the standby), from /proc. Skipped
// unless INDELIBLE_HA_BENCH=1. Knobs (environment):
//
//	HABENCH_DUR          each phase's duration (default 15s)
//	HABENCH_ROUNDS       rounds (default 3)
//	HABENCH_RATE         offered events/s of the fixed-rate phases (default 5000)
//	HABENCH_PER          events per request of the fixed-rate phases (default 100)
//	HABENCH_SINGLE_RATE  requests/s of the single phase (default 1000)
//	HABENCH_STORES       subset of pebble,postgres,pgsync (default all)
//	HABENCH_PHASES       subset of durable,checkpoint,single,ingest (default durable,checkpoint,ingest)
//
//	INDELIBLE_HA_BENCH=1 go test ./cmd/indelible/internal/loadgen -run TestHABench -v -count=1 -timeout 0
func TestHABench(t *testing.T) {
	if os.Getenv("INDELIBLE_HA_BENCH") != "1" {
		t.Skip("set INDELIBLE_HA_BENCH=1 to run the stores' benchmark (issue 20)")
	}
	dur := envDuration(t, "HABENCH_DUR", 15*time.Second)
	rounds := envCount(t, "HABENCH_ROUNDS", 3)
	rate := float64(envCount(t, "HABENCH_RATE", 5000))
	per := envCount(t, "HABENCH_PER", 100)
	single := float64(envCount(t, "HABENCH_SINGLE_RATE", 1000))
	stores := strings.Split(cmp.Or(os.Getenv("HABENCH_STORES"), "pebble,postgres,pgsync"), ",")
	phases := strings.Split(cmp.Or(os.Getenv("HABENCH_PHASES"), "durable,checkpoint,ingest"), ",")
	for _, p := range phases {
		if !slices.Contains([]string{"durable", "checkpoint", "single", "ingest"}, p) {
			t.Fatalf("HABENCH_PHASES: unknown phase %q", p)
		}
	}
	skey, _, err := note.GenerateKey(rand.Reader, "example.com/habench")
	if err != nil {
		t.Fatal(err)
	}

	// Each store: a new empty store for a round (nil: pebble), and the CPU
	// time of its database's processes.
	type backend struct {
		open  func() (kv.Store, func())
		cpu   func() time.Duration
		check func()   // after each round
		pids  []string // the postmasters: primary, then standby
		db    string   // the last round's database URL (PostgreSQL)
	}
	backends := map[string]*backend{}
	for _, s := range stores {
		switch s {
		case "pebble":
			backends[s] = &backend{open: func() (kv.Store, func()) { return nil, func() {} }, cpu: func() time.Duration { return 0 }}
		case "postgres":
			pid := pgtest.PostmasterPID(t)
			dsn := pgtest.DSN(t) // a database to create the rounds' databases from
			be := &backend{cpu: func() time.Duration { return pgCPU(t, pid) }, pids: []string{pid}}
			be.open = func() (st kv.Store, drop func()) { st, drop, be.db = openRoundDB(t, dsn); return st, drop }
			backends[s] = be
		case "pgsync":
			primary, pids, check := startSyncPair(t)
			be := &backend{cpu: func() time.Duration {
				var d time.Duration
				for _, pid := range pids {
					d += pgCPU(t, pid)
				}
				return d
			}, check: check, pids: pids}
			be.open = func() (st kv.Store, drop func()) { st, drop, be.db = openRoundDB(t, primary); return st, drop }
			t.Logf("pgsync postmasters: %s", strings.Join(pids, " "))
			backends[s] = be
		default:
			t.Fatalf("HABENCH_STORES: unknown store %q", s)
		}
	}

	type sample struct {
		rate     float64       // acknowledged events/s
		cpu      float64       // CPU µs per event
		cores    float64       // CPU seconds per second
		p50, p99 time.Duration // request latency
		max      time.Duration
	}
	res := map[string][]sample{} // by store/phase
	record := func(store, phase string, s sample) {
		res[store+"/"+phase] = append(res[store+"/"+phase], s)
	}
	for round := range rounds {
		for _, name := range stores {
			be := backends[name]
			dir := filepath.Join(t.TempDir(), name)
			st, drop := be.open()
			b := openBenchStore(t, dir, skey, st)
			measure := func(phase string, f func() (events int64, elapsed time.Duration, lat []time.Duration, summary string)) {
				time.Sleep(time.Second) // let the index and the checkpoints of the phase before settle
				var pg0 pgCounters
				if be.db != "" {
					pg0 = readPGCounters(t, be.db, be.pids)
					benchTrace.takeShapes()
				}
				c0, p0 := cpuNow(), be.cpu()
				n, el, lat, summary := f()
				c1 := cpuNow()
				cpu := c1 - c0 + be.cpu() - p0
				if be.db != "" {
					pg1 := readPGCounters(t, be.db, be.pids)
					t.Logf("round %d %-8s %-10s per event: process %.1f µs CPU; %s", round+1, name, phase,
						float64((c1-c0).Microseconds())/float64(n), pg1.sub(pg0).perEvent(n))
					if os.Getenv("HABENCH_WALDUMP") != "" {
						t.Logf("WAL of the phase:\n%s", walStats(t, pg0, pg1))
					}
					if os.Getenv("HABENCH_SHAPES") != "" {
						t.Logf("commits by their statements: %v", benchTrace.takeShapes())
					}
				}
				if n == 0 {
					t.Fatalf("round %d %s %s: nothing acknowledged: %s", round+1, name, phase, summary)
				}
				slices.Sort(lat)
				s := sample{rate: float64(n) / el.Seconds(), cpu: float64(cpu.Microseconds()) / float64(n), cores: cpu.Seconds() / el.Seconds(),
					p50: Percentile(lat, 50), p99: Percentile(lat, 99), max: Percentile(lat, 100)}
				record(name, phase, s)
				t.Logf("round %d %-8s %-10s %7.0f events/s %6.1f µs CPU/event (%.2f cores)  p50 %v p99 %v max %v | %s",
					round+1, name, phase, s.rate, s.cpu, s.cores, s.p50, s.p99, s.max, summary)
			}
			atRate := func(phase string, cfg RateConfig) {
				measure(phase, func() (int64, time.Duration, []time.Duration, string) {
					cfg.URL, cfg.Token, cfg.Duration, cfg.Start, cfg.IDs = b.hs.URL, b.tok, dur, b.size(), true
					r, err := EventsAtRate(t.Context(), cfg)
					if err != nil {
						t.Fatal(err)
					}
					s := r.String()
					if r.Errors > 0 {
						s += fmt.Sprintf("; first error: %v", r.FirstErr)
					}
					return r.Events, r.Elapsed, r.Latencies, s
				})
			}
			for _, phase := range phases {
				switch phase {
				case "durable":
					atRate(phase, RateConfig{Rate: rate / float64(per), PerRequest: per})
				case "checkpoint":
					atRate(phase, RateConfig{Rate: rate / float64(per), PerRequest: per, WaitCheckpoint: true})
				case "single":
					atRate(phase, RateConfig{Rate: single, PerRequest: 1})
				case "ingest":
					measure(phase, func() (int64, time.Duration, []time.Duration, string) {
						r, err := Events(t.Context(), EventsConfig{Writers: 4, PerRequest: 1000, Duration: dur, Start: b.size(), IDs: true, URL: b.hs.URL, Token: b.tok})
						if err != nil {
							t.Fatal(err)
						}
						s := fmt.Sprintf("%d requests, %d errors", r.Requests, r.Errors)
						if r.Errors > 0 {
							s += fmt.Sprintf("; first error: %v", r.FirstErr)
						}
						return r.Events, r.Elapsed, r.Latencies, s
					})
				}
			}
			if be.check != nil {
				be.check()
			}
			b.close()
			drop()
			os.RemoveAll(dir)
		}
	}

	// The medians, as a table for BENCHMARKS.md.
	med := func(k string, f func(sample) float64) float64 {
		var v []float64
		for _, s := range res[k] {
			v = append(v, f(s))
		}
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	ms := func(f func(sample) time.Duration) func(sample) float64 {
		return func(s sample) float64 { return float64(f(s)) / float64(time.Millisecond) }
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "medians of %d rounds, %s a phase; fixed rate %.0f events/s as %.0f requests/s of %d:\n", rounds, dur, rate, rate/float64(per), per)
	fmt.Fprintf(&sb, "| store | phase | events/s | CPU/event | cores | p50 | p99 | max |\n|---|---|---|---|---|---|---|---|\n")
	for _, name := range stores {
		for _, phase := range phases {
			k := name + "/" + phase
			fmt.Fprintf(&sb, "| %s | %s | %.0f | %.1f us | %.2f | %.1f ms | %.1f ms | %.1f ms |\n", name, phase,
				med(k, func(s sample) float64 { return s.rate }), med(k, func(s sample) float64 { return s.cpu }),
				med(k, func(s sample) float64 { return s.cores }),
				med(k, ms(func(s sample) time.Duration { return s.p50 })), med(k, ms(func(s sample) time.Duration { return s.p99 })),
				med(k, ms(func(s sample) time.Duration { return s.max })))
		}
	}
	if slices.Contains(phases, "ingest") && slices.Contains(stores, "pebble") {
		for _, name := range stores {
			if name == "pebble" {
				continue
			}
			rt := func(s sample) float64 { return s.rate }
			cpu := func(s sample) float64 { return s.cpu }
			fmt.Fprintf(&sb, "%s/pebble batched ingest: rate %.2fx, CPU per event %.2fx\n", name,
				med(name+"/ingest", rt)/med("pebble/ingest", rt), med(name+"/ingest", cpu)/med("pebble/ingest", cpu))
		}
	}
	t.Log("\n" + sb.String())
}

// openRoundDB creates a new database on the server of base (a database
// URL) and opens a store on it; the function returned drops the database
// once the store is closed.
func openRoundDB(t *testing.T, base string) (kv.Store, func(), string) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "habench_" + hex.EncodeToString(b[:])
	exec := func(sql string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("CREATE DATABASE " + name)
	u.Path = "/" + name
	// The store's own pool, with a tracer counting its round trips and rows.
	cfg, err := pgkv.Config(u.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = benchTrace
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := pgkv.Open(context.Background(), "", pgkv.Options{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	return st, func() { pool.Close(); exec("DROP DATABASE " + name + " WITH (FORCE)") }, u.String()
}

// postmasterOf returns the pid of the postmaster serving dsn's server (its
// postgres database), from its data directory's postmaster.pid.
func postmasterOf(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var dir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(pid)
}

// startSyncPair starts a PostgreSQL primary with a synchronous standby
// (pgtest.StartPair) and returns the URL of a database on the primary, both
// postmasters' pids, and a check that the standby is still the primary's
// synchronous standby (so that the commits measured waited for it).
func startSyncPair(t *testing.T) (primary string, pids []string, check func()) {
	t.Helper()
	p := pgtest.StartPair(t)
	check = func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ok, err := p.WithSyncStandby(ctx)
		if err != nil || !ok {
			t.Fatalf("the standby is not synchronous (%v): the numbers would not be those of a pair", err)
		}
	}
	check()
	return p.Primary, []string{postmasterOf(t, p.Primary), postmasterOf(t, p.Standby)}, check
}
