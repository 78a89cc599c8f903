package eventstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"indelible.dev/event"
	itlog "indelible.dev/tlog"
)

// TestListAcrossBundles: a listing's candidates are fetched together (their
// payloads in one pass, by forward seeks when their indexes are close and
// prefix seeks when they are scattered; their log entries in one pass over
// the entry bundles; the partial bundle from the published edge), and the
// records are exactly what a read of each event by index gives: pages
// whose candidates are one per bundle, cross bundle boundaries, end in the
// partial bundle, or cover the whole log; with events erased in a full
// bundle, on both sides of a boundary and in the partial bundle (never
// returned); before and after a restart.
func TestListAcrossBundles(t *testing.T) {
	e := newEnv(t, nil)
	const w = itlog.TileWidth
	const n = 5*w + 40
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]event.Event, n)
	for k := range evs {
		actor := "dense"
		if k%37 == 0 {
			actor = "sparse" // one every 37 events: a page of 7 spans 259 indexes
		}
		evs[k] = ev(actor, fmt.Sprintf("act%d", k%3), "r", event.OutcomeSuccess, "s", base.Add(time.Duration(k)*time.Millisecond))
	}
	var a []Appended
	for k := 0; k < n; k += 300 { // requests that straddle bundles
		a = append(a, e.append("w", evs[k:min(k+300, n)]...)...)
	}
	for k, ap := range a {
		if ap.Index != int64(k) {
			t.Fatalf("event %d at index %d", k, ap.Index)
		}
	}
	erased := []int64{37, w - 1, w, 3*w + 11, 5*w + 3, n - 1} // n-1: the newest, in the partial bundle
	for _, i := range erased {
		if _, err := e.l.Erase(context.Background(), i, "admin", "bundle test"); err != nil {
			t.Fatal(err)
		}
	}
	cp, _ := e.log.Checkpoint()
	if _, _, err := e.log.WaitSize(t.Context(), cp.N); err != nil {
		t.Fatal(err)
	}
	if cp.N%w == 0 || cp.N/w < 5 {
		t.Fatalf("log of %d entries: want full bundles and a partial one", cp.N)
	}

	// The oracle: each event read by its index (a point read of its
	// payload and its entry bundle, not the listing's path).
	want := map[int64]Record{}
	for i := range cp.N { // the erasures' own events too
		r, err := e.l.Get(i)
		if errors.Is(err, ErrGone) {
			if !slices.Contains(erased, i) {
				t.Fatalf("event %d gone", i)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		want[i] = r
	}
	if len(want) != int(cp.N)-len(erased) {
		t.Fatalf("%d events readable", len(want))
	}
	// expect returns the oracle's records matching keep, in listing order.
	expect := func(keep func(r *Record) bool) []int64 {
		var out []int64
		for i, r := range want {
			if keep(&r) {
				out = append(out, i)
			}
		}
		slices.SortFunc(out, func(x, y int64) int {
			if c := want[y].Event.Time.Compare(want[x].Event.Time); c != 0 {
				return c
			}
			return cmp.Compare(y, x)
		})
		return out
	}
	at := func(k int) time.Time { return base.Add(time.Duration(k) * time.Millisecond) }
	ours := func(r *Record) (int64, bool) { return r.Index, r.Index < n }
	in := func(lo, hi int64) func(r *Record) bool {
		return func(r *Record) bool { i, ok := ours(r); return ok && i >= lo && i < hi }
	}
	cases := []struct {
		name string
		q    Query
		keep func(r *Record) bool
	}{
		{"every event, pages of 100 (close together)", Query{Limit: 100}, func(*Record) bool { return true }},
		{"every event in one page", Query{Limit: MaxLimit}, func(*Record) bool { return true }},
		{"one every 37 events, pages of 7 (scattered)", Query{Actor: "sparse", Limit: 7}, func(r *Record) bool { i, ok := ours(r); return ok && i%37 == 0 }},
		{"one every 37 events and an action", Query{Actor: "sparse", Action: "act1", Limit: 3}, func(r *Record) bool { i, ok := ours(r); return ok && i%37 == 0 && i%3 == 1 }},
		{"across the first boundary", Query{Since: at(w - 6), Until: at(w + 6), Limit: 4}, in(w-6, w+6)},
		{"the partial bundle and the last full one", Query{Since: at(5*w - 3), Until: at(n), Limit: 10}, in(5*w-3, n)},
	}
	check := func(when string) {
		t.Helper()
		for _, c := range cases {
			var got []int64
			for _, r := range e.listAll(c.q) {
				o, ok := want[r.Index]
				if !ok {
					t.Fatalf("%s, %s: index %d returned (erased or not an event)", when, c.name, r.Index)
				}
				if !bytes.Equal(r.EventBytes, o.EventBytes) || r.Salt != o.Salt || r.Commitment != o.Commitment || !r.Event.Time.Equal(o.Event.Time) {
					t.Fatalf("%s, %s: record %d differs from its read by index", when, c.name, r.Index)
				}
				got = append(got, r.Index)
			}
			if exp := expect(c.keep); !slices.Equal(got, exp) {
				t.Fatalf("%s, %s: got %d records %v\nwant %d %v", when, c.name, len(got), got, len(exp), exp)
			}
		}
	}
	check("before a restart")
	e.reopen()
	check("after a restart")
}
