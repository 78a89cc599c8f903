package eventstore

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/evidence"
	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// TestBundleBench measures evidence bundle export and verification
// (BENCHMARKS.md). It runs only with INDELIBLE_BUNDLE_BENCH=LOG,RANGE[,RANGE...]:
// a log of LOG events is built, then for each RANGE a bundle of that many
// events (ending at the log's end) is exported to a file and verified, with
// wall time, process CPU time and peak heap for each. TestBundle is the
// short version that always runs.
//
//	INDELIBLE_BUNDLE_BENCH=1500000,100000,1000000 go test -run TestBundleBench -v -timeout 60m ./eventstore/
//
// With INDELIBLE_BUNDLE_STORE=DIR the log is kept in DIR (with its keys, in
// DIR/bench.keys): the first run builds it, later runs reopen it and build
// nothing, so that two builds of the code can be compared on one store.
func TestBundleBench(t *testing.T) {
	spec := os.Getenv("INDELIBLE_BUNDLE_BENCH")
	if spec == "" {
		t.Skip("set INDELIBLE_BUNDLE_BENCH=LOG,RANGE... to run")
	}
	var sizes []int
	for _, s := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("INDELIBLE_BUNDLE_BENCH=%q", spec)
		}
		sizes = append(sizes, n)
	}
	ctx := context.Background()
	e, built := benchStore(t)
	start := time.Now()
	const batch = 10_000
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		if built {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k*batch >= sizes[0] {
					return
				}
				if _, err := e.l.Append(ctx, "bench", benchEvents(min(batch, sizes[0]-k*batch), k, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	n, _, err := e.log.ServedCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if built {
		t.Logf("log of %d entries reopened from %s", n, e.dir)
	} else {
		t.Logf("log of %d entries built in %v", n, time.Since(start).Round(time.Millisecond))
	}
	// The store's own work (pebble compacting what the build wrote, which
	// it resumes on every open) is not the bundle's: wait for it to end.
	settled := time.Now()
	for {
		cpu0 := cpuTime()
		time.Sleep(2 * time.Second)
		if cpuTime()-cpu0 < 40*time.Millisecond || time.Since(settled) > 20*time.Minute {
			break
		}
	}
	t.Logf("store settled (no compaction) after %v", time.Since(settled).Round(time.Second))
	policy, err := itlog.NewPolicy(e.vkey, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sizes[1:] {
		file := filepath.Join(t.TempDir(), "bundle.tar")
		var size int64
		if prof := os.Getenv("INDELIBLE_BUNDLE_PROF"); prof != "" {
			f, _ := os.Create(prof)
			pprof.StartCPUProfile(f)
		}
		wall, cpu, heap := measure(func() {
			p, err := e.l.PlanBundle(BundleRequest{From: n - int64(r), To: n})
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(file)
			if err != nil {
				t.Fatal(err)
			}
			w := bufio.NewWriterSize(f, 64<<10)
			if err := p.Write(ctx, w, func(s int64) { size = s }); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			f.Close()
		})
		pprof.StopCPUProfile()
		if mp := os.Getenv("INDELIBLE_BUNDLE_MEMPROF"); mp != "" {
			f, _ := os.Create(mp)
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		t.Logf("export %d of %d: %v wall, %.0f events/s, %.2f cpu-us/event, peak heap %.1f MiB, %d MiB file, sha256 %s",
			r, n, wall.Round(time.Millisecond), float64(r)/wall.Seconds(), float64(cpu.Microseconds())/float64(r), float64(heap)/(1<<20), size>>20, fileSum(t, file))
		if prof := os.Getenv("INDELIBLE_BUNDLE_PROF"); prof != "" {
			f, _ := os.Create(prof + ".verify")
			pprof.StartCPUProfile(f)
		}
		wall, cpu, heap = measure(func() {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := evidence.Verify(bufio.NewReaderSize(f, 1<<20), evidence.Options{Policy: policy})
			if err != nil || !rep.OK() || rep.Accounted != int64(r) {
				t.Fatalf("verify: %v %v", err, rep.Failures)
			}
		})
		pprof.StopCPUProfile()
		t.Logf("verify %d: %v wall, %.0f events/s, %.2f cpu-us/event, peak heap %.1f MiB",
			r, wall.Round(time.Millisecond), float64(r)/wall.Seconds(), float64(cpu.Microseconds())/float64(r), float64(heap)/(1<<20))
	}
}

// benchStore returns the bench's store: a new one in a temporary directory,
// or the one kept in $INDELIBLE_BUNDLE_STORE (built reports that it holds a
// log already: reopened with its keys).
func benchStore(t *testing.T) (e *env, built bool) {
	dir := os.Getenv("INDELIBLE_BUNDLE_STORE")
	if dir == "" {
		return newEnv(t, nil), false
	}
	keys := filepath.Join(dir, "bench.keys")
	b, err := os.ReadFile(keys)
	if errors.Is(err, fs.ErrNotExist) {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			t.Fatalf("%s holds no finished bench store (no bench.keys): remove it", dir)
		}
		s, v, err := note.GenerateKey(rand.Reader, "example.com/events-test")
		if err != nil {
			t.Fatal(err)
		}
		master := make([]byte, MasterKeySize)
		rand.Read(master)
		b = []byte(s + "\n" + v + "\n" + hex.EncodeToString(master) + "\n")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		// bench.keys is written once the log is built (a half-built
		// store is refused above).
		t.Cleanup(func() {
			if !t.Failed() {
				os.WriteFile(keys, b, 0o600)
			}
		})
	} else if err != nil {
		t.Fatal(err)
	} else {
		built = true
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		t.Fatalf("%s: want skey, vkey and master key", keys)
	}
	key := tlogtest.ParseKey(t, f[0], f[1])
	master, err := hex.DecodeString(f[2])
	if err != nil {
		t.Fatal(err)
	}
	e = &env{t: t, dir: dir, signer: key.Signer, vkey: key.VKey, master: master, clock: tlogtest.NewClock()}
	e.open()
	t.Cleanup(e.close)
	return e, built
}

// fileSum returns the first 16 hex digits of the SHA-256 of a file (two
// builds of the exporter must give the same bundle from the same store).
func fileSum(t *testing.T, name string) string {
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// measure runs f and returns its wall time, the process CPU time it took,
// and the peak of the Go heap in use while it ran (sampled every 5 ms).
func measure(f func()) (time.Duration, time.Duration, uint64) {
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start, cpu0 := time.Now(), cpuTime()
	f()
	wall, cpu := time.Since(start), cpuTime()-cpu0
	close(stop)
	<-done
	return wall, cpu, peak.Load()
}
