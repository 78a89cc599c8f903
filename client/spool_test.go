package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"indelible.dev/client"
)

// spoolChild is the application TestSpoolSurvivesKill kills: it logs
// spoolEvents events with a spool and waits to be killed.
const spoolEvents = 2000

func TestMain(m *testing.M) {
	if dir := os.Getenv("INDELIBLE_SPOOL_CHILD_MID"); dir != "" {
		spoolChildMid(dir)
	}
	if dir := os.Getenv("INDELIBLE_SPOOL_CHILD"); dir != "" {
		c, err := client.New(os.Getenv("INDELIBLE_SPOOL_URL"), os.Getenv("INDELIBLE_SPOOL_TOKEN"),
			client.WithSpool(dir), client.WithBatch(100, time.Millisecond))
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		for i := range spoolEvents {
			ev := client.Event{Action: "doc.read", Source: os.Getenv("INDELIBLE_SPOOL_RUN"), Resource: &client.Resource{ID: fmt.Sprint(i)}}
			if err := c.Log(context.Background(), ev); err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
		}
		fmt.Println("logged")
		select {}
	}
	os.Exit(m.Run())
}

// TestSpoolSurvivesKill: an application that logged 2,000 events with a
// spool is killed (SIGKILL) after some batches were stored and while the
// server pushes back on the rest; a new client on the same spool sends
// them, and every event is stored exactly once; the spool is then empty.
func TestSpoolSurvivesKill(t *testing.T) {
	ts := newTestServer(t)
	var posts atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if posts.Add(1) > 3 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
			return
		}
		(&chaosProxy{target: ts.url}).ServeHTTP(w, r)
	}))
	defer proxy.Close()
	dir := filepath.Join(t.TempDir(), "spool")
	run := fmt.Sprintf("spool-%d", time.Now().UnixNano())
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INDELIBLE_SPOOL_CHILD="+dir, "INDELIBLE_SPOOL_URL="+proxy.URL,
		"INDELIBLE_SPOOL_TOKEN="+ts.token, "INDELIBLE_SPOOL_RUN="+run)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "logged\n" {
		cmd.Process.Kill()
		t.Fatalf("child: %q", line)
	}
	for deadline := time.Now().Add(20 * time.Second); posts.Load() < 5; {
		if time.Now().After(deadline) {
			t.Fatal("the child sent nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	before := countRun(t, ts, run)
	if before.total == 0 || before.total == spoolEvents {
		t.Fatalf("%d events stored before the kill: the test needs some, not all", before.total)
	}

	c, err := client.New(ts.url, ts.token, client.WithSpool(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := countRun(t, ts, run)
	if after.total != spoolEvents || after.distinct != spoolEvents {
		t.Fatalf("after the restart: %d stored, %d distinct; want %d (%d before the kill)", after.total, after.distinct, spoolEvents, before.total)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "spool-*")); len(left) != 0 {
		t.Fatalf("spool not emptied: %v", left)
	}
	t.Logf("%d stored before the kill, %d resent by the new client (%d of them duplicates the server recognised)", before.total, c.Stored(), c.Stored()-int64(spoolEvents-before.total))
}

// spoolChildMid is the application TestSpoolKilledMidLog kills: 4
// goroutines log events with a spool, each printing "ok <n>" once Log
// returned nil for event n, until the process is killed.
func spoolChildMid(dir string) {
	c, err := client.New(os.Getenv("INDELIBLE_SPOOL_URL"), os.Getenv("INDELIBLE_SPOOL_TOKEN"),
		client.WithSpool(dir), client.WithBatch(50, time.Millisecond), client.WithQueueSize(100000))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var next atomic.Int64
	for range 4 {
		go func() {
			for {
				n := next.Add(1) - 1
				ev := client.Event{Action: "doc.read", Source: os.Getenv("INDELIBLE_SPOOL_RUN"), Resource: &client.Resource{ID: fmt.Sprint(n)}}
				if err := c.Log(context.Background(), ev); err != nil {
					fmt.Println("error", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Println("ok", n)
				mu.Unlock()
			}
		}()
	}
	select {}
}

// TestSpoolKilledMidLog: an application logging from 4 goroutines with a
// spool, some batches stored and the rest pushed back, is killed (SIGKILL)
// while Log calls are under way; a new client on the same spool sends what
// was left, and every event whose Log returned nil is stored exactly once;
// an event whose Log had not returned is stored at most once; the spool is
// then empty.
func TestSpoolKilledMidLog(t *testing.T) {
	ts := newTestServer(t)
	var posts atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if posts.Add(1) > 3 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
			return
		}
		(&chaosProxy{target: ts.url}).ServeHTTP(w, r)
	}))
	defer proxy.Close()
	dir := filepath.Join(t.TempDir(), "spool")
	run := fmt.Sprintf("spool-mid-%d", time.Now().UnixNano())
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INDELIBLE_SPOOL_CHILD_MID="+dir, "INDELIBLE_SPOOL_URL="+proxy.URL,
		"INDELIBLE_SPOOL_TOKEN="+ts.token, "INDELIBLE_SPOOL_RUN="+run)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	const killAfter = 400 // events whose Log returned
	accepted := map[string]bool{}
	br := bufio.NewReader(out)
	lines := make(chan string)
	go func() {
		defer close(lines)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimSuffix(l, "\n")
		}
	}()
	timeout := time.After(60 * time.Second)
	for len(accepted) < killAfter || posts.Load() < 4 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the child ended")
			}
			id, found := strings.CutPrefix(l, "ok ")
			if !found {
				t.Fatalf("child: %q", l)
			}
			accepted[id] = true
		case <-timeout:
			t.Fatalf("%d events accepted and %d posts after 60s", len(accepted), posts.Load())
		}
	}
	cmd.Process.Kill() // SIGKILL, while the 4 goroutines log
	cmd.Wait()
	for l := range lines { // what the child printed before it died
		if id, found := strings.CutPrefix(l, "ok "); found {
			accepted[id] = true
		}
	}
	before := countRun(t, ts, run)
	if before.total == 0 {
		t.Fatal("nothing stored before the kill: the test needs some batches stored")
	}

	c, err := client.New(ts.url, ts.token, client.WithSpool(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	counts := runCounts(t, ts, run)
	for id := range accepted {
		if counts[id] != 1 {
			t.Errorf("event %s, accepted by Log, stored %d times", id, counts[id])
		}
	}
	extra := 0
	for id, n := range counts {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
		if !accepted[id] {
			extra++ // spooled, its Log not yet returned (or its "ok" not yet printed)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "spool-*")); len(left) != 0 {
		t.Fatalf("spool not emptied: %v", left)
	}
	t.Logf("%d accepted by Log before the kill, %d stored before it, %d stored in all (%d whose Log had not returned)", len(accepted), before.total, len(counts), extra)
}

// runCounts returns, for the events of run, how many times each (by its
// resource id) is stored.
func runCounts(t *testing.T, ts *testServer, run string) map[string]int {
	out := map[string]int{}
	for i := int64(0); ; i++ {
		r, err := ts.layer.Get(i)
		if err != nil {
			break
		}
		if r.Event.Source == run {
			out[r.Event.Resource.ID]++
		}
	}
	return out
}

type runCount struct{ total, distinct int }

func countRun(t *testing.T, ts *testServer, run string) runCount {
	seen := map[string]bool{}
	var n int
	for i := int64(0); ; i++ {
		r, err := ts.layer.Get(i)
		if err != nil {
			break
		}
		if r.Event.Source == run {
			n++
			seen[r.Event.Resource.ID] = true
		}
	}
	return runCount{n, len(seen)}
}

// TestSpoolQueueFull: after a restart the spool sends again exactly the
// events Log accepted, not those it answered ErrQueueFull.
func TestSpoolQueueFull(t *testing.T) {
	dir := t.TempDir()
	down, _ := fakeAppend(t, func(int64) (int, bool) { return http.StatusServiceUnavailable, false })
	c, _ := client.New(down.URL, "t", client.WithSpool(dir), client.WithQueueSize(2), client.WithDropOnFull(),
		client.WithBatch(1, time.Millisecond), client.WithOptions(client.Options{Backoff: 50 * time.Millisecond}))
	accepted := map[string]bool{}
	for i := range 8 {
		id := fmt.Sprint("ev-", i)
		if err := c.Log(context.Background(), client.Event{ID: id, Action: "a.b"}); err == nil {
			accepted[id] = true
		}
	}
	if len(accepted) == 8 || len(accepted) == 0 || c.Dropped() != int64(8-len(accepted)) {
		t.Fatalf("%d accepted, %d dropped", len(accepted), c.Dropped())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Close(ctx); err == nil {
		t.Fatal("Close reported nothing undelivered")
	}
	var got []string
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var evs []client.Event
		json.NewDecoder(r.Body).Decode(&evs)
		out := make([]client.Appended, len(evs))
		mu.Lock()
		for i, ev := range evs {
			got = append(got, ev.ID)
			out[i].Index = int64(i)
		}
		mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"events": out})
	}))
	defer up.Close()
	c2, err := client.New(up.URL, "t", client.WithSpool(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(accepted) {
		t.Fatalf("resent %v, accepted %v", got, accepted)
	}
	for _, id := range got {
		if !accepted[id] {
			t.Fatalf("resent %s, which Log refused", id)
		}
	}
}

// TestSpoolLocked: a second client on a spool directory in use is refused
// (it would resend, then delete, the first one's events); once the first
// is closed the directory opens again.
func TestSpoolLocked(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no spool lock without flock(2)")
	}
	dir := t.TempDir()
	srv, _ := fakeAppend(t, func(int64) (int, bool) { return http.StatusOK, false })
	a, err := client.New(srv.URL, "t", client.WithSpool(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(srv.URL, "t", client.WithSpool(dir)); err == nil || !strings.Contains(err.Error(), "in use by another client") {
		t.Fatalf("a second client on the same spool: %v", err)
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := client.New(srv.URL, "t", client.WithSpool(dir))
	if err != nil {
		t.Fatalf("the spool after the first client closed: %v", err)
	}
	b.Close(context.Background())
}
