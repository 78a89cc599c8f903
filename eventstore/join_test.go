package eventstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"indelible.dev/event"
)

// TestListJoin: a listing with several filters (decided by looking the
// scanned index's candidates up in the other filters' indexes, and the
// outcome in the time index's values) returns exactly the events a filter
// over every stored event returns, in the same order, page after page,
// for every combination of two or more filters, with erased events, ties
// in time, empty fields and time bounds; and it decrypts only the events
// it returns.
func TestListJoin(t *testing.T) {
	e := newEnv(t, nil)
	rng := rand.New(rand.NewPCG(21, 1))
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var evs []event.Event
	for range 700 {
		evs = append(evs, ev(pick("a0", "a1", "a2", "a3", ""), pick("x0", "x1", "x2"), pick("r0", "r1", "r2", ""),
			pick(event.OutcomeSuccess, event.OutcomeFailure, event.OutcomeDenied, ""), pick("s0", "s1", ""),
			base.Add(time.Duration(rng.IntN(150))*time.Millisecond))) // many ties
	}
	a := e.append("w", evs[:350]...)
	a = append(a, e.append("w", evs[350:]...)...)
	for _, k := range []int{5, 77, 400} {
		if _, err := e.l.Erase(context.Background(), a[k].Index, "admin", "join test"); err != nil {
			t.Fatal(err)
		}
	}
	cp, _ := e.log.Checkpoint()
	if _, _, err := e.log.WaitSize(t.Context(), cp.N); err != nil {
		t.Fatal(err)
	}
	// The oracle: every stored event (a scan of the time index, no filter).
	all := e.listAll(Query{Limit: MaxLimit})
	if len(all) < 697 {
		t.Fatalf("%d events stored", len(all))
	}
	names := []string{"actor", "action", "resource", "outcome", "source"}
	values := map[string][]string{
		"actor": {"a0", "a3"}, "action": {"x1", "x2"}, "resource": {"r0", "r2"},
		"outcome": {event.OutcomeSuccess, event.OutcomeDenied}, "source": {"s1", "s0"},
	}
	queries := 0
	for set := 1; set < 1<<len(names); set++ {
		var fields []string
		for b, n := range names {
			if set&(1<<b) != 0 {
				fields = append(fields, n)
			}
		}
		if len(fields) < 2 {
			continue
		}
		for v := range 2 {
			q := Query{Limit: []int{1, 3, 100}[(set+v)%3]}
			for _, n := range fields {
				val := values[n][(v+len(n))%2]
				switch n {
				case "actor":
					q.Actor = val
				case "action":
					q.Action = val
				case "resource":
					q.Resource = val
				case "outcome":
					q.Outcome = val
				case "source":
					q.Source = val
				}
			}
			if v == 1 {
				q.Since, q.Until = base.Add(20*time.Millisecond), base.Add(120*time.Millisecond)
			}
			f, err := e.l.compile(q)
			if err != nil {
				t.Fatal(err)
			}
			var want []int64
			for _, r := range all {
				if f.match(&r.Event) {
					want = append(want, r.Index)
				}
			}
			// Page through it with one budget, which counts the events
			// fetched and opened.
			b := &scanBudget{keys: MaxScanKeys, decrypts: MaxScanDecrypts}
			var got []int64
			pq := q
			for {
				p, err := e.l.list(t.Context(), pq, b)
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Records) > q.Limit || (p.NextCursor != "" && len(p.Records) != q.Limit) {
					t.Fatalf("page of %d records (next %q), limit %d", len(p.Records), p.NextCursor, q.Limit)
				}
				for _, r := range p.Records {
					got = append(got, r.Index)
				}
				if p.NextCursor == "" {
					break
				}
				pq.Cursor = p.NextCursor
			}
			name := fmt.Sprintf("%v limit %d bounded %v", fields, q.Limit, v == 1)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: got %d events %v, want %d %v", name, len(got), got, len(want), want)
			}
			if b.spentDecrypts != len(want) {
				t.Errorf("%s: decrypted %d events to return %d", name, b.spentDecrypts, len(want))
			}
			queries++
		}
	}
	if queries != 52 {
		t.Fatalf("%d queries", queries)
	}
}
