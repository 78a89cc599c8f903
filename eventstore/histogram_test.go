package eventstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"indelible.dev/event"
)

// TestHistogram counts real stored events per minute and compares every
// bucket with a naive count, with and without filters.
func TestHistogram(t *testing.T) {
	e := newEnv(t, nil)
	base := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var evs []event.Event
	for i := 0; i < 300; i++ {
		actor := []string{"alice", "bob", "carol"}[i%3]
		at := base.Add(time.Duration(i*7) * time.Second) // 35 minutes
		evs = append(evs, ev(actor, "kubectl.exec", "prod/p"+strconv.Itoa(i%5), "success", "ci", at))
	}
	e.append("writer", evs...)

	for _, tc := range []struct {
		filters []string
		since   time.Time
		until   time.Time
		bucket  time.Duration
	}{
		{nil, base, base.Add(40 * time.Minute), time.Minute},
		{[]string{"actor", "bob"}, base, base.Add(40 * time.Minute), time.Minute},
		{[]string{"actor", "carol", "resource", "prod/p2"}, base.Add(90 * time.Second), base.Add(20*time.Minute + 30*time.Second), 5 * time.Minute},
		{nil, base.Add(-time.Hour), base.Add(time.Hour), 15 * time.Minute},
		{nil, base.Add(10 * time.Minute), base.Add(10*time.Minute + 1*time.Second), time.Second},
	} {
		name := fmt.Sprintf("%v %v..%v/%v", tc.filters, tc.since.Format("15:04:05"), tc.until.Format("15:04:05"), tc.bucket)
		q := mustQuery(t, tc.filters...)
		q.Since, q.Until = tc.since, tc.until
		h, err := e.l.Histogram(q, tc.bucket)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		start := tc.since.Truncate(tc.bucket)
		wantN := int((tc.until.Sub(start) + tc.bucket - 1) / tc.bucket)
		if len(h.Buckets) != wantN || !h.Complete || h.Width != tc.bucket {
			t.Fatalf("%s: %d buckets (complete %v, width %v), want %d", name, len(h.Buckets), h.Complete, h.Width, wantN)
		}
		var total int64
		for i, b := range h.Buckets {
			if !b.Start.Equal(start.Add(time.Duration(i) * tc.bucket)) {
				t.Fatalf("%s: bucket %d starts %v", name, i, b.Start)
			}
			var want int64
			for _, x := range evs {
				if !x.Time.Before(b.Start) && x.Time.Before(b.Start.Add(tc.bucket)) &&
					!x.Time.Before(tc.since) && x.Time.Before(tc.until) && matches(q, x) {
					want++
				}
			}
			if b.Count != want {
				t.Errorf("%s: bucket %v: %d events, want %d", name, b.Start, b.Count, want)
			}
			total += b.Count
		}
		if total != h.Total {
			t.Errorf("%s: total %d, buckets sum to %d", name, h.Total, total)
		}
	}
}

// matches is the naive filter the histogram is checked against.
func matches(q Query, x event.Event) bool {
	if q.Actor != "" && (x.Actor == nil || x.Actor.ID != q.Actor) {
		return false
	}
	if q.Resource != "" && (x.Resource == nil || x.Resource.ID != q.Resource) {
		return false
	}
	return (q.Action == "" || q.Action == x.Action) && (q.Outcome == "" || q.Outcome == x.Outcome) && (q.Source == "" || q.Source == x.Source)
}

func TestHistogramBadQuery(t *testing.T) {
	e := newEnv(t, nil)
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name         string
		since, until time.Time
		bucket       time.Duration
		limit        int
		cursor       string
	}{
		{"no since", time.Time{}, t0, time.Minute, 0, ""},
		{"no until", t0, time.Time{}, time.Minute, 0, ""},
		{"empty range", t0, t0, time.Minute, 0, ""},
		{"reversed range", t0.Add(time.Hour), t0, time.Minute, 0, ""},
		{"sub-second bucket", t0, t0.Add(time.Minute), time.Millisecond, 0, ""},
		{"fractional bucket", t0, t0.Add(time.Minute), 1500 * time.Millisecond, 0, ""},
		{"zero bucket", t0, t0.Add(time.Minute), 0, 0, ""},
		{"too many buckets", t0, t0.Add(7 * 24 * time.Hour), time.Minute, 0, ""},
		{"limit", t0, t0.Add(time.Hour), time.Minute, 10, ""},
		{"cursor", t0, t0.Add(time.Hour), time.Minute, 0, "abc"},
		// Centuries by the second: the span saturates time.Duration (292
		// years), which overflowed the bucket count and panicked.
		{"buckets from before year 0", time.Date(0, 12, 31, 23, 58, 35, 0, time.UTC), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), 70000 * time.Hour, 0, ""},
		{"centuries by the second", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2900, 1, 1, 0, 0, 0, 0, time.UTC), time.Second, 0, ""},
	} {
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
				}
			}()
			_, err = e.l.Histogram(Query{Since: tc.since, Until: tc.until, Limit: tc.limit, Cursor: tc.cursor}, tc.bucket)
		}()
		if !errors.Is(err, ErrBadQuery) {
			t.Errorf("%s: %v, want ErrBadQuery", tc.name, err)
		}
	}
}

