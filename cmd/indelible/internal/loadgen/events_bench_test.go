package loadgen

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/api"
	"indelible.dev/auth"
	"indelible.dev/cmd/indelible/internal/gctune"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/httpapi"
	"indelible.dev/ledger"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pebblekv"
)

// The events benchmark (BENCHMARKS.md, "Audit events"): a real ledger,
// events layer and token store in a directory, served by the real HTTP API
// on a loopback port in this process, driven by Events and QueryLatency.
// Skipped unless INDELIBLE_EVENTS_BENCH=1. Knobs (environment):
//
//	EVBENCH_DIR      store directory, kept and reused (default: a temporary one)
//	EVBENCH_DUR      duration of each ingest phase (default 20s)
//	EVBENCH_EVENTS   if set, the batched phases also stop after this many events
//	                 (the same work in every run of an A/B, whatever the load)
//	EVBENCH_BUILD    extra batched ingest before the queries, to grow the store (default 0)
//	EVBENCH_PHASES   comma-separated subset of batch,batchnoid,single,build,settle,query,restart
//	                 (default all but settle: wait until pebble has no compaction to do)
//	                 (batch: every event with an id; batchnoid: the same without ids)
//	EVBENCH_ROUNDS   run batch and batchnoid this many times, alternating (default 1)
//	EVBENCH_CPUPROF  write a CPU profile of the first batched phase (with ids) to this file,
//	                 and one of the first batched phase without ids to this file + ".noid"
//	EVBENCH_DIRECT   1: also measure each query's listing alone (in process, no HTTP, no read
//	                 record) and the read record's append alone
//	EVBENCH_CACHE    the store's block cache in MiB, as serve's --cache-size (default 0: its default)
//	EVBENCH_QUERYPROF write a CPU profile of the query phase's measured queries to this file
//	EVBENCH_QUERYMEMPROF write the process's allocation profile after the query phase to this file
//	EVBENCH_QUERYN   queries measured per query (default 180, after EVBENCH_WARMUP more that warm its caches)
//	EVBENCH_WARMUP   queries of each kind run before any is measured, and again before each kind's
//	                 measured ones, not counted (default 20; 0: a fresh process's cold caches, all counted)
//	EVBENCH_QUERIES  comma-separated subset of actor,outcome,time,none,and,actors,times (default the
//	                 first five; actors and times change the actor or the window every query)
//
//	INDELIBLE_EVENTS_BENCH=1 go test ./cmd/indelible/internal/loadgen -run TestEventsBench -v -timeout 0

type benchServer struct {
	dir    string
	log    *ledger.Log
	layer  *eventstore.Layer
	hs     *httptest.Server
	srv    *httpapi.Server
	tokens *auth.Store
	tok    string
	pdb    *pebble.DB // the pebble store's, for its metrics (nil on another store)
}

type benchPersister struct{}

func (benchPersister) Load() ([]auth.Record, error) { return nil, nil }
func (benchPersister) Put(auth.Record) error        { return nil }

var benchMaster = func() []byte { b := make([]byte, 32); rand.Read(b); return b }()

func openBench(t *testing.T, dir string, skey string) *benchServer {
	t.Helper()
	return openBenchStore(t, dir, skey, nil)
}

