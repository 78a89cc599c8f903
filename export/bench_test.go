package export

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"indelible.dev/auth"
	"indelible.dev/httpapi"
)

// The export benchmark (BENCHMARKS.md, "Exports to a fake Elasticsearch"):
// a real ledger, events layer and audit service in a temporary directory,
// served by the real HTTP API on a loopback port in this process; an
// elastic_bulk export with the default batching to fakeBulk run in a
// child process (this test binary again), so the receiver's CPU is not
// charged to the exporter. Two phases:
//
//   - live: W writers POST N events with ids (NDJSON, P a request) while the
//     export runs: ingest events/s (N over the time the writers took),
//     export events/s (N over the time until the fake holds all N), the
//     export lag (published size minus the export's cursor, the
//     indelible_export_lag_events metric) sampled every 100 ms while
//     ingesting, and the process CPU (ingest, the writers and the export).
//   - catch-up: a second export, to a fresh fake, of the whole log with
//     nothing else running: export events/s and process CPU per exported
//     event, the exporter's own cost.
//
// Without INDELIBLE_EXPORT_BENCH=1 it runs on 2,000 events as a test of
// the harness. Knobs (environment, with INDELIBLE_EXPORT_BENCH=1):
//
//	EXBENCH_N        events ingested (default 100000)
//	EXBENCH_WRITERS  concurrent writers (default 4)
//	EXBENCH_PER      events per request (default 1000)
//	EXBENCH_CPUPROF  write a CPU profile of the catch-up phase to this file
//
//	INDELIBLE_EXPORT_BENCH=1 go test ./export -run TestExportBench -v -timeout 0

