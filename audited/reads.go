package audited

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"indelible.dev/event"
	"indelible.dev/eventstore"
)

// Audited reads: every read of event content (a query, a record, a receipt,
// a stream opened, a histogram) is itself appended to the log as an
// indelible.read event naming the token, the route and the filters or the
// index. The read runs while its event is being appended, and its response
// is sent only once the event is durable: a read the log cannot record fails
// and returns no event data.

// ActionRead is the action of the event recording a read (docs/events.md).
const ActionRead = "indelible.read"

// Read-batcher bounds.
const (
	// MaxReadQueue bounds the read events waiting for their append; a read
	// arriving when it is full fails with ErrBusy.
	MaxReadQueue = 8192
	// MaxReadBatch bounds the read events appended in one batch.
	MaxReadBatch = 1024
)

// ReadMeta is the metadata of an indelible.read event: the route and the
// filters (a query, stream or histogram: every parameter as given) or the
// index (a record or receipt), or the indexes (receipts returned to
// duplicate appends).
type ReadMeta struct {
	Route string            `json:"route"`
	Query map[string]string `json:"query,omitempty"`
	Index *int64            `json:"index,omitempty"`
	// Indexes are the events whose receipts a duplicate append returned
	// (POST /v1/events?wait=checkpoint by a token that may read).
	Indexes []int64 `json:"indexes,omitempty"`
}

// MaxRecordedValue bounds each parameter value a read record keeps, so a
// reader cannot make every read append kilobytes to the log (SECURITY.md):
// a longer value is kept as its first MaxRecordedValue bytes (cut at a rune
// boundary) followed by "…(N bytes)".
const MaxRecordedValue = 256

// QueryMeta is the metadata of a read with filters: every parameter of v
// (each given once; the parsers refuse repeats and unknown parameters
// before this is called), each value cut to MaxRecordedValue bytes.
func QueryMeta(route string, v url.Values) ReadMeta {
	m := ReadMeta{Route: route, Query: make(map[string]string, len(v))}
	for k, vs := range v {
		if len(vs) > 0 {
			m.Query[k] = capValue(vs[0])
		}
	}
	return m
}

// capValue cuts s to MaxRecordedValue bytes at a rune boundary and says how
// long it was.
func capValue(s string) string {
	if len(s) <= MaxRecordedValue {
		return s
	}
	cut := MaxRecordedValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}

// IndexMeta is the metadata of a read of one index.
func IndexMeta(route string, i int64) ReadMeta {
	return ReadMeta{Route: route, Index: &i}
}

// ReadEvent returns the indelible.read event recording a read by the token
// named by: actor.id is the token's name (submitted_by too, as the event
// is recorded for that token), metadata the route and the filters or index.
func ReadEvent(by string, meta ReadMeta) (event.Event, error) {
	md, err := json.Marshal(meta)
	if err != nil {
		return event.Event{}, err
	}
	return event.Event{
		Actor:    &event.Actor{ID: by, Type: "token"},
		Action:   ActionRead,
		Source:   event.ServerSource,
		Metadata: md,
	}, nil
}

// AuditRead queues the indelible.read event of a read by the token named
// by and returns a function waiting (within ctx) for it to be durable:
// call it before sending any event data, and send none if it fails. A full
// queue is ErrBusy and a closed service ErrClosed, at once.
func (s *Service) AuditRead(ctx context.Context, by string, meta ReadMeta) (wait func() error, err error) {
	ev, err := ReadEvent(by, meta)
	if err != nil {
		return nil, fmt.Errorf("recording the read: %w", err)
	}
	done, err := s.reads.submit(by, ev)
	if err != nil {
		return nil, err
	}
	return func() error {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return fmt.Errorf("waiting for the read to be recorded: %w", ctx.Err())
		}
	}, nil
}

// readBatcher is the group committer of read events. submit queues one; the
// goroutine run (started by submit when none is running, ending when the
// queue is empty) takes everything queued, appends it (one Record per
// submitting token, concurrently, so the ledger commits them together), and
// answers each waiter. close refuses new reads and waits for run to end.
type readBatcher struct {
	// record is l.Record without writes; tests make it fail or wait.
	record func(ctx context.Context, by string, evs []event.Event) ([]eventstore.Appended, error)

	// mu guards pending, running and closed; wg counts run goroutines.
	mu      sync.Mutex
	pending []*readAudit
	running bool
	closed  bool
	wg      sync.WaitGroup

	batches   prometheus.Counter
	batchSize prometheus.Histogram
	latency   prometheus.Histogram
	recorded  prometheus.Counter
	failed    prometheus.Counter
	refused   prometheus.Counter
}