// openBenchStore is openBench on store (nil: pebble in dir).
func openBenchStore(t *testing.T, dir string, skey string, store kv.Store) *benchServer {
	t.Helper()
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var pdb *pebble.DB
	if store == nil {
		// The ledger's own pebble store, opened here to read its metrics
		// (WAL, flush and compaction bytes per event).
		var cache int64 // serve's --cache-size (0: its default)
		if v := os.Getenv("EVBENCH_CACHE"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				t.Fatalf("EVBENCH_CACHE=%q: want MiB", v)
			}
			cache = int64(n) << 20
		}
		ps, err := pebblekv.Open(dir, pebblekv.Options{Logger: logger, CacheSize: cache})
		if err != nil {
			t.Fatal(err)
		}
		store, pdb = ps, ps.DB()
	}
	l, err := ledger.Open(dir, ledger.Options{Signer: s, Logger: logger, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	kr, err := eventstore.NewKeyring(benchMaster)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := eventstore.Open(eventstore.Config{Log: l, Keyring: kr, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.Open(benchPersister{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := tokens.Create("bench", []auth.Scope{auth.ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.New(httpapi.Config{Log: l, Events: layer, Tokens: tokens, Logger: logger})
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config = srv.HTTPServer("")
	hs.Start()
	return &benchServer{dir: dir, log: l, layer: layer, hs: hs, srv: srv, tokens: tokens, tok: secret, pdb: pdb}
}

func (b *benchServer) size() int64 {
	cp, _ := b.log.Checkpoint()
	return cp.N
}

func (b *benchServer) published() int64 {
	cp, _ := b.log.Published()
	return cp.N
}

func (b *benchServer) close() {
	b.srv.SetShuttingDown()
	b.hs.Close()
	b.layer.Close()
	b.log.Close()
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMiB reads this process's resident set size.
func rssMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return -1
}

// ingest runs one Events phase and logs events/s, process CPU per event,
// and RSS sampled every second (first, max, last).
func (b *benchServer) ingest(t *testing.T, name string, cfg EventsConfig) {
	t.Helper()
	cfg.URL, cfg.Token = b.hs.URL, b.tok
	var rss []float64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				rss = append(rss, rssMiB())
			}
		}
	}()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	lsm0 := b.lsmBytes()
	cpu0 := cpuNow()
	res, err := Events(t.Context(), cfg)
	cpu := cpuNow() - cpu0
	runtime.ReadMemStats(&ms1)
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	res.Print(&sb)
	per := time.Duration(0)
	var allocs, allocBytes, gcs float64
	if res.Events > 0 {
		per = cpu / time.Duration(res.Events)
		allocs = float64(ms1.Mallocs-ms0.Mallocs) / float64(res.Events)
		allocBytes = float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(res.Events)
		gcs = float64(ms1.NumGC - ms0.NumGC)
	}
	rs := "n/a"
	if len(rss) > 0 {
		rs = fmt.Sprintf("first %.0f MiB, max %.0f MiB, last %.0f MiB (%d samples)", rss[0], slices.Max(rss), rss[len(rss)-1], len(rss))
	}
	// Allocations are the whole process's (the in-process load generator's
	// client included), like the CPU.
	lsm := b.lsmBytes()
	for i := range lsm {
		lsm[i] = (lsm[i] - lsm0[i]) / max(1, uint64(res.Events))
	}
	t.Logf("%s: %s  process CPU %v per event (%.2f cores); %.0f allocs, %.0f B per event, %.0f GCs; pebble bytes per event: WAL %d, flushed %d, compacted %d; RSS %s; log size %d",
		name, strings.TrimSpace(sb.String()), per, cpu.Seconds()/res.Elapsed.Seconds(), allocs, allocBytes, gcs, lsm[0], lsm[1], lsm[2], rs, b.size())
	if res.Errors > 0 && res.Events == 0 {
		t.Fatalf("%s: every request failed: %v", name, res.FirstErr)
	}
}

// lsmBytes returns the bytes pebble has written so far: to the WAL, in
// flushes and in compactions (zero on another store).
func (b *benchServer) lsmBytes() [3]uint64 {
	if b.pdb == nil {
		return [3]uint64{}
	}
	m := b.pdb.Metrics()
	var r [3]uint64
	r[0] = m.WAL.BytesWritten
	for _, lv := range m.Levels {
		r[1] += lv.TableBytesFlushed
		r[2] += lv.TableBytesCompacted
	}
	return r
}

// cacheStats are pebble's block cache, file cache and filter counters.
type cacheStats struct{ blockHits, blockMisses, fileHits, fileMisses, filterHits, filterMisses int64 }

func (b *benchServer) cacheStats() cacheStats {
	if b.pdb == nil {
		return cacheStats{}
	}
	m := b.pdb.Metrics()
	return cacheStats{m.BlockCache.Hits, m.BlockCache.Misses, m.FileCache.Hits, m.FileCache.Misses, m.Filter.Hits, m.Filter.Misses}
}

func (c cacheStats) sub(o cacheStats) cacheStats {
	return cacheStats{c.blockHits - o.blockHits, c.blockMisses - o.blockMisses, c.fileHits - o.fileHits, c.fileMisses - o.fileMisses, c.filterHits - o.filterHits, c.filterMisses - o.filterMisses}
}

type cacheRates struct {
	c cacheStats
	n int
}

func (c cacheStats) per(n int) cacheRates { return cacheRates{c, max(n, 1)} }

func (r cacheRates) String() string {
	f := func(v int64) float64 { return float64(v) / float64(r.n) }
	return fmt.Sprintf("block cache %.0f hits %.1f misses, file cache %.0f hits %.1f misses, filter %.0f skipped %.0f passed",
		f(r.c.blockHits), f(r.c.blockMisses), f(r.c.fileHits), f(r.c.fileMisses), f(r.c.filterHits), f(r.c.filterMisses))
}

// logLSM logs the shape of the pebble store: tables and bytes per level,
// L0's sublevels, the block cache's size.
func (b *benchServer) logLSM(t *testing.T) {
	if b.pdb == nil {
		return
	}
	m := b.pdb.Metrics()
	var sb strings.Builder
	for i, lv := range m.Levels {
		if lv.TablesCount > 0 {
			fmt.Fprintf(&sb, " L%d %d tables %d MiB", i, lv.TablesCount, lv.TablesSize>>20)
			if i == 0 {
				fmt.Fprintf(&sb, " (%d sublevels)", lv.Sublevels)
			}
			sb.WriteString(";")
		}
	}
	t.Logf("LSM:%s block cache %d MiB in %d blocks; compactions %d so far, %d running", sb.String(), m.BlockCache.Size>>20, m.BlockCache.Count, m.Compact.Count, m.Compact.NumInProgress)
}

func pct(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("p50 %v p90 %v p99 %v max %v (n=%d)", Percentile(s, 50), Percentile(s, 90), Percentile(s, 99), Percentile(s, 100), len(s))
}

func TestEventsBench(t *testing.T) {
	if os.Getenv("INDELIBLE_EVENTS_BENCH") != "1" {
		t.Skip("set INDELIBLE_EVENTS_BENCH=1 to run the events benchmark")
	}
	// The server runs with serve's GC setting (unless GOGC is set), as
	// it does in production: at Go's default the in-process server
	// collected five times as often as indelible serve does (issue 21).
	gcp := debug.SetGCPercent(-1)
	debug.SetGCPercent(gcp)
	defer debug.SetGCPercent(gcp)
	gctune.Tune()
	dir := os.Getenv("EVBENCH_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	dur := envDuration(t, "EVBENCH_DUR", 20*time.Second)
	var build time.Duration
	if v := os.Getenv("EVBENCH_BUILD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		build = d
	}
	phases := map[string]bool{}
	for p := range strings.SplitSeq(cmp.Or(os.Getenv("EVBENCH_PHASES"), "batch,batchnoid,single,build,query,restart"), ",") {
		phases[p] = true
	}
	// The signing key and master key must survive a reused directory.
	skey := loadOrMake(t, dir+".skey", func() string {
		k, _, err := note.GenerateKey(rand.Reader, "example.com/evbench")
		if err != nil {
			t.Fatal(err)
		}
		return k
	})
	benchMaster = []byte(loadOrMake(t, dir+".master", func() string { return string(benchMaster) }))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b := openBench(t, dir, skey)
	t.Cleanup(func() { b.close() })

	// Batched ingest with ids (what production sends) and without, rounds
	// alternating, so the A/B pair sees the same machine load.
	rounds := envCount(t, "EVBENCH_ROUNDS", 1)
	var reqs int64
	if os.Getenv("EVBENCH_EVENTS") != "" {
		reqs = int64(envCount(t, "EVBENCH_EVENTS", 0)) / 1000
	}
	for r := range rounds {
		if phases["batch"] {
			var pf *os.File
			if p := os.Getenv("EVBENCH_CPUPROF"); p != "" && r == 0 {
				f, err := os.Create(p)
				if err != nil {
					t.Fatal(err)
				}
				pf = f
				pprof.StartCPUProfile(f)
			}
			b.ingest(t, "batched NDJSON with ids, 1000 events/request, 4 writers", EventsConfig{Writers: 4, PerRequest: 1000, Duration: dur, Requests: reqs, Start: b.size(), IDs: true})
			if pf != nil {
				pprof.StopCPUProfile()
				pf.Close()
			}
		}
		if phases["batchnoid"] {
			var pf *os.File
			if p := os.Getenv("EVBENCH_CPUPROF"); p != "" && r == 0 {
				f, err := os.Create(p + ".noid")
				if err != nil {
					t.Fatal(err)
				}
				pf = f
				pprof.StartCPUProfile(f)
			}
			b.ingest(t, "batched NDJSON without ids, 1000 events/request, 4 writers", EventsConfig{Writers: 4, PerRequest: 1000, Duration: dur, Requests: reqs, Start: b.size()})
			if pf != nil {
				pprof.StopCPUProfile()
				pf.Close()
			}
		}
	}
	if phases["single"] {
		b.ingest(t, "single-event POSTs, 256 writers", EventsConfig{Writers: 256, PerRequest: 1, Duration: dur, Start: b.size()})
	}
	if phases["build"] && build > 0 {
		b.ingest(t, "store build (batched with ids, 4 writers)", EventsConfig{Writers: 4, PerRequest: 1000, Duration: build, Start: b.size(), IDs: true})
	}
	if phases["settle"] && b.pdb != nil {
		// Let pebble finish the compactions an ingest left behind, as a
		// store that has been idle a while has: a query right after a
		// long ingest measures those compactions as much as itself.
		t0 := time.Now()
		b.logLSM(t)
		// Settled: no compaction running or started for 10 seconds (pebble
		// may leave a compaction debt it does not act on).
		last := int64(-1)
		for quiet := 0; quiet < 10; {
			time.Sleep(time.Second)
			m := b.pdb.Metrics()
			if m.Compact.NumInProgress == 0 && m.Compact.Count == last {
				quiet++
			} else {
				quiet = 0
			}
			last = m.Compact.Count
			if time.Since(t0) > 4*time.Hour {
				t.Fatal("pebble still compacting after 4 hours")
			}
		}
		t.Logf("settled in %v", time.Since(t0).Round(time.Second))
		b.logLSM(t)
	}
	if phases["query"] {
		// Wait until the last batch is published, so every event counts.
		deadline := time.Now().Add(5 * time.Second)
		for b.published() < b.size() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("store: %d events", b.size())
		// A 10-minute window in the middle of the store's time line
		// (event k is at EventsBase + k ms).
		n := b.size()
		window := func(k int64) string {
			at := EventsBase.Add(time.Duration(k) * time.Millisecond)
			return "&since=" + url.QueryEscape(at.Format(time.RFC3339)) + "&until=" + url.QueryEscape(at.Add(10*time.Minute).Format(time.RFC3339))
		}
		fixed := func(p string) func(int) string { return func(int) string { return p } }
		type query struct {
			short, name string
			path        func(k int) string
		}
		queries := []query{
			{"actor", "actor filter (1 of 5,000 actors)", fixed("/v1/events?limit=100&actor=user0042@example.com")},
			{"outcome", "outcome filter (1 of 4)", fixed("/v1/events?limit=100&outcome=denied")},
			{"time", "time range (10 minutes in the middle)", fixed("/v1/events?limit=100" + window(n/2))},
			{"none", "no filter (newest 100)", fixed("/v1/events?limit=100")},
			{"and", "actor and action (AND of two filters)", fixed("/v1/events?limit=100&actor=user0042@example.com&action=kubectl.verb02")},
			// The same queries as a server with many readers sees them:
			// another actor, or another window, each query, so that the
			// candidates' blocks are rarely the ones the query before read.
			{"actors", "actor filter, another actor each query", func(k int) string {
				return fmt.Sprintf("/v1/events?limit=100&actor=user%04d@example.com", (1+k*7919)%5000)
			}},
			{"times", "time range (10 minutes), another window each query", func(k int) string {
				return "/v1/events?limit=100" + window((int64(k)*7919*600_000)%max(n-600_000, 1))
			}},
		}
		sel := map[string]bool{}
		for p := range strings.SplitSeq(cmp.Or(os.Getenv("EVBENCH_QUERIES"), "actor,outcome,time,none,and"), ",") {
			sel[p] = true
		}
		queries = slices.DeleteFunc(queries, func(q query) bool { return !sel[q.short] })
		slices.SortFunc(queries, func(a, b query) int { return strings.Compare(a.name, b.name) })
		warm := 20
		if v := os.Getenv("EVBENCH_WARMUP"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				t.Fatalf("EVBENCH_WARMUP=%q: want a whole number", v)
			}
			warm = n
		}
		qn := envCount(t, "EVBENCH_QUERYN", 180)
		b.logLSM(t)
		// Warm every query first (caches, files opened), so that the first
		// one measured does not pay for the others. With EVBENCH_WARMUP=0
		// nothing is warmed and every query is measured: a fresh process's
		// cold caches.
		if warm > 0 {
			for _, q := range queries {
				if _, err := QueryLatencyFunc(t.Context(), b.hs.URL, b.tok, func(k int) string { return q.path(k + qn + warm) }, warm); err != nil {
					t.Fatal(err)
				}
			}
		}
		var qprof *os.File
		if p := os.Getenv("EVBENCH_QUERYPROF"); p != "" {
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			qprof = f
			pprof.StartCPUProfile(f)
		}
		for _, q := range queries {
			m0 := b.cacheStats()
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			cpu0 := cpuNow()
			ds, err := QueryLatencyFunc(t.Context(), b.hs.URL, b.tok, q.path, warm+qn)
			if err != nil {
				t.Fatal(err)
			}
			// Process CPU per query (server, audit record and client) is
			// the figure a loaded machine disturbs least.
			cpu := (cpuNow() - cpu0) / time.Duration(len(ds))
			runtime.ReadMemStats(&ms1)
			cs := b.cacheStats().sub(m0).per(len(ds))
			// Allocations are the whole process's, the client's included.
			t.Logf("query %s: %s (first %v); process CPU %v per query; per query: %s; %.0f allocs, %.0f KB",
				q.name, pct(ds[warm:]), ds[0].Round(10*time.Microsecond), cpu, cs,
				float64(ms1.Mallocs-ms0.Mallocs)/float64(len(ds)), float64(ms1.TotalAlloc-ms0.TotalAlloc)/1024/float64(len(ds))) // the first `warm` warm the caches
		}
		if qprof != nil {
			pprof.StopCPUProfile()
			qprof.Close()
		}
		if p := os.Getenv("EVBENCH_QUERYMEMPROF"); p != "" {
			// What the queries (and everything else since the process
			// started) allocated: go tool pprof -sample_index=alloc_space.
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		if os.Getenv("EVBENCH_DIRECT") == "1" {
			// The two halves of an audited query, measured alone in
			// this process: the listing (no HTTP, no read record), and
			// the read record's append (its fsync).
			for _, q := range queries {
				ds := make([]time.Duration, 0, qn)
				for k := range qn {
					u, err := url.Parse(q.path(k))
					if err != nil {
						t.Fatal(err)
					}
					aq, err := api.ParseQuery(u.Query())
					if err != nil {
						t.Fatal(err)
					}
					t0 := time.Now()
					if _, err := b.layer.ListContext(t.Context(), aq); err != nil {
						t.Fatal(err)
					}
					ds = append(ds, time.Since(t0))
				}
				t.Logf("listing alone, %s: %s", q.name, pct(ds))
			}
			ds := make([]time.Duration, 0, qn)
			for range qn {
				ev := event.Event{Actor: &event.Actor{ID: "bench", Type: "token"}, Action: "indelible.read", Source: event.ServerSource, Metadata: []byte(`{"route":"/v1/events"}`)}
				t0 := time.Now()
				if _, err := b.layer.Record(t.Context(), "bench", []event.Event{ev}, nil); err != nil {
					t.Fatal(err)
				}
				ds = append(ds, time.Since(t0))
			}
			t.Logf("read record alone (append, durable): %s", pct(ds))
		}
		b.logLSM(t)
		t.Logf("RSS after the queries: %.0f MiB", rssMiB())
	}
	if phases["restart"] {
		n := b.size()
		b.close()
		t0 := time.Now()
		b = openBench(t, dir, skey)
		ds, err := QueryLatency(context.Background(), b.hs.URL, b.tok, "/v1/events?limit=100", 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("restart with %d events: Open to first served query %v (the query itself %v)", n, time.Since(t0), ds[0])
	}
}

// loadOrMake reads a file, or writes what mk returns to it (0600).
func loadOrMake(t *testing.T, path string, mk func() string) string {
	if b, err := os.ReadFile(path); err == nil {
		return string(b)
	}
	v := mk()
	if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestEventsRealServer runs the events load generator briefly against a
// real events-mode server: every event sent is acknowledged and stored,
// each with its own time (event k at EventsBase + k ms), and the query
// helper reads them back.
func TestEventsRealServer(t *testing.T) {
	k, _, err := note.GenerateKey(rand.Reader, "example.com/evbench")
	if err != nil {
		t.Fatal(err)
	}
	b := openBench(t, t.TempDir(), k)
	t.Cleanup(func() { b.close() })
	var total int64
	for _, c := range []struct {
		per int
		ids bool
	}{{1, false}, {25, false}, {25, true}, {1, true}} {
		per := c.per
		res, err := Events(t.Context(), EventsConfig{URL: b.hs.URL, Token: b.tok, Writers: 3, PerRequest: per, Duration: 200 * time.Millisecond, Start: total, IDs: c.ids})
		if err != nil || res.Errors != 0 || res.Events == 0 || res.Events != res.Requests*int64(per) {
			t.Fatalf("per %d: %+v %v", per, res, err)
		}
		total += res.Events
	}
	if n := b.size(); n != total {
		t.Fatalf("log size %d, sent %d events", n, total)
	}
	for b.published() < total {
		time.Sleep(5 * time.Millisecond)
	}
	p, err := b.layer.List(eventstore.Query{Limit: eventstore.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	want := min(total, eventstore.MaxLimit)
	if int64(len(p.Records)) != want {
		t.Fatalf("%d records, want %d", len(p.Records), want)
	}
	ids := map[string]bool{}
	for i, r := range p.Records { // newest first, one ms apart
		if r.Event.ID != "" {
			if ids[r.Event.ID] {
				t.Fatalf("record %d: id %q repeats", i, r.Event.ID)
			}
			ids[r.Event.ID] = true
		}
		if at := EventsBase.Add(time.Duration(total-1-int64(i)) * time.Millisecond); !r.Event.Time.Equal(at) {
			t.Fatalf("record %d at %v, want %v", i, r.Event.Time, at)
		}
	}
	if len(ids) == 0 {
		t.Fatal("no record carries an id: the IDs phases sent none")
	}
	if n := len(EventLine(nil, 12345)); n < 250 || n > 350 {
		t.Fatalf("generated event of %d bytes, want about 300", n)
	}
	t.Logf("generated event: %d bytes; stored canonical event (with received_at, submitted_by): %d bytes", len(EventLine(nil, 12345)), len(p.Records[0].EventBytes))
	ds, err := QueryLatency(t.Context(), b.hs.URL, b.tok, "/v1/events?limit=10&outcome=denied", 3)
	if err != nil || len(ds) != 3 {
		t.Fatal(ds, err)
	}
}
