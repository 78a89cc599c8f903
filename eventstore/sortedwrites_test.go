package eventstore

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"
)

// recorder is a ledger.Writer that keeps the Sets and Inserts in order.
type recorder struct {
	keys, vals [][]byte
	sets       int // writes made with Set, not Insert
}

func (r *recorder) Set(k, v []byte) error {
	r.sets++
	return r.Insert(k, v)
}

func (r *recorder) Insert(k, v []byte) error {
	r.keys = append(r.keys, bytes.Clone(k))
	r.vals = append(r.vals, bytes.Clone(v))
	return nil
}
func (r *recorder) Delete([]byte) error           { panic("unexpected Delete") }
func (r *recorder) DeleteRange(_, _ []byte) error { panic("unexpected DeleteRange") }

// TestBatchWritesSorted checks the claim requestWrites and writeRuns rely on: the
// order found with placeholder indexes is the key order once the sequencer
// fills in the real (growing, possibly far apart) indexes, for events in
// any time order, with and without idempotency keys, and each key ends with
// its own event's index; and that they are written with Insert (new keys).
func TestBatchWritesSorted(t *testing.T) {
	e := newEnv(t, nil)
	l := e.l
	day, err := l.dayKeyFor(dayOf(time.Now()), true)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		n := 1 + r.IntN(300)
		evs := benchEvents(n, round, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC))
		r.Shuffle(n, func(i, j int) { evs[i], evs[j] = evs[j], evs[i] }) // times out of order
		w := newRequestWrites(n)
		for k := range evs {
			if k%3 == 0 {
				evs[k].Time = evs[0].Time // equal times: ties broken by event
			}
			w.add(l, nil, int32(k), &evs[k], []byte{byte(k)}, nil)
			if k%2 == 0 { // in event order: sorted() sorts them
				ik := l.blind.idem("tester", evs[k].Action+string(rune(k)))
				w.addIdem(int32(k), &ik)
			}
		}
		b := &batch{l: l, dk: day}
		b.ops, b.size = w.sorted()
		indexes := make([]int64, n)
		next := r.Int64N(1 << 40)
		for k := range indexes {
			indexes[k] = next
			next += 1 + r.Int64N(1000) // growing, not necessarily consecutive
		}
		var rec recorder
		l.seqDay.Store(day.day) // no day-switch record in this test
		if err := b.sidecar(indexes, &rec); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(rec.keys); i++ {
			if bytes.Compare(rec.keys[i-1], rec.keys[i]) >= 0 {
				t.Fatalf("round %d: write %d (%x) not after write %d (%x)", round, i, rec.keys[i], i-1, rec.keys[i-1])
			}
		}
		if len(rec.keys) != len(b.ops) {
			t.Fatalf("round %d: %d writes, want %d", round, len(rec.keys), len(b.ops))
		}
		if rec.sets > 0 {
			// The events' keys are new: Insert (a plain INSERT on
			// PostgreSQL, not the upsert).
			t.Fatalf("round %d: %d of the events' keys written with Set, not Insert", round, rec.sets)
		}
		for i, k := range rec.keys {
			ev := b.ops[i].ev
			var got uint64
			if k[0] == prefixIdem {
				got = binary.BigEndian.Uint64(rec.vals[i])
			} else {
				got = binary.BigEndian.Uint64(k[len(k)-indexSize:])
			}
			if int64(got) != indexes[ev] {
				t.Fatalf("round %d: key %x carries index %d, its event's is %d", round, k, got, indexes[ev])
			}
			if k[0] == prefixPayload && rec.vals[i][0] != byte(ev) {
				t.Fatalf("round %d: payload of event %d under the key of event %d", round, rec.vals[i][0], ev)
			}
		}
	}
}
