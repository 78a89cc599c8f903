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
