package eventstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

// TestPurgeResumedInBackground: an erasure whose purge is cut short (here a
// long reader holds the old files, and the client gives up) is reported as
// pending (Lifecycle), and the background purger finishes it once the
// reader is gone, without a restart: the event's bytes then leave every
// file.
func TestPurgeResumedInBackground(t *testing.T) {
	pebbleOnly(t, "a pebble iterator holding a table file keeps the purge waiting")
	e := newEnv(t, nil)
	const marker = "PURGE-LATER-93be"
	x := ev("dora", "login", "", "success", "sso", e.clock.Now())
	x.Reason = marker
	a := e.append("writer", x, ev("ed", "login", "", "success", "sso", e.clock.Now()))
	if _, _, err := e.log.WaitSize(context.Background(), a[1].Index+1); err != nil {
		t.Fatal(err)
	}
	// A first erasure compacts the store: the marker's event is now in a
	// table the next erasure must rewrite.
	if _, err := e.l.Erase(context.Background(), a[1].Index, "admin", "setup"); err != nil {
		t.Fatal(err)
	}
	// A long reader: an iterator open on that table.
	holding, release := make(chan struct{}), make(chan struct{})
	go func() {
		e.log.ScanExt(nil, nil, false, func(k, v []byte) bool {
			close(holding)
			<-release
			return false
		})
	}()
	<-holding
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := e.l.Erase(ctx, a[0].Index, "admin", "the client gives up")
	if err == nil {
		t.Fatal("the purge finished under a long reader: the test holds nothing")
	}
	if !errors.Is(err, ledger.ErrPurgeTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Erase: %v", err)
	}
	if st := e.l.Lifecycle(); st.PendingPurges != 1 {
		t.Fatalf("Lifecycle after a cut purge: %+v", st)
	}
	if _, err := e.l.Get(a[0].Index); !errors.Is(err, ErrGone) {
		t.Fatalf("the erased event reads: %v", err)
	}
	close(release)
	tlogtest.Eventually(t, 20*time.Second, "the background purge", func() (bool, string) {
		st := e.l.Lifecycle()
		return st.PendingPurges == 0, fmt.Sprintf("%+v", st)
	})
	notInStoreFiles(t, e.dir, map[string][]byte{"marker": []byte(marker)})
}

// TestRetentionFinishedOnOpen: a retention pass a crash interrupted after
// its first step (the day marked, its index keys deleted, its payloads and
// key still stored) is finished when the layer opens again, although it
// opens without retention: the day is shredded, with its
// indelible.retention event, and the store checks out.
func TestRetentionFinishedOnOpen(t *testing.T) {
	e := newEnv(t, nil)
	const marker = "HALF-SHREDDED-5d1e"
	day1 := e.clock.Now()
	x := ev("fay", "login", "", "success", "sso", day1)
	x.Reason = marker
	old := e.append("writer", x, ev("fay", "logout", "", "success", "sso", day1))
	e.clock.Add(48 * time.Hour)
	recent := e.append("writer", ev("gus", "login", "", "success", "sso", e.clock.Now()))
	if _, _, err := e.log.WaitSize(context.Background(), recent[0].Index+1); err != nil {
		t.Fatal(err)
	}
	// Step 1 of Retain for day1, then a crash.
	d := dayOf(day1)
	cp, _ := e.log.Published()
	segs, err := e.l.segments(cp.N)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.log.WriteExt(func(w ledger.Writer) error { return w.Set(lifeKey(lifeShedding, d), nil) }); err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if s.day == d {
			if err := e.l.dropIndexKeys(context.Background(), s); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.reopen() // Config.Retention is 0
	tlogtest.Eventually(t, 20*time.Second, "the interrupted retention pass to finish", func() (bool, string) {
		st := e.l.Lifecycle()
		e.l.lmu.RLock()
		defer e.l.lmu.RUnlock()
		return e.l.isShredded(d) && len(e.l.shedding) == 0 && st.PendingPurges == 0, fmt.Sprintf("shedding %v, %+v", e.l.shedding, st)
	})
	var se *ShreddedError
	for _, a := range old {
		if _, err := e.l.Get(a.Index); !errors.As(err, &se) {
			t.Fatalf("event %d of the half-shredded day: %v", a.Index, err)
		}
	}
	if rec := actions(t, e, ActionRetention); len(rec) != 1 {
		t.Fatalf("%d retention events, want 1", len(rec))
	}
	if _, err := e.l.Get(recent[0].Index); err != nil {
		t.Fatalf("a later day: %v", err)
	}
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}
	notInStoreFiles(t, e.dir, map[string][]byte{"marker": []byte(marker)})
}

// TestRetentionClockJump: with the clock jumped far past the newest event,
// retention shreds only what was due a day after that event's received_at
// (a truly old day), not the days the jumped clock calls past retention;
// the hold is reported (Lifecycle); once the clock is sane again, and time
// has really passed, those days are shredded too.
func TestRetentionClockJump(t *testing.T) {
	e := newEnv(t, nil)
	e.l.retention = 400 * 24 * time.Hour
	day1 := e.clock.Now()
	old := e.append("writer", ev("hal", "login", "", "success", "sso", day1))
	e.clock.Add(401 * 24 * time.Hour) // day1 is past retention
	recentDay := e.clock.Now()
	recent := e.append("writer", ev("ida", "login", "", "success", "sso", recentDay))
	if _, _, err := e.log.WaitSize(context.Background(), recent[0].Index+1); err != nil {
		t.Fatal(err)
	}
	const jump = 500 * 24 * time.Hour
	e.clock.Add(jump) // recentDay would be past retention by this clock
	days, err := e.l.Retain(context.Background())
	if err != nil || len(days) != 1 || !days[0].Equal(dayTime(dayOf(day1))) {
		t.Fatalf("Retain with the clock jumped: %v, %v; want only %v", days, err, dayTime(dayOf(day1)))
	}
	if st := e.l.Lifecycle(); st.ClockHeld != 1 || st.ClockAhead < jump {
		t.Fatalf("Lifecycle with the clock jumped: %+v", st)
	}
	if _, err := e.l.Get(recent[0].Index); err != nil {
		t.Fatalf("an event within retention after the clock jumped: %v", err)
	}
	var se *ShreddedError
	if _, err := e.l.Get(old[0].Index); !errors.As(err, &se) {
		t.Fatalf("an event past retention: %v", err)
	}

	e.clock.Add(-jump) // the clock is fixed
	if days, err := e.l.Retain(context.Background()); err != nil || len(days) != 0 {
		t.Fatalf("Retain with the clock fixed: %v, %v", days, err)
	}
	if st := e.l.Lifecycle(); st.ClockAhead != 0 || st.ClockHeld != 1 {
		t.Fatalf("Lifecycle with the clock fixed: %+v", st)
	}
	e.clock.Add(401 * 24 * time.Hour) // time really passes, the log in use
	e.append("writer", ev("joe", "login", "", "success", "sso", e.clock.Now()))
	if days, err := e.l.Retain(context.Background()); err != nil || len(days) != 1 || !days[0].Equal(dayTime(dayOf(recentDay))) {
		t.Fatalf("Retain once time has passed: %v, %v", days, err)
	}
	if _, err := e.l.Get(recent[0].Index); !errors.As(err, &se) {
		t.Fatalf("an event now past retention: %v", err)
	}
}