// readAudit is one queued read event; done receives the append's outcome.
type readAudit struct {
	by   string
	ev   event.Event
	done chan error // buffered: run never blocks on a waiter that left
}

func newReadBatcher(l *eventstore.Layer) *readBatcher {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	a := &readBatcher{
		record: func(ctx context.Context, by string, evs []event.Event) ([]eventstore.Appended, error) {
			return l.Record(ctx, by, evs, nil)
		},
		batches:   counter("indelible_read_audit_batches_total", "Batches of indelible.read events appended (group commits of audited reads)."),
		batchSize: histogram("indelible_read_audit_batch_events", "indelible.read events per batch.", prometheus.ExponentialBuckets(1, 2, 11)), // 1 .. 1024
		latency:   histogram("indelible_read_audit_latency_seconds", "Time from queueing a read event to its append being durable (or failing).", prometheus.ExponentialBuckets(0.0001, 2, 16)),
		recorded:  counter("indelible_read_audit_events_total", "indelible.read events durably appended."),
		failed:    counter("indelible_read_audit_failed_total", "Reads that failed because their indelible.read event could not be appended."),
		refused:   counter("indelible_read_audit_refused_total", "Reads refused (503) because the read-audit queue was full."),
	}
	return a
}

func (a *readBatcher) collectors() []prometheus.Collector {
	return []prometheus.Collector{a.batches, a.batchSize, a.latency, a.recorded, a.failed, a.refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "indelible_read_audit_queue",
			Help: "indelible.read events waiting for a batch.",
		}, func() float64 { a.mu.Lock(); defer a.mu.Unlock(); return float64(len(a.pending)) })}
}

// submit queues ev, appended as by, and returns a channel receiving the
// outcome once the event is durable (nil) or failed.
func (a *readBatcher) submit(by string, ev event.Event) (<-chan error, error) {
	r := &readAudit{by: by, ev: ev, done: make(chan error, 1)}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, ErrClosed
	}
	if len(a.pending) >= MaxReadQueue {
		a.mu.Unlock()
		a.refused.Inc()
		return nil, ErrBusy
	}
	a.pending = append(a.pending, r)
	start := !a.running
	if start {
		a.running = true
		a.wg.Add(1)
	}
	a.mu.Unlock()
	if start {
		go a.run()
	}
	return r.done, nil
}

// close refuses new reads and waits until every queued one is appended.
func (a *readBatcher) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.wg.Wait()
}

// run appends batches until the queue is empty. Only one run goroutine
// exists at a time (running, under mu).
func (a *readBatcher) run() {
	defer a.wg.Done()
	for {
		a.mu.Lock()
		n := min(len(a.pending), MaxReadBatch)
		if n == 0 {
			a.running = false
			a.mu.Unlock()
			return
		}
		batch := a.pending[:n:n]
		a.pending = append([]*readAudit(nil), a.pending[n:]...)
		a.mu.Unlock()
		a.commit(batch)
	}
}

// commit appends one batch: one Record per submitting token (submitted_by
// is per call), run concurrently so the ledger sequences them into the
// same commit, and answers every waiter.
func (a *readBatcher) commit(batch []*readAudit) {
	start := time.Now()
	groups := map[string][]*readAudit{}
	var order []string
	for _, r := range batch {
		if _, ok := groups[r.by]; !ok {
			order = append(order, r.by)
		}
		groups[r.by] = append(groups[r.by], r)
	}
	var wg sync.WaitGroup
	for _, by := range order {
		rs := groups[by]
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs := make([]event.Event, len(rs))
			for i, r := range rs {
				evs[i] = r.ev
			}
			// Not the request's context: the event is recorded even if
			// the reader has gone (it may already have seen data).
			_, err := a.record(context.Background(), by, evs)
			if err != nil {
				err = fmt.Errorf("recording the read in the log: %w", err)
				a.failed.Add(float64(len(rs)))
			} else {
				a.recorded.Add(float64(len(rs)))
			}
			for _, r := range rs {
				r.done <- err
			}
		}()
	}
	wg.Wait()
	a.batches.Inc()
	a.batchSize.Observe(float64(len(batch)))
	a.latency.Observe(time.Since(start).Seconds())
}
