package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/events"
)

// Audited reads: every read of event content (a query, a record, a receipt,
// a stream opened, a histogram) is itself appended to the log as an
// indelible.read event naming the token, the route and the filters or the
// index. The read runs while its event is being appended, and its response
// is sent only once the event is durable: a read the log cannot record fails
// and returns no event data. Read events are group-committed: one goroutine
// appends, in one batch, every read event queued while the previous batch
// was committing.

// ActionRead is the action of the event recording a read (docs/events.md).
const ActionRead = "indelible.read"

// Read-audit bounds.
const (
	// MaxReadAuditQueue bounds the read events waiting for their append;
	// a read arriving when it is full fails with 503 and Retry-After.
	MaxReadAuditQueue = 8192
	// MaxReadAuditBatch bounds the read events appended in one batch.
	MaxReadAuditBatch = 1024
)

// errReadAuditFull is a read refused because too many read events are
// already waiting to be recorded (503 with Retry-After).
var errReadAuditFull = errors.New("too many reads waiting to be recorded in the log, retry")

// readAuditor is the group committer of read events. submit queues one; the
// goroutine run (started by submit when none is running, ending when the
// queue is empty) takes everything queued, appends it (one Append per
// submitting token, concurrently, so the ledger commits them together), and
// answers each waiter.
type readAuditor struct {
	l *events.Layer
	// append is l.Append; tests make it fail.
	append func(ctx context.Context, by string, evs []event.Event) ([]events.Appended, error)

	// mu guards pending and running.
	mu      sync.Mutex
	pending []*readAudit
	running bool

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

func newReadAuditor(l *events.Layer, m *Metrics) *readAuditor {
	a := &readAuditor{
		l:         l,
		append:    l.Append,
		batches:   newCounter("indelible_read_audit_batches_total", "Batches of indelible.read events appended (group commits of audited reads)."),
		batchSize: newHistogram("indelible_read_audit_batch_events", "indelible.read events per batch.", prometheus.ExponentialBuckets(1, 2, 11)), // 1 .. 1024
		latency:   newHistogram("indelible_read_audit_latency_seconds", "Time from queueing a read event to its append being durable (or failing).", prometheus.ExponentialBuckets(0.0001, 2, 16)),
		recorded:  newCounter("indelible_read_audit_events_total", "indelible.read events durably appended."),
		failed:    newCounter("indelible_read_audit_failed_total", "Reads that failed because their indelible.read event could not be appended."),
		refused:   newCounter("indelible_read_audit_refused_total", "Reads refused (503) because the read-audit queue was full."),
	}
	m.reg.MustRegister(a.batches, a.batchSize, a.latency, a.recorded, a.failed, a.refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "indelible_read_audit_queue",
			Help: "indelible.read events waiting for a batch.",
		}, func() float64 { a.mu.Lock(); defer a.mu.Unlock(); return float64(len(a.pending)) }))
	return a
}

// submit queues ev, appended as by, and returns a channel receiving the
// outcome once the event is durable (nil) or failed. A full queue is
// errReadAuditFull, at once.
func (a *readAuditor) submit(by string, ev event.Event) (<-chan error, error) {
	r := &readAudit{by: by, ev: ev, done: make(chan error, 1)}
	a.mu.Lock()
	if len(a.pending) >= MaxReadAuditQueue {
		a.mu.Unlock()
		a.refused.Inc()
		return nil, errReadAuditFull
	}
	a.pending = append(a.pending, r)
	start := !a.running
	a.running = true
	a.mu.Unlock()
	if start {
		go a.run()
	}
	return r.done, nil
}

// run appends batches until the queue is empty. Only one run goroutine
// exists at a time (running, under mu).
func (a *readAuditor) run() {
	for {
		a.mu.Lock()
		n := min(len(a.pending), MaxReadAuditBatch)
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

// commit appends one batch: one Append per submitting token (submitted_by
// is per Append call), run concurrently so the ledger sequences them into
// the same commit, and answers every waiter.
func (a *readAuditor) commit(batch []*readAudit) {
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
			_, err := a.append(context.Background(), by, evs)
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

// readMeta is the metadata of an indelible.read event: the route and the
// filters (a query, stream or histogram: every parameter as given) or the
// index (a record or receipt).
type readMeta struct {
	Route string            `json:"route"`
	Query map[string]string `json:"query,omitempty"`
	Index *int64            `json:"index,omitempty"`
}

// queryMeta is the metadata of a read with filters: every parameter of v
// (each given once; the parsers refuse repeats before this is called).
func queryMeta(route string, v url.Values) readMeta {
	m := readMeta{Route: route, Query: make(map[string]string, len(v))}
	for k, vs := range v {
		if len(vs) > 0 {
			m.Query[k] = vs[0]
		}
	}
	return m
}

// indexMeta is the metadata of a read of one index.
func indexMeta(route string, i int64) readMeta {
	return readMeta{Route: route, Index: &i}
}

// readEvent returns the indelible.read event recording a read by the token
// named by: actor.id is the token's name (submitted_by too, as the Append
// is made as that token), metadata the route and the filters or index.
func readEvent(by string, meta readMeta) (event.Event, error) {
	md, err := json.Marshal(meta)
	if err != nil {
		return event.Event{}, err
	}
	return event.Event{
		Actor:    &event.Actor{ID: by, Type: "token"},
		Action:   ActionRead,
		Source:   auth.EventSource,
		Metadata: md,
	}, nil
}

// auditRead queues the indelible.read event of the request's read and
// returns a function waiting for it to be durable; call it before sending
// any event data, and send none if it fails. Without a read auditor (a
// server with no events layer) it does nothing.
func (s *Server) auditRead(c echo.Context, meta readMeta) (wait func() error, err error) {
	if s.reads == nil {
		return func() error { return nil }, nil
	}
	by := requestToken(c).Name
	ev, err := readEvent(by, meta)
	if err != nil {
		return nil, fmt.Errorf("recording the read: %w", err)
	}
	done, err := s.reads.submit(by, ev)
	if err != nil {
		return nil, err
	}
	ctx := c.Request().Context()
	return func() error {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return fmt.Errorf("waiting for the read to be recorded: %w", ctx.Err())
		}
	}, nil
}