// TestFakeElasticProcess is the child process of TestExportBench, not a
// test: with INDELIBLE_FAKE_ELASTIC=1 it serves fakeBulk on a loopback
// port, prints its URL on stdout and serves until stdin is closed.
func TestFakeElasticProcess(t *testing.T) {
	if os.Getenv("INDELIBLE_FAKE_ELASTIC") != "1" {
		t.Skip("the fake Elasticsearch process of TestExportBench")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &fakeBulk{docs: map[string]exportedDoc{}, reject429: map[string]bool{}}}
	go srv.Serve(ln)
	fmt.Printf("http://%s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
}

// fakeProc is a running fake Elasticsearch process.
type fakeProc struct {
	url   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startFakeElastic(t testing.TB) *fakeProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestFakeElasticProcess$")
	cmd.Env = append(os.Environ(), "INDELIBLE_FAKE_ELASTIC=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &fakeProc{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { p.stop() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://") {
		t.Fatalf("the fake Elasticsearch process printed %q: %v", line, err)
	}
	p.url = strings.TrimSpace(line)
	go io.Copy(io.Discard, stdout)
	return p
}

// count asks the fake how many documents it holds (GET /<index>/_count).
func (p *fakeProc) count(t testing.TB) int64 {
	t.Helper()
	resp, err := http.Get(p.url + "/audit/_count")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c struct {
		Count int64 `json:"count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c.Count
}

// stop ends the process and returns the CPU it used.
func (p *fakeProc) stop() time.Duration {
	if p.stdin == nil {
		return 0
	}
	p.stdin.Close()
	p.stdin = nil
	p.cmd.Wait()
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return 0
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// benchEvent appends the k-th event of the run as one NDJSON line: about
// 300 bytes, with an id.
func benchEvent(dst []byte, k int) []byte {
	return fmt.Appendf(dst, `{"id":"exbench-%09d","actor":{"id":"user%04d@example.com","type":"user","ip":"10.0.3.7"},`+
		`"action":"document.verb%02d","resource":{"type":"document","id":"tenant-%03d/doc-%05d"},"outcome":"success",`+
		`"source":"app/prod-eu%d","reason":"INC-4211 debugging","metadata":{"request_id":"%d"}}`+"\n",
		k, k%5000, k%40, k%100, k%20000, k%3, k)
}

// waitFor polls cond every 20 ms until it holds; it fails after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
	}
}

func TestExportBench(t *testing.T) {
	n, writers, per := 2000, 2, 250
	if os.Getenv("INDELIBLE_EXPORT_BENCH") == "1" {
		n, writers, per = envInt(t, "EXBENCH_N", 100000), envInt(t, "EXBENCH_WRITERS", 4), envInt(t, "EXBENCH_PER", 1000)
	}
	e := newEnv(t)
	_, secret, err := e.s.CreateToken(t.Context(), "bench", "bench", []auth.Scope{auth.ScopeAppend})
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.New(httpapi.Config{Log: e.Log, Events: e.Layer, Tokens: e.s.Tokens(), Audit: e.s, Logger: slog.New(slog.DiscardHandler)})
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config = srv.HTTPServer("")
	hs.Start()
	defer hs.Close()

	startExport := func(name string, fake *fakeProc) *Runner {
		f, err := Parse(fmt.Appendf(nil, "exports:\n  - {name: %s, type: elastic_bulk, url: %q, index: audit}\n", name, fake.url))
		if err != nil {
			t.Fatal(err)
		}
		// The defaults of serve: 500 events a request, 1 s delay.
		r, err := Start(f, Options{Events: e.Layer, Audit: e.s, ReceiptBase: "https://ledger.example/", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// Live: ingest with the export running.
	fake := startFakeElastic(t)
	r := startExport("live", fake)
	waitFor(t, 30*time.Second, "the export of the first records", func() bool {
		c, _ := e.Layer.ExportCursor("live")
		return c > 0 && c == e.Layer.Published() && fake.count(t) == c
	})
	base := e.Layer.Published()
	var lags []int64
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tk.C:
				c, _ := e.Layer.ExportCursor("live")
				lags = append(lags, e.Layer.Published()-c)
			}
		}
	}()
	cpu0, t0 := processCPU(), time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body []byte
			for {
				first := int(next.Add(int64(per))) - per
				if first >= n {
					return
				}
				body = body[:0]
				for k := first; k < min(first+per, n); k++ {
					body = benchEvent(body, k)
				}
				req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/events", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+secret)
				req.Header.Set("Content-Type", "application/x-ndjson")
				resp, err := hs.Client().Do(req)
				if err != nil {
					errs <- err
					return
				}
				rb, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("POST /v1/events: %s: %s", resp.Status, rb)
					return
				}
			}
		}()
	}
	wg.Wait()
	ingest := time.Since(t0)
	close(stopSampling)
	<-sampled
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	target := base + int64(n)
	waitFor(t, 10*time.Minute, "the live export of every event", func() bool { return fake.count(t) >= target })
	live, liveCPU := time.Since(t0), processCPU()-cpu0
	r.Close()
	liveFakeCPU := fake.stop()

	// Catch-up: a new export of the whole log, nothing else running.
	fake = startFakeElastic(t)
	var prof *os.File
	if p := os.Getenv("EXBENCH_CPUPROF"); p != "" {
		if prof, err = os.Create(p); err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(prof); err != nil {
			t.Fatal(err)
		}
	}
	cpu0, t0 = processCPU(), time.Now()
	r = startExport("catchup", fake)
	waitFor(t, 10*time.Minute, "the catch-up export of every event", func() bool { return fake.count(t) >= target })
	catchup, catchupCPU := time.Since(t0), processCPU()-cpu0
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
	r.Close()
	catchupFakeCPU := fake.stop()

	slices.Sort(lags)
	lagStat := "no sample"
	if len(lags) > 0 {
		lagStat = fmt.Sprintf("median %d, p90 %d, max %d events (%d samples)", lags[len(lags)/2], lags[len(lags)*9/10], lags[len(lags)-1], len(lags))
	}
	per1 := func(d time.Duration, k int64) string {
		return fmt.Sprintf("%.1f us", float64(d.Microseconds())/float64(k))
	}
	t.Logf("live: %d events by %d writers (%d a request): ingest %.0f events/s (%v); all %d in the fake after %v: export %.0f events/s; "+
		"drained %v after the last POST; lag while ingesting %s; process CPU %s per event (ingest and export), fake %s",
		n, writers, per, float64(n)/ingest.Seconds(), ingest.Round(time.Millisecond), n, live.Round(time.Millisecond),
		float64(n)/live.Seconds(), (live - ingest).Round(time.Millisecond), lagStat, per1(liveCPU, int64(n)), per1(liveFakeCPU, int64(n)))
	t.Logf("catch-up: %d records exported in %v: %.0f events/s; process CPU %s per exported event, fake %s",
		target, catchup.Round(time.Millisecond), float64(target)/catchup.Seconds(), per1(catchupCPU, target), per1(catchupFakeCPU, target))
}
