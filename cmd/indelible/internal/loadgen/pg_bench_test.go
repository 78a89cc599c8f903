package loadgen

import (
	"bufio"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The PostgreSQL baseline (BENCHMARKS.md, "Against a PostgreSQL audit
// table"): the events generator's events, COPYed in requests of PerRequest
// rows by Writers psql sessions (closed loop, one COPY in flight each, each
// COPY its own transaction, so one WAL flush per request), into an audit
// table with a unique index on the writer's id and an index per query
// GET /v1/events answers. Server CPU is that of the cluster's processes,
// from /proc. scripts/pg-baseline.sh starts the throwaway cluster and runs
// this beside TestEventsBench. Environment:
//
//	INDELIBLE_PG_BENCH=1  run it
//	PGBENCH_PORT          the cluster's loopback port
//	PGBENCH_PID           the postmaster's pid (its processes' CPU is counted)
//	PGBENCH_PSQL          psql (default: psql on PATH)
//	EVBENCH_DUR           duration of each ingest phase (default 20s)
//	EVBENCH_PHASES        subset of batch,batchnoid,query (default all)

// pgSchema is the audit table: a column per filter of GET /v1/events, the
// event itself, an index per query answered, and ids unique per writer.
const pgSchema = `
DROP TABLE IF EXISTS audit;
CREATE TABLE audit (
	seq          bigserial PRIMARY KEY,
	id           text,
	submitted_by text NOT NULL,
	time         timestamptz NOT NULL,
	received_at  timestamptz NOT NULL DEFAULT now(),
	actor        text,
	action       text NOT NULL,
	resource     text,
	outcome      text,
	source       text,
	event        jsonb NOT NULL
);
CREATE UNIQUE INDEX audit_id ON audit (submitted_by, id);
CREATE INDEX audit_time ON audit (time DESC, seq DESC);
CREATE INDEX audit_actor ON audit (actor, time DESC, seq DESC);
CREATE INDEX audit_action ON audit (action, time DESC, seq DESC);
CREATE INDEX audit_resource ON audit (resource, time DESC, seq DESC);
CREATE INDEX audit_outcome ON audit (outcome, time DESC, seq DESC);
CREATE INDEX audit_source ON audit (source, time DESC, seq DESC);
`

// pgCopyRows appends the CSV rows of events start..start+n-1 as the events
// generator makes them (with ids when tag is set).
func pgCopyRows(dst []byte, start int64, n int, tag string) ([]byte, error) {
	var line []byte
	for k := start; k < start+int64(n); k++ {
		line = line[:0]
		if tag != "" {
			line = eventIDPrefix(line, tag, k)
			line = append(line, EventLine(nil, int(k))[1:]...)
		} else {
			line = EventLine(line, int(k))
		}
		// The generator numbers events with int; its times go from k.
		tk := appendEventTime(nil, k)
		var e struct {
			ID       string              `json:"id"`
			Actor    struct{ ID string } `json:"actor"`
			Action   string              `json:"action"`
			Resource struct{ ID string } `json:"resource"`
			Outcome  string              `json:"outcome"`
			Source   string              `json:"source"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, err
		}
		dst = append(dst, csvField(e.ID)...) // empty: NULL
		dst = append(dst, ",bench,"...)
		dst = append(dst, tk...)
		for _, f := range []string{e.Actor.ID, e.Action, e.Resource.ID, e.Outcome, e.Source} {
			dst = append(dst, ',')
			dst = append(dst, csvField(f)...)
		}
		dst = append(dst, ',')
		dst = append(dst, csvField(string(line))...)
		dst = append(dst, '\n')
	}
	return dst, nil
}

func csvField(s string) string {
	if s == "" {
		return ""
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// psql is one psql session reading commands from a pipe.
type psql struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startPsql(t *testing.T, port string) *psql {
	t.Helper()
	bin := os.Getenv("PGBENCH_PSQL")
	if bin == "" {
		bin = "psql"
	}
	cmd := exec.Command(bin, "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "postgres",
		"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &psql{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	p.out.Buffer(make([]byte, 1<<20), 1<<20)
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	return p
}

// do sends cmds and reads output lines until one equal to marker, which
// cmds must print last (\echo marker).
func (p *psql) do(cmds []byte, marker string) ([]string, error) {
	if _, err := p.in.Write(cmds); err != nil {
		return nil, err
	}
	var lines []string
	for p.out.Scan() {
		if p.out.Text() == marker {
			return lines, nil
		}
		lines = append(lines, p.out.Text())
	}
	return nil, fmt.Errorf("psql ended: %v", p.out.Err())
}

// pgCPU is the CPU time of the postmaster and its live children (the
// backends stay up for the run) plus what finished children left in its
// cutime/cstime.
func pgCPU(t *testing.T, pid string) time.Duration {
	t.Helper()
	tck := 100.0 // USER_HZ on Linux
	stat := func(p string) []string {
		b, err := os.ReadFile("/proc/" + p + "/stat")
		if err != nil {
			return nil
		}
		s := string(b)
		return strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	}
	var ticks float64
	f := stat(pid)
	if f == nil {
		t.Fatalf("postmaster %s is gone", pid)
	}
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if f := stat(e.Name()); f != nil && f[1] == pid { // ppid
			for _, i := range []int{11, 12} {
				v, _ := strconv.ParseFloat(f[i], 64)
				ticks += v
			}
		}
	}
	return time.Duration(ticks / tck * float64(time.Second))
}

func TestPGBench(t *testing.T) {
	if os.Getenv("INDELIBLE_PG_BENCH") != "1" {
		t.Skip("set INDELIBLE_PG_BENCH=1 (scripts/pg-baseline.sh does) to run the PostgreSQL baseline")
	}
	port, pid := os.Getenv("PGBENCH_PORT"), os.Getenv("PGBENCH_PID")
	if port == "" || pid == "" {
		t.Fatal("PGBENCH_PORT and PGBENCH_PID are required")
	}
	dur := envDuration(t, "EVBENCH_DUR", 20*time.Second)
	phases := map[string]bool{}
	for p := range strings.SplitSeq(cmp.Or(os.Getenv("EVBENCH_PHASES"), "batch,batchnoid,query"), ",") {
		phases[p] = true
	}
	admin := startPsql(t, port)
	if _, err := admin.do([]byte(pgSchema+"\\echo ready\n"), "ready"); err != nil {
		t.Fatal(err)
	}
	var next atomic.Int64 // events loaded so far: the next event's number
	ingest := func(name string, ids bool) {
		const writers, per = 4, 1000
		var tag string
		if ids {
			var r [4]byte
			rand.Read(r[:])
			tag = hex.EncodeToString(r[:])
		}
		sessions := make([]*psql, writers)
		for i := range sessions {
			sessions[i] = startPsql(t, port)
		}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			lat  []time.Duration
			evs  atomic.Int64
			ferr error
		)
		cpu0 := pgCPU(t, pid)
		start := time.Now()
		deadline := start.Add(dur)
		for _, s := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				for time.Now().Before(deadline) {
					k := next.Add(per) - per
					buf = append(buf[:0], "COPY audit (id, submitted_by, time, actor, action, resource, outcome, source, event) FROM STDIN (FORMAT csv);\n"...)
					var err error
					if buf, err = pgCopyRows(buf, k, per, tag); err != nil {
						mu.Lock()
						ferr = err
						mu.Unlock()
						return
					}
					buf = append(buf, "\\.\n\\echo done\n"...)
					t0 := time.Now()
					if _, err := s.do(buf, "done"); err != nil {
						mu.Lock()
						ferr = err
						mu.Unlock()
						return
					}
					d := time.Since(t0)
					evs.Add(per)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		cpu := pgCPU(t, pid) - cpu0
		if ferr != nil {
			t.Fatalf("%s: %v", name, ferr)
		}
		n := evs.Load()
		slices.Sort(lat)
		t.Logf("PostgreSQL %s: events %d in %.1fs: %.0f events/s; request latency p50 %v p99 %v; server CPU %v per event (%.2f cores)",
			name, n, el.Seconds(), float64(n)/el.Seconds(), Percentile(lat, 50), Percentile(lat, 99),
			cpu/time.Duration(max(n, 1)), cpu.Seconds()/el.Seconds())
	}
	if phases["batch"] {
		ingest("batched COPY with ids, 1000 events/request, 4 writers", true)
	}
	if phases["batchnoid"] {
		ingest("batched COPY without ids, 1000 events/request, 4 writers", false)
	}
	if phases["query"] {
		n := next.Load()
		mid := EventsBase.Add(time.Duration(n/2) * time.Millisecond)
		w0, w1 := mid.Format(time.RFC3339), mid.Add(10*time.Minute).Format(time.RFC3339)
		queries := map[string]string{
			"actor filter (1 of 5,000 actors)":      "actor = 'user0042@example.com'",
			"time range (10 minutes in the middle)": fmt.Sprintf("time >= '%s' AND time < '%s'", w0, w1),
			"no filter (newest 100)":                "true",
		}
		if _, err := admin.do([]byte("ANALYZE audit;\n\\timing on\n\\echo ready\n"), "ready"); err != nil {
			t.Fatal(err)
		}
		for _, name := range slices.Sorted(maps.Keys(queries)) {
			q := "SELECT seq, event FROM audit WHERE " + queries[name] + " ORDER BY time DESC, seq DESC LIMIT 100;\n\\echo done\n"
			var ds []time.Duration
			for range 200 {
				lines, err := admin.do([]byte(q), "done")
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range lines {
					if v, ok := strings.CutPrefix(l, "Time: "); ok {
						ms, err := strconv.ParseFloat(strings.TrimSuffix(strings.Fields(v)[0], " ms"), 64)
						if err == nil {
							ds = append(ds, time.Duration(ms*float64(time.Millisecond)))
						}
					}
				}
			}
			if len(ds) < 200 {
				t.Fatalf("query %s: %d timings", name, len(ds))
			}
			t.Logf("PostgreSQL query %s: %s", name, pct(ds[20:]))
		}
	}
	cnt, err := admin.do([]byte("\\timing off\nSELECT count(*) FROM audit;\n\\echo done\n"), "done")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL store: %s rows", strings.Join(cnt, " "))
}
