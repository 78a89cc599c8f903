package alert

import (
	"testing"
	"time"

	"indelible.dev/event"
)

// TestFeedWait: the follower may see an index published before the
// appender hands it to the feed: take misses, wait returns once it is
// added (the miss did not make the feed refuse it); an index that never
// comes costs one bounded wait, and none for indexes below the published
// size at that time.
func TestFeedWait(t *testing.T) {
	f := newFeed()
	f.waitFor = 500 * time.Millisecond // long enough to tell from no wait on a loaded machine
	if _, ok := f.take(5); ok {
		t.Fatal("took an index never added")
	}
	go func() {
		time.Sleep(5 * time.Millisecond)
		f.add(5, &event.Event{Action: "late"}, []byte("b"))
	}()
	if !f.wait(5, 6) {
		t.Fatal("wait did not see the event added after the miss")
	}
	if it, ok := f.take(5); !ok || it.ev.Action != "late" {
		t.Fatalf("take after wait: %v %+v", ok, it)
	}
	start := time.Now()
	if f.wait(6, 100) {
		t.Fatal("waited for an index never added and got it")
	}
	if d := time.Since(start); d < f.waitFor {
		t.Fatalf("waited %v, want %v", d, f.waitFor)
	}
	start = time.Now()
	if f.wait(50, 100) || time.Since(start) > f.waitFor/2 {
		t.Fatal("waited again for an index below the size published when a wait failed")
	}
	// Beyond it, a wait is worth it again.
	go func() {
		time.Sleep(time.Millisecond)
		f.add(100, &event.Event{}, nil)
	}()
	if !f.wait(100, 101) {
		t.Fatal("no wait past the failed one's size")
	}
}
