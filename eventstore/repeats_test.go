package eventstore

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"

	"indelible.dev/event"
)

// TestRepeatedIDsInRequest: ids repeated within requests, some stored by an
// earlier request, some not, some events without an id: every event gets
// the index of the id's first occurrence (new or stored), a repeat is a
// duplicate, and only first occurrences of new ids are stored. (prepare
// finds the repeats by sorting the ids, issue 21.)
func TestRepeatedIDsInRequest(t *testing.T) {
	e := newEnv(t, nil)
	r := rand.New(rand.NewPCG(21, 6))
	stored := map[string]int64{} // id -> index
	var size int64
	for range 20 {
		n := 1 + r.IntN(60)
		evs := make([]event.Event, n)
		for i := range evs {
			evs[i].Action = "a" + strconv.Itoa(i)
			if r.IntN(6) > 0 {
				evs[i].ID = "id-" + strconv.Itoa(r.IntN(40))
			}
		}
		res := e.append("w", evs...)
		firstAt := map[string]int{}
		for i, ev := range evs {
			got := res[i]
			if ev.ID == "" {
				if got.Duplicate || got.Index != size {
					t.Fatalf("event %d without id: %+v, want new index %d", i, got, size)
				}
				size++
				continue
			}
			if idx, ok := stored[ev.ID]; ok {
				if !got.Duplicate || got.Index != idx {
					t.Fatalf("event %d, id %s stored at %d: %+v", i, ev.ID, idx, got)
				}
				continue
			}
			if j, ok := firstAt[ev.ID]; ok {
				if !got.Duplicate || got.Index != res[j].Index {
					t.Fatalf("event %d repeats event %d's id %s: %+v, want index %d", i, j, ev.ID, got, res[j].Index)
				}
				continue
			}
			if got.Duplicate || got.Index != size {
				t.Fatalf("event %d, new id %s: %+v, want new index %d", i, ev.ID, got, size)
			}
			firstAt[ev.ID] = i
			size++
		}
		for id, j := range firstAt {
			stored[id] = res[j].Index
		}
	}
	if _, _, err := e.log.WaitSize(context.Background(), size); err != nil {
		t.Fatal(err)
	}
}

// TestBlindRequestMatchesBlinder: a request's blind values (its memo of
// actions, outcomes and sources, its previous actor and resource) are the
// blinder's, for values repeated in runs, scattered, or not at all.
func TestBlindRequestMatchesBlinder(t *testing.T) {
	b := newBlinder([]byte("0123456789abcdef0123456789abcdef"))
	r := rand.New(rand.NewPCG(21, 7))
	br := b.request()
	defer br.done()
	fresh := newBlinder([]byte("0123456789abcdef0123456789abcdef")) // no cache shared with b
	prev := "v0"
	for i := range 5000 {
		f := byte(1 + r.IntN(int(numFields)))
		v := prev
		if r.IntN(3) > 0 {
			v = "v" + strconv.Itoa(r.IntN(50))
		}
		prev = v
		if got, want := br.field(f, v), fresh.field(f, v); got != want {
			t.Fatalf("value %d: field %d %q: request %x, blinder %x", i, f, v, got, want)
		}
		if i%100 == 0 {
			fresh.forgetIDs()
		}
	}
	if br.idem("w", "x") != fresh.idem("w", "x") {
		t.Fatal("idem differs")
	}
}
