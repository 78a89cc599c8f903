package eventstore

import (
	"context"
	"fmt"
	"time"
)

// Histogram limits.
const (
	// MaxHistogramBuckets bounds the buckets of one histogram: a week at
	// one bucket per 10 minutes fits, a week per minute does not.
	MaxHistogramBuckets = 2000
	// MaxHistogramEvents bounds the events one histogram counts. Past it
	// the result is marked incomplete: the newest events are counted, the
	// oldest buckets are short. Counting decrypts each event (about 10-20
	// us of CPU), so this bounds one request to a second or two of a core.
	MaxHistogramEvents = 100_000
	// MaxHistogramDecrypts bounds the events one histogram decrypts,
	// matching or not (with two filters, candidates of the first that
	// fail the second are decrypted too); past it the histogram fails with
	// ErrScanBudget.
	MaxHistogramDecrypts = 2 * MaxHistogramEvents
)

// Bucket is one bar of a histogram: Count events whose time is in
// [Start, Start+width).
type Bucket struct {
	Start time.Time `json:"start"`
	Count int64     `json:"count"`
}

// Histogram is the count of matching events per bucket over a time range.
type Histogram struct {
	Width   time.Duration // the buckets' width
	Buckets []Bucket      // every bucket from the first to the last, oldest first, empty ones included
	Total   int64         // events counted
	// Complete is false when counting stopped at MaxHistogramEvents (from
	// the newest events back): the buckets before Oldest are short.
	Complete bool
	Oldest   time.Time // the time of the oldest event counted, when !Complete
}

// Histogram counts the events matching q's filters per bucket of width
// bucket over [q.Since, q.Until). Both times are required; bucket is at
// least a second, in whole seconds, and the range spans at most
// MaxHistogramBuckets buckets. Buckets are aligned on multiples of bucket
// since the Unix epoch (so a day's buckets start at UTC midnight when bucket
// divides a day). q.Limit and q.Cursor must be unset. Errors wrap
// ErrBadQuery for a bad range or bucket.
//
// It pages through List (decrypting each record), so its cost grows with the
// number of events in the range; MaxHistogramEvents caps what it counts,
// MaxHistogramDecrypts and MaxScanKeys what it examines (ErrScanBudget).
func (l *Layer) Histogram(q Query, bucket time.Duration) (Histogram, error) {
	return l.HistogramContext(context.Background(), q, bucket)
}

// HistogramContext is Histogram stopping with ctx's error once ctx is done.
func (l *Layer) HistogramContext(ctx context.Context, q Query, bucket time.Duration) (Histogram, error) {
	b := &scanBudget{keys: MaxScanKeys, decrypts: MaxHistogramDecrypts}
	return histogram(q, bucket, func(q Query) (Page, error) { return l.list(ctx, q, b) }, MaxHistogramEvents)
}

// histogram is Histogram over any List, counting at most maxEvents.
func histogram(q Query, bucket time.Duration, list func(Query) (Page, error), maxEvents int64) (Histogram, error) {
	if bucket < time.Second || bucket%time.Second != 0 {
		return Histogram{}, fmt.Errorf("%w: bucket %v: want whole seconds, at least 1s", ErrBadQuery, bucket)
	}
	if q.Since.IsZero() || q.Until.IsZero() {
		return Histogram{}, fmt.Errorf("%w: a histogram needs since and until", ErrBadQuery)
	}
	if !q.Since.Before(q.Until) {
		return Histogram{}, fmt.Errorf("%w: since %v is not before until %v", ErrBadQuery, q.Since, q.Until)
	}
	if q.Limit != 0 || q.Cursor != "" {
		return Histogram{}, fmt.Errorf("%w: a histogram takes no limit or cursor", ErrBadQuery)
	}
	start := q.Since.UTC().Truncate(bucket) // a whole second
	if start.Year() < 0 {
		// Bucket starts are RFC 3339 times: years 0 to 9999.
		return Histogram{}, fmt.Errorf("%w: since %v in buckets of %v starts before year 0", ErrBadQuery, q.Since.UTC().Format(time.RFC3339), bucket)
	}
	// Counted in whole seconds: a time.Duration saturates at 292 years,
	// and a range of centuries overflowed the bucket count.
	width := int64(bucket / time.Second)
	span := q.Until.Unix() - start.Unix() // at most ~3e11 for years 0 to 9999
	if q.Until.Nanosecond() > 0 {
		span++
	}
	n := span / width
	if span%width != 0 {
		n++
	}
	if n > MaxHistogramBuckets {
		return Histogram{}, fmt.Errorf("%w: %d buckets of %v from %v to %v, at most %d", ErrBadQuery, n, bucket, start.Format(time.RFC3339), q.Until.UTC().Format(time.RFC3339), MaxHistogramBuckets)
	}
	h := Histogram{Width: bucket, Buckets: make([]Bucket, n), Complete: true}
	for i := range h.Buckets {
		h.Buckets[i].Start = start
		start = start.Add(bucket)
	}
	start = h.Buckets[0].Start
	q.Limit = MaxLimit
	for {
		p, err := list(q)
		if err != nil {
			return Histogram{}, err
		}
		for i, r := range p.Records {
			t := r.Event.Time
			if t.Before(start) || !t.Before(q.Until) {
				continue // outside the range (an inclusive bound of List)
			}
			h.Buckets[(t.Unix()-start.Unix())/width].Count++
			h.Total++
			if h.Total >= maxEvents {
				if i < len(p.Records)-1 || p.NextCursor != "" {
					h.Complete, h.Oldest = false, t
				}
				return h, nil
			}
		}
		if p.NextCursor == "" {
			return h, nil
		}
		q.Cursor = p.NextCursor
	}
}
