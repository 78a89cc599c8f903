package loadgen

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"indelible.dev/internal/pgtest"
)

// pgTrace counts what the store sends PostgreSQL (a pgx tracer on the
// benchmark's pool): round trips (a pipelined batch is one, a query one)
// and the rows the commits write.
type pgTrace struct {
	batches, batchStmts, queries, upserted, deleted, advances atomic.Int64

	mu     sync.Mutex
	cur    map[*pgx.Conn]string // the statements of each connection's batch in flight
	shapes map[string]int64     // commits by their statements
}

// benchTrace is the tracer of the store a benchmark round opened (one at a
// time).
var benchTrace = &pgTrace{}

func (p *pgTrace) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	p.queries.Add(1)
	return ctx
}

func (p *pgTrace) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (p *pgTrace) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	p.batches.Add(1)
	return ctx
}

// takeShapes returns the commits counted by their statements since the
// last call ("INSERT(n) UPSERT(n) UPDATE": rows rounded to a power of 2).
func (p *pgTrace) takeShapes() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.shapes
	p.shapes = nil
	return m
}

func (p *pgTrace) TraceBatchQuery(_ context.Context, conn *pgx.Conn, d pgx.TraceBatchQueryData) {
	p.batchStmts.Add(1)
	if strings.Contains(d.SQL, "UPDATE indelible_fence") {
		p.advances.Add(1)
	}
	verb, _, _ := strings.Cut(strings.TrimSpace(d.SQL), " ")
	if strings.Contains(d.SQL, "ON CONFLICT") {
		verb = "UPSERT"
	} else if strings.Contains(d.SQL, "UPDATE indelible_fence") {
		verb = "ADVANCE"
	} else if strings.Contains(d.SQL, "FOR SHARE") {
		verb = "CHECK"
	}
	if n := d.CommandTag.RowsAffected(); verb != "ADVANCE" && verb != "CHECK" {
		r := int64(1)
		for r < n {
			r *= 2
		}
		verb = fmt.Sprintf("%s(<=%d)", verb, r)
	}
	p.mu.Lock()
	if p.cur == nil {
		p.cur = map[*pgx.Conn]string{}
	}
	p.cur[conn] += verb + " "
	p.mu.Unlock()
	switch {
	case d.CommandTag.Insert():
		p.upserted.Add(d.CommandTag.RowsAffected())
	case d.CommandTag.Delete():
		p.deleted.Add(d.CommandTag.RowsAffected())
	}
}

func (p *pgTrace) TraceBatchEnd(_ context.Context, conn *pgx.Conn, _ pgx.TraceBatchEndData) {
	p.mu.Lock()
	if p.shapes == nil {
		p.shapes = map[string]int64{}
	}
	p.shapes[p.cur[conn]]++
	delete(p.cur, conn)
	p.mu.Unlock()
}

// pgCounters is a reading of a PostgreSQL store's costs: the CPU time of
// each cluster's processes by role, the primary's WAL position, and the
// tracer's counts.
type pgCounters struct {
	cpu                                                       map[string]time.Duration // "primary backend", "standby walreceiver", ...
	lsn                                                       int64
	lsnText, dataDir                                          string // for pg_waldump
	batches, batchStmts, queries, upserted, deleted, advances int64
}

func readPGCounters(t *testing.T, db string, pids []string) pgCounters {
	t.Helper()
	c := pgCounters{cpu: map[string]time.Duration{}}
	for i, pid := range pids {
		side := "primary"
		if i > 0 {
			side = "standby"
		}
		for role, d := range pgCPUByRole(pid) {
			c.cpu[side+" "+role] += d
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, pg_current_wal_lsn()::text, current_setting('data_directory')`).Scan(&c.lsn, &c.lsnText, &c.dataDir); err != nil {
		t.Fatal(err)
	}
	c.batches, c.batchStmts, c.queries = benchTrace.batches.Load(), benchTrace.batchStmts.Load(), benchTrace.queries.Load()
	c.upserted, c.deleted, c.advances = benchTrace.upserted.Load(), benchTrace.deleted.Load(), benchTrace.advances.Load()
	return c
}

func (c pgCounters) sub(o pgCounters) pgCounters {
	d := pgCounters{cpu: map[string]time.Duration{}, lsn: c.lsn - o.lsn,
		batches: c.batches - o.batches, batchStmts: c.batchStmts - o.batchStmts, queries: c.queries - o.queries,
		upserted: c.upserted - o.upserted, deleted: c.deleted - o.deleted, advances: c.advances - o.advances}
	for k, v := range c.cpu {
		d.cpu[k] = v - o.cpu[k]
	}
	return d
}

// perEvent formats the counters per event.
func (c pgCounters) perEvent(n int64) string {
	var sb strings.Builder
	var keys []string
	for k := range c.cpu {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if us := float64(c.cpu[k].Microseconds()) / float64(n); us >= 0.05 {
			fmt.Fprintf(&sb, "%s %.1f µs, ", k, us)
		}
	}
	ev := float64(n)
	fmt.Fprintf(&sb, "WAL %.0f bytes, rows written %.2f deleted %.3f; commits %.4f (%.0f events each, %.1f statements each; %.0f events a log-advancing commit), other queries %.3f",
		float64(c.lsn)/ev, float64(c.upserted)/ev, float64(c.deleted)/ev,
		float64(c.batches)/ev, ev/max(1, float64(c.batches)), float64(c.batchStmts)/max(1, float64(c.batches)), ev/max(1, float64(c.advances)), float64(c.queries)/ev)
	return sb.String()
}

// pgCPUByRole is pgCPU split by the process's role (its title: backend,
// walwriter, walsender, walreceiver, startup, checkpointer, ...); the
// postmaster's own time and what its finished children left are
// "postmaster".
func pgCPUByRole(pid string) map[string]time.Duration {
	const tck = 100.0 // USER_HZ on Linux
	stat := func(p string) []string {
		b, err := os.ReadFile("/proc/" + p + "/stat")
		if err != nil {
			return nil
		}
		s := string(b)
		return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	}
	ticks := func(f []string, idx ...int) time.Duration {
		var v float64
		for _, i := range idx {
			x, _ := strconv.ParseFloat(f[i], 64)
			v += x
		}
		return time.Duration(v / tck * float64(time.Second))
	}
	m := map[string]time.Duration{}
	if f := stat(pid); f != nil {
		m["postmaster"] = ticks(f, 11, 12, 13, 14)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		f := stat(e.Name())
		if f == nil || f[1] != pid {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		title := strings.TrimPrefix(strings.TrimRight(string(cmd), "\x00"), "postgres: ")
		role := "backend"
		for _, r := range []string{"checkpointer", "background writer", "walwriter", "autovacuum", "logical replication", "walsender", "walreceiver", "startup", "archiver"} {
			if strings.HasPrefix(title, r) {
				role = r
				break
			}
		}
		m[role] += ticks(f, 11, 12)
	}
	return m
}

// walStats runs pg_waldump --stats over the primary's WAL between two
// readings (HABENCH_WALDUMP=1): which records, and how much of them full
// page images.
func walStats(t *testing.T, from, to pgCounters) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(pgtest.Bin(), "pg_waldump"), "--stats", "-p", filepath.Join(from.dataDir, "pg_wal"),
		"-s", from.lsnText, "-e", to.lsnText).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("pg_waldump: %v: %s", err, out)
	}
	return string(out)
}
