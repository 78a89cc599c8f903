package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSpoolLogWaitsForFsync: with a spool, Log returns only after an fsync
// of the spool file that began after its line was written; Logs at the same
// time share fsyncs; a new spool file's directory, and a new spool
// directory's parent, are fsynced before an event in them is reported
// durable.
func TestSpoolLogWaitsForFsync(t *testing.T) {
	var mu sync.Mutex
	var dirs []string
	var fsyncs atomic.Int64
	gate := make(chan struct{})
	entered := make(chan struct{}, 100)
	oldFile, oldDir := syncFile, syncDir
	t.Cleanup(func() { syncFile, syncDir = oldFile, oldDir })
	syncFile = func(f *os.File) error {
		entered <- struct{}{}
		<-gate
		fsyncs.Add(1)
		return f.Sync()
	}
	syncDir = func(d string) error {
		mu.Lock()
		dirs = append(dirs, d)
		mu.Unlock()
		return oldDir(d)
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"down"}`, http.StatusServiceUnavailable)
	}))
	defer down.Close()
	parent := t.TempDir()
	dir := filepath.Join(parent, "spool")
	c, err := New(down.URL, "t", WithSpool(dir), WithOptions(Options{Backoff: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 1 || dirs[0] != parent {
		t.Fatalf("directories fsynced on New: %q, want the new spool's parent %s", dirs, parent)
	}

	// One Log: it waits in its fsync.
	done := make(chan error, 1)
	go func() { done <- c.Log(context.Background(), Event{Action: "a.one"}) }()
	wait(t, entered, "Log's fsync")
	select {
	case err := <-done:
		t.Fatalf("Log returned (%v) before its fsync ended", err)
	case <-time.After(100 * time.Millisecond):
	}
	mu.Lock()
	if len(dirs) != 2 || dirs[1] != dir {
		t.Fatalf("directories fsynced: %q, want the spool's after its first file was made", dirs)
	}
	mu.Unlock()
	// Eight more while that fsync is held: none returns; once it ends,
	// one more fsync covers all eight.
	var wg sync.WaitGroup
	var returned atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Log(context.Background(), Event{Action: "a.two"}); err != nil {
				t.Error(err)
			}
			returned.Add(1)
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.w.sp.mu.Lock()
		n := c.w.sp.written
		c.w.sp.mu.Unlock()
		if n == 9 {
			break // the eight lines are written: their Logs wait
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines written", n)
		}
	}
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d Logs returned while the fsync was held", n)
	}
	gate <- struct{}{} // the first fsync ends
	if err := wait(t, done, "the first Log"); err != nil {
		t.Fatal(err)
	}
	wait(t, entered, "the fsync for the eight") // it covers all eight
	time.Sleep(50 * time.Millisecond)
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d Logs returned before the fsync covering their lines ended", n)
	}
	close(gate)
	wg.Wait()
	if n := fsyncs.Load(); n != 2 {
		t.Errorf("%d fsyncs for 9 Logs (one, then eight at once), want 2", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c.Close(ctx) // undelivered: the server is down
	evs, err := readSegment(filepath.Join(dir, segName(0)))
	if err != nil || len(evs) != 9 {
		t.Fatalf("the spool holds %d events (%v), want 9", len(evs), err)
	}
}

// wait receives from ch, failing the test after 10 seconds.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing after 10s", what)
		panic("unreachable")
	}
}

// TestSpoolTornLine: a spool file whose last line a crash tore (a part of
// it written) gives back its whole lines only; the next process writes to
// a new file, never after the torn line.
func TestSpoolTornLine(t *testing.T) {
	dir := t.TempDir()
	torn := "{\"id\":\"a\",\"action\":\"x.y\"}\n{\"id\":\"b\",\"action\":\"x.y\"}\n{\"id\":\"c\",\"act"
	if err := os.WriteFile(filepath.Join(dir, segName(3)), []byte(torn), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, left, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0].ev.ID != "a" || left[1].ev.ID != "b" || left[0].seg != 3 {
		t.Fatalf("left: %+v", left)
	}
	seg, err := sp.add(Event{ID: "d", Action: "x.y"})
	if err != nil || seg != 4 {
		t.Fatalf("add: segment %d, %v; want a new file, 4", seg, err)
	}
	sp.close()
	if b, _ := os.ReadFile(filepath.Join(dir, segName(3))); string(b) != torn {
		t.Fatalf("the torn file changed: %q", b)
	}
	if evs, err := readSegment(filepath.Join(dir, segName(4))); err != nil || len(evs) != 1 || evs[0].ID != "d" {
		t.Fatalf("the new file: %+v %v", evs, err)
	}
}
