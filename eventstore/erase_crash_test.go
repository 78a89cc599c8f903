package eventstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"indelible.dev/event"
)

// TestEraseCrash takes crash clones of the store while events are being
// erased: in every recovered store each event is either whole (and no
// erase event names it) or erased with its indelible.erase event in the
// log, and the store passes Check. For version-3 events, and version-2
// ones in a mixed store.
func TestEraseCrash(t *testing.T) {
	payloadVersions(t, func() vfs.FS { return vfs.NewCrashableMem() }, testEraseCrash)
}

func testEraseCrash(t *testing.T, e *env, mixed func()) {
	mem := e.fs.(*vfs.MemFS)
	var evs []event.Event
	for k := range 40 {
		evs = append(evs, ev("erin", "act", "r", "success", "s", e.clock.Now().Add(time.Duration(k)*time.Second)))
	}
	a := e.append("writer", evs...)
	mixed()
	if _, _, err := e.log.WaitSize(context.Background(), a[len(a)-1].Index+1); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	go func() {
		defer done.Store(true)
		for _, x := range a {
			if _, err := e.l.Erase(context.Background(), x.Index, "admin", "crash test"); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	var clones []vfs.FS
	for !done.Load() {
		time.Sleep(time.Duration(rng.IntN(15000)) * time.Microsecond)
		clones = append(clones, mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng}))
	}
	e.close()
	if len(clones) < 3 {
		t.Fatalf("only %d clones", len(clones))
	}
	for k, fs := range clones {
		e.fs = fs
		e.open()
		if err := e.l.Check(); err != nil {
			t.Fatalf("clone %d: %v", k, err)
		}
		named := map[string]bool{}
		for _, r := range e.listAll(mustQuery(t, "action", ActionErase)) {
			named[r.Event.Resource.ID] = true
		}
		erased := 0
		for _, x := range a {
			_, err := e.l.Get(x.Index)
			var ee *ErasedError
			switch {
			case err == nil:
				if named[itoa(x.Index)] {
					t.Fatalf("clone %d: event %d whole, but an erase event names it", k, x.Index)
				}
			case errors.As(err, &ee):
				erased++
				if !named[itoa(x.Index)] {
					t.Fatalf("clone %d: event %d erased without its erase event", k, x.Index)
				}
			default:
				t.Fatalf("clone %d: event %d: %v", k, x.Index, err)
			}
		}
		t.Logf("clone %d: %d erased", k, erased)
		e.close()
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
