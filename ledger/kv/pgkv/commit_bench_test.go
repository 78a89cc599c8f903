package pgkv_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger/kv"
)

// cpuWith is this process's CPU time plus that of the postmaster pid and
// its children (live ones and, in its cutime/cstime, finished ones).
func cpuWith(pid string) time.Duration {
	stat := func(p string) []string {
		b, err := os.ReadFile("/proc/" + p + "/stat")
		if err != nil {
			return nil
		}
		s := string(b)
		return strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	}
	var ticks float64
	if f := stat(pid); f != nil {
		for _, i := range []int{11, 12, 13, 14} {
			v, _ := strconv.ParseFloat(f[i], 64)
			ticks += v
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if f := stat(e.Name()); f != nil && f[1] == pid {
			for _, i := range []int{11, 12} {
				v, _ := strconv.ParseFloat(f[i], 64)
				ticks += v
			}
		}
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ticks/100*float64(time.Second)) + time.Duration(ru.Utime.Nano()+ru.Stime.Nano())
}

// TestCommitBench compares the two ways a batch's sets are sent, the
// upsert of two arrays (unnest) and COPY into a staging table, on batches
// shaped like the events layer's (per event: a sequential 300-byte payload
// key and six hashed 40-byte index keys, 7 rows), rounds alternating on new
// databases. CPU is this process's plus the PostgreSQL cluster's. Skipped
// unless INDELIBLE_PGKV_BENCH=1; PGKV_BENCH_EVENTS (events a batch, default
// 600) and PGKV_BENCH_BATCHES (batches a round, default 30) shape it:
//
//	INDELIBLE_PGKV_BENCH=1 PGKV_BENCH_EVENTS=600 go test ./ledger/kv/pgkv -run TestCommitBench -v -count=1
func TestCommitBench(t *testing.T) {
	if os.Getenv("INDELIBLE_PGKV_BENCH") != "1" {
		t.Skip("set INDELIBLE_PGKV_BENCH=1 to compare unnest and COPY")
	}
	count := func(name string, def int) int {
		if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
			return n
		}
		return def
	}
	events, batches := count("PGKV_BENCH_EVENTS", 600), count("PGKV_BENCH_BATCHES", 30)
	pid := pgtest.PostmasterPID(t)
	val := make([]byte, 300)
	rand.Read(val)
	modes := map[string]int{"unnest": math.MaxInt, "copy": 1}
	cpu, rate := map[string][]float64{}, map[string][]float64{}
	for round := range 6 {
		order := []string{"unnest", "copy"}
		if round%2 == 1 {
			order = []string{"copy", "unnest"}
		}
		for _, mode := range order {
			copyFrom(t, modes[mode])
			s, _ := pgtest.Store(t)
			head := kv.Head{Size: -1, Root: []byte{}}
			c0, w0 := cpuWith(pid), time.Now()
			next := uint64(0)
			for range batches {
				b := s.NewBatch(0)
				for range events {
					var k [9]byte
					k[0] = 'p'
					binary.BigEndian.PutUint64(k[1:], next)
					b.Set(k[:], val)
					for f := range 6 {
						h := sha256.Sum256(append(k[:], byte(f)))
						b.Set(append([]byte{'i'}, h[:]...), k[1:])
					}
					next++
				}
				to := kv.Head{Size: int64(next), Root: []byte(strconv.FormatUint(next, 10))}
				b.Set([]byte("state"), to.Root)
				b.Advance(head, to)
				head = to
				if err := b.Commit(true); err != nil {
					t.Fatal(err)
				}
				b.Close()
			}
			n := float64(events * batches)
			c, r := float64((cpuWith(pid)-c0).Nanoseconds())/1000/n, n/time.Since(w0).Seconds()
			cpu[mode], rate[mode] = append(cpu[mode], c), append(rate[mode], r)
			t.Logf("round %d %-6s %6.1f µs CPU/event %6.0f events/s", round+1, mode, c, r)
			s.Close()
		}
	}
	for _, mode := range []string{"unnest", "copy"} {
		slices.Sort(cpu[mode])
		slices.Sort(rate[mode])
		t.Logf("%-6s %d events (%d rows) a batch: median %.1f µs CPU/event (%.1f-%.1f), %.0f events/s", mode, events, 7*events+1,
			(cpu[mode][2]+cpu[mode][3])/2, cpu[mode][0], cpu[mode][5], (rate[mode][2]+rate[mode][3])/2)
	}
}