// TestHistogramCenturies counts over ranges longer than a time.Duration
// holds (292 years), which used to panic: few wide buckets are fine, many
// narrow ones are refused naming the limit.
func TestHistogramCenturies(t *testing.T) {
	e := newEnv(t, nil)
	year := 8766 * time.Hour
	t1000, t2900 := time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2900, 1, 1, 0, 0, 0, 0, time.UTC)
	e.append("w", ev("a", "old", "r", "success", "s", time.Date(1200, 6, 1, 0, 0, 0, 0, time.UTC)),
		ev("a", "new", "r", "success", "s", time.Date(2800, 6, 1, 0, 0, 0, 0, time.UTC)))
	if _, err := e.l.WaitReceipts(t.Context(), []int64{1}); err != nil {
		t.Fatal(err)
	}
	h, err := e.l.Histogram(Query{Since: t1000, Until: t2900}, 100*year)
	if err != nil {
		t.Fatal(err)
	}
	first, last := h.Buckets[0].Start, h.Buckets[len(h.Buckets)-1].Start
	if len(h.Buckets) > 20 || first.After(t1000) || !last.Before(t2900) || last.Add(100*year).Before(t2900) || h.Total != 2 || !h.Complete {
		t.Fatalf("%d buckets from %v to %v, total %d, complete %v; want at most 20 covering the range, 2, true", len(h.Buckets), first, last, h.Total, h.Complete)
	}
	for i, b := range h.Buckets {
		if i > 0 && b.Start.Sub(h.Buckets[i-1].Start) != 100*year {
			t.Fatalf("bucket %d starts at %v, after %v", i, b.Start, h.Buckets[i-1].Start)
		}
		want := int64(0)
		if b.Start.Year() <= 1200 && b.Start.Add(100*year).Year() > 1200 || b.Start.Year() <= 2800 && b.Start.Add(100*year).Year() > 2800 {
			want = 1
		}
		if b.Count != want {
			t.Errorf("bucket %v: %d events, want %d", b.Start, b.Count, want)
		}
	}
	if _, err := e.l.Histogram(Query{Since: t1000, Until: t2900}, time.Hour); !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), fmt.Sprint(MaxHistogramBuckets)) {
		t.Fatalf("centuries by the hour: %v, want ErrBadQuery naming the limit %d", err, MaxHistogramBuckets)
	}
}

// TestHistogramCap checks that counting stops at the cap and says so, over a
// List that serves pages of events one second apart (with a cap of 2,500:
// a million stored events would make the test slow; the logic is the same).
func TestHistogramCap(t *testing.T) {
	end := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	const maxEvents = 2500
	for _, stored := range []int{maxEvents - 1, maxEvents, maxEvents + 1, 2*maxEvents + 1000} {
		list := func(q Query) (Page, error) {
			from := 0
			if q.Cursor != "" {
				from, _ = strconv.Atoi(q.Cursor)
			}
			var p Page
			for i := from; i < stored && i < from+q.Limit; i++ {
				p.Records = append(p.Records, Record{Event: event.Event{Time: end.Add(-time.Duration(i+1) * time.Second)}})
			}
			if from+q.Limit < stored {
				p.NextCursor = strconv.Itoa(from + q.Limit)
			}
			return p, nil
		}
		h, err := histogram(Query{Since: end.Add(-10 * maxEvents * time.Second), Until: end}, time.Hour, list, maxEvents)
		if err != nil {
			t.Fatal(err)
		}
		wantTotal := int64(min(stored, maxEvents))
		if h.Total != wantTotal || h.Complete != (stored <= maxEvents) {
			t.Errorf("%d stored: total %d complete %v, want %d %v", stored, h.Total, h.Complete, wantTotal, stored <= maxEvents)
		}
		if !h.Complete && !h.Oldest.Equal(end.Add(-maxEvents*time.Second)) {
			t.Errorf("%d stored: oldest counted %v", stored, h.Oldest)
		}
	}
}

// BenchmarkHistogram counts 10,000 stored events over a day in 15-minute
// buckets (it pages through List, opening every record).
func BenchmarkHistogram(b *testing.B) {
	e := newEnv(b, nil)
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	const n = 10000
	for k := 0; k < n; k += 1000 {
		var evs []event.Event
		for i := k; i < k+1000; i++ {
			evs = append(evs, ev([]string{"alice", "bob"}[i%2], "kubectl.get", "prod/p", "success", "ci", base.Add(time.Duration(i)*8*time.Second)))
		}
		e.append("writer", evs...)
	}
	q := Query{Since: base, Until: base.Add(24 * time.Hour)}
	b.ResetTimer()
	for b.Loop() {
		h, err := e.l.Histogram(q, 15*time.Minute)
		if err != nil || h.Total != n {
			b.Fatalf("%v, total %d", err, h.Total)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
