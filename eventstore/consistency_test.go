package eventstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"indelible.dev/event"
)

// checkStore checks that the store holds whole events only: every log entry
// has its payload and every payload its log entry and its day key (Get
// opens it and checks the commitment); every index and idempotency key
// points to a payload whose event has that value; every event has all its
// index keys. It returns the records by index.
func checkStore(t testing.TB, l *Layer) map[int64]Record {
	t.Helper()
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	cp, _ := l.log.Checkpoint()
	recs := map[int64]Record{}
	var keys [][]byte
	var vals [][]byte
	if err := l.log.ScanExt(nil, nil, false, func(k, v []byte) bool {
		keys = append(keys, bytes.Clone(k))
		vals = append(vals, bytes.Clone(v))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for i := range cp.N {
		r, err := l.Get(i)
		if err != nil {
			t.Fatalf("log entry %d: %v", i, err)
		}
		recs[i] = r
	}
	want := map[string]bool{}      // index keys the events imply
	wantVal := map[string]string{} // and their values ('t' keys: the blind outcome)
	for i, r := range recs {
		ks, tval := l.indexKeys(&r.Event)
		for j, k := range ks {
			binary.BigEndian.PutUint64(k[len(k)-8:], uint64(i))
			want[string(k)] = true
			if j == 0 {
				wantVal[string(k)] = string(tval)
			}
		}
		if r.Event.ID != "" {
			b := l.blind.idem(r.Event.SubmittedBy, r.Event.ID)
			want[string(idemKey(b))] = true
		}
	}
	for n, k := range keys {
		switch k[0] {
		case prefixPayload:
			i := int64(binary.BigEndian.Uint64(k[1:]))
			if _, ok := recs[i]; !ok {
				t.Fatalf("payload at %d, beyond the log's size %d", i, cp.N)
			}
		case prefixDayKey, prefixLife:
		case prefixTime, prefixField:
			if !want[string(k)] {
				t.Fatalf("index key %x of no event", k)
			}
			if string(outcomeOf(vals[n])) != wantVal[string(k)] {
				t.Fatalf("index key %x has value %x, want %x", k, vals[n], wantVal[string(k)])
			}
			delete(want, string(k))
		case prefixIdem:
			if !want[string(k)] {
				t.Fatalf("idempotency key %x of no event", k)
			}
			i := int64(binary.BigEndian.Uint64(vals[n]))
			r := recs[i]
			if !bytes.Equal(idemKey(l.blind.idem(r.Event.SubmittedBy, r.Event.ID)), k) {
				t.Fatalf("idempotency key %x points to index %d, of another id", k, i)
			}
			delete(want, string(k))
		default:
			t.Fatalf("unknown key %x", k)
		}
	}
	for k := range want {
		t.Fatalf("missing index key %x", k)
	}
	return recs
}

// TestCrash appends from concurrent writers across several UTC days on a
// crashable filesystem, takes crash clones at random moments, and checks
// each recovered store: every event acknowledged before the clone is there
// at its index with its id, and nothing is half-stored. The store starts
// with version-2 payloads.
func TestCrash(t *testing.T) {
	mem := vfs.NewCrashableMem()
	e := newEnv(t, mem)
	// A mixed store: version-2 payloads (as the previous release wrote
	// them) before the version-3 ones the writers append.
	e.l.sealV2 = true
	var v2 []event.Event
	for j := range 30 {
		v2 = append(v2, event.Event{ID: fmt.Sprint("v2-", j), Action: "a", Actor: &event.Actor{ID: fmt.Sprint("u", j%3)}, Outcome: "success", Source: "s"})
	}
	e.append("writer", v2...)
	e.l.sealV2 = false
	e.reopen()
	type ack struct {
		i  int64
		id string
	}
	var mu sync.Mutex
	var acked []ack
	type point struct {
		fs    vfs.FS
		acked int
	}
	var points []point
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				var evs []event.Event
				for j := range 1 + k%20 {
					evs = append(evs, event.Event{ID: fmt.Sprintf("w%d-%d-%d", w, k, j), Action: "a", Actor: &event.Actor{ID: fmt.Sprint("u", j%3)}, Source: "s"})
				}
				a, err := e.l.Append(context.Background(), fmt.Sprint("writer", w), evs)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, x := range a {
					acked = append(acked, ack{x.Index, x.ID})
				}
				mu.Unlock()
			}
		}()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range 12 {
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		if k%3 == 0 {
			e.clock.Add(24 * time.Hour) // a new day: a new data key
		}
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng}
		points = append(points, point{mem.CrashClone(cfg), n})
	}
	cancel()
	wg.Wait()
	e.close()
	for k, p := range points {
		e.fs = p.fs
		e.open()
		recs := checkStore(t, e.l)
		for _, a := range acked[:p.acked] {
			r, ok := recs[a.i]
			if !ok || r.Event.ID != a.id {
				t.Fatalf("clone %d: acknowledged event %s at %d: got %q", k, a.id, a.i, r.Event.ID)
			}
		}
		// It takes more events after recovery.
		e.append("after", event.Event{Action: "after-crash"})
		checkStore(t, e.l)
		e.close()
	}
	t.Logf("%d events acknowledged, %d crash clones", len(acked), len(points))
}
