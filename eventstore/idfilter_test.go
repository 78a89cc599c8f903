package eventstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"indelible.dev/event"
)

// TestIDFilterBloom: every key added is held, through growths, and random
// absent keys are rarely (about 0.5%) said to be held.
func TestIDFilterBloom(t *testing.T) {
	f := newIDFilterCap(1000)
	f.ready.Store(true)
	keys := make([][blindSize]byte, 20000)
	for i := range keys {
		rand.Read(keys[i][:])
		f.add(&keys[i])
	}
	if n := len(*f.blooms.Load()); n != 5 {
		t.Fatalf("%d filters for 20,000 keys from a first one of 1,000, want 5", n)
	}
	for i := range keys {
		if !f.mayHold(&keys[i]) {
			t.Fatalf("key %d was added but is not held", i)
		}
	}
	fp := 0
	const absent = 100000
	for range absent {
		var k [blindSize]byte
		rand.Read(k[:])
		if f.mayHold(&k) {
			fp++
		}
	}
	// Five filters, each at most full: at most 5 x ~0.5%.
	if rate := float64(fp) / absent; rate > 0.04 {
		t.Fatalf("false positive rate %.4f", rate)
	}
	// Incomplete: everything may be held.
	g := newIDFilterCap(1000)
	var k [blindSize]byte
	if !g.mayHold(&k) {
		t.Fatal("an incomplete filter said a key is absent")
	}
}

// waitIDs waits for the layer's id filter to be complete.
func waitIDs(t *testing.T, l *Layer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !l.ids.ready.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the id filter was not built")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIDFilterIdempotency: with the filter complete, ids appended by this
// process (added at commit) and ids read from the store at open (the scan)
// are still found, an erased event's id can be used again, and new ids are
// answered by the filter, without a lookup. A filter missing a stored key
// stores the event a second time, which the test sees.
func TestIDFilterIdempotency(t *testing.T) {
	e := newEnv(t, nil)
	waitIDs(t, e.l)
	mk := func(from, to int) []event.Event {
		var evs []event.Event
		for k := from; k < to; k++ {
			evs = append(evs, event.Event{ID: fmt.Sprintf("id-%d", k), Action: "a"})
		}
		return evs
	}
	check := func(what string, got []Appended, from, stored int) {
		t.Helper()
		for k, a := range got {
			if dup := from+k < stored; a.Duplicate != dup || (dup && a.Index != int64(from+k)) {
				t.Fatalf("%s: event %d (%s): %+v, want duplicate %v", what, k, a.ID, a, dup)
			}
		}
	}
	check("first", e.append("w", mk(0, 500)...), 0, 0)
	// The ids this process committed: in the filter since their commit.
	check("same process", e.append("w", mk(250, 750)...), 250, 500)
	for k := range 750 {
		idem := e.l.blind.idem("w", fmt.Sprintf("id-%d", k))
		if !e.l.ids.mayHold(&idem) {
			t.Fatalf("id %d is stored but not in the filter", k)
		}
	}
	e.reopen()
	waitIDs(t, e.l)
	// The ids of the store: in the filter from the scan at open.
	for k := range 750 {
		idem := e.l.blind.idem("w", fmt.Sprintf("id-%d", k))
		if !e.l.ids.mayHold(&idem) {
			t.Fatalf("after reopen, id %d is stored but not in the filter", k)
		}
	}
	absent := 0
	for k := 750; k < 1750; k++ {
		idem := e.l.blind.idem("w", fmt.Sprintf("id-%d", k))
		if !e.l.ids.mayHold(&idem) {
			absent++
		}
	}
	if absent < 950 {
		t.Fatalf("the filter answered for %d of 1,000 new ids, want nearly all", absent)
	}
	check("after reopen", e.append("w", mk(700, 1000)...), 700, 750)
	// An erased event's id is free again, though the filter still has it.
	if _, err := e.l.Erase(context.Background(), 3, "admin", "test"); err != nil {
		t.Fatal(err)
	}
	a := e.append("w", event.Event{ID: "id-3", Action: "again"}, event.Event{ID: "id-4", Action: "again"})
	if a[0].Duplicate || a[0].Index < 1000 || !a[1].Duplicate || a[1].Index != 4 {
		t.Fatalf("after erasing event 3: %+v", a)
	}
}
