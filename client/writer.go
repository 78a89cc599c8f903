package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"indelible.dev/api"
)

// ErrQueueFull is returned by Log and LogSync when the queue stayed full
// (for the block timeout, or at once with WithDropOnFull): the event was
// not queued and is counted in Dropped.
var ErrQueueFull = errors.New("client: queue full: event not queued")

// ErrClosed is returned by Log, LogSync and Flush after Close.
var ErrClosed = errors.New("client: closed")

// RefusedError is an event the server refused (HTTP 400 or 422: invalid,
// too large, or a field writers may not set). It is never retried.
type RefusedError struct {
	Seq     int64  // the event's 0-based position among the client's Log and LogSync calls
	ID      string // the event's id (filled in by the client if it had none)
	Action  string
	Status  int    // 400 or 422
	Field   string // the field the server named, if any
	Message string // the server's message
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("client: event %d (id %s, action %q) refused: HTTP %d: %s", e.Seq, e.ID, e.Action, e.Status, e.Message)
}

// UndeliveredError reports events that were queued but are not known to be
// stored: the writer gave up on their batch (retries exhausted, a status that
// is not retried), or Close's context ended before they were sent. Refused
// holds the events the server refused, Err the last error of a batch.
type UndeliveredError struct {
	Events  []Event // not known to be stored (their ids are set: resending them cannot duplicate)
	Refused []*RefusedError
	Err     error
}

func (e *UndeliveredError) Error() string {
	msg := fmt.Sprintf("client: %d events not delivered, %d refused", len(e.Events), len(e.Refused))
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *UndeliveredError) Unwrap() error { return e.Err }

// Logged is an event LogSync stored.
type Logged struct {
	Index int64  // its index in the log
	ID    string // its id
	c     *Client
}

// Receipt waits until a published checkpoint covers the event and returns
// its receipt (a c2sp.org/tlog-proof document, verbatim; it verifies
// nothing), polling GET /v1/events/{index}/receipt while the server answers
// that none covers it yet (503 or 404), until ctx ends.
func (l Logged) Receipt(ctx context.Context) ([]byte, error) {
	delay := l.c.backoff
	for {
		b, err := l.c.Receipt(ctx, l.Index)
		var se *StatusError
		if err == nil || !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable && se.Status != http.StatusNotFound && se.Status != http.StatusConflict {
			return b, err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, fmt.Errorf("client: receipt of event %d: %w (last: %v)", l.Index, ctx.Err(), err)
		}
		delay = min(delay*2, time.Second)
	}
}

// item is one queued event or, with ev.Action == "" and flush set, a flush
// marker.
type item struct {
	ev    Event
	seq   int64
	seg   int64 // its spool segment, when spooled
	flush bool
	spool bool        // written to the spool
	done  chan result // LogSync and Flush wait on it; nil for Log
}

type result struct {
	index int64
	err   error
}

// writer batches the events of Log and LogSync into append requests from
// one goroutine, started by the first event.
type writer struct {
	c *Client
	s settings
	q chan item
	// mu guards closed: enqueue holds it shared while it sends on q, Close
	// exclusively to set closed and then close q.
	mu sync.RWMutex
	// closed is set by Close; sending on q then fails with ErrClosed.
	closed  bool
	start   sync.Once
	stopped chan struct{} // closed when the goroutine returns
	ctx     context.Context
	cancel  context.CancelFunc
	seq     atomic.Int64
	sp      *spool // WithSpool
	dropped atomic.Int64
	stored  atomic.Int64

	failMu  sync.Mutex
	failed  []Event
	refused []*RefusedError
	lastErr error
}

func newWriter(c *Client, s settings) (*writer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{c: c, s: s, stopped: make(chan struct{}), ctx: ctx, cancel: cancel}
	var left []spooled
	if s.spoolDir != "" {
		sp, l, err := openSpool(s.spoolDir)
		if err != nil {
			cancel()
			return nil, err
		}
		w.sp, left = sp, l
	}
	// Room for what earlier processes left in the spool, on top of the
	// queue: New queues it all without waiting.
	w.q = make(chan item, s.queueSize+len(left))
	if len(left) > 0 {
		w.start.Do(func() { go w.run() })
		for _, l := range left {
			w.q <- item{ev: l.ev, seg: l.seg, spool: true, seq: w.seq.Add(1) - 1}
		}
	}
	return w, nil
}

// newID returns a random event id: 16 bytes in hex.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Log queues ev to be appended in a batch, and returns once it is queued:
// it is durable after a later Flush or Close returned nil. An event without
// an id gets a random one now, before any attempt, so that a batch sent
// again (after a lost reply) is stored once: the server answers a repeated
// id from the same token with the original index. A full queue blocks up to
// the block timeout (or not at all with WithDropOnFull), then gives
// ErrQueueFull. Errors about the event after it was queued go to the error
// handler (WithErrorHandler) and to Close.
func (c *Client) Log(ctx context.Context, ev Event) error {
	return c.w.enqueue(ctx, item{ev: ev})
}

// LogSync appends ev (batched with others) and returns once it is durable,
// with its index. Logged.Receipt then waits for a checkpoint covering it. An
// event the server refused gives a *RefusedError; one given up on, an
// *UndeliveredError.
func (c *Client) LogSync(ctx context.Context, ev Event) (Logged, error) {
	it := item{ev: ev, done: make(chan result, 1)}
	if ev.ID == "" {
		it.ev.ID = newID()
	}
	if err := c.w.enqueue(ctx, it); err != nil {
		return Logged{}, err
	}
	select {
	case r := <-it.done:
		if r.err != nil {
			return Logged{}, r.err
		}
		return Logged{Index: r.index, ID: it.ev.ID, c: c}, nil
	case <-ctx.Done():
		return Logged{}, fmt.Errorf("client: waiting for event %s: %w (it stays queued)", it.ev.ID, ctx.Err())
	}
}

// Flush returns once every event queued before it is durable, or with an
// *UndeliveredError for those that will not be (reported once: by this
// Flush, or else by Close).
func (c *Client) Flush(ctx context.Context) error {
	it := item{flush: true, done: make(chan result, 1)}
	if err := c.w.enqueue(ctx, it); err != nil {
		return err
	}
	select {
	case r := <-it.done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("client: flush: %w", ctx.Err())
	}
}

// Dropped returns how many events Log and LogSync did not queue because
// the queue was full.
func (c *Client) Dropped() int64 { return c.w.dropped.Load() }

// Stored returns how many events the writer has stored.
func (c *Client) Stored() int64 { return c.w.stored.Load() }

// Close stops taking events and returns once every queued event is durable
// (nil), or when ctx ends or the writer gave up on some, with an
// *UndeliveredError listing every event not known to be stored since the
// last Flush that reported. It does not close the HTTP client. Calling it
// again returns nil.
func (c *Client) Close(ctx context.Context) error {
	w := c.w
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	started := false
	w.start.Do(func() { close(w.stopped) }) // never started: nothing queued
	select {
	case <-w.stopped:
	default:
		started = true
	}
	if started {
		close(w.q) // no sender holds w.mu with closed set: the goroutine drains q and stops
		select {
		case <-w.stopped:
		case <-ctx.Done():
			w.cancel()
			<-w.stopped
		}
	}
	if w.sp != nil {
		w.sp.close()
	}
	return w.takeFailures(nil)
}

// takeFailures returns the failures so far as an *UndeliveredError (nil if
// none), adding err, and forgets them.
func (w *writer) takeFailures(err error) error {
	w.failMu.Lock()
	defer w.failMu.Unlock()
	if len(w.failed) == 0 && len(w.refused) == 0 {
		return nil
	}
	e := &UndeliveredError{Events: w.failed, Refused: w.refused, Err: w.lastErr}
	if e.Err == nil {
		e.Err = err
	}
	w.failed, w.refused, w.lastErr = nil, nil, nil
	return e
}

func (w *writer) enqueue(ctx context.Context, it item) (err error) {
	if !it.flush && it.ev.ID == "" {
		it.ev.ID = newID()
	}
	w.start.Do(func() { go w.run() })
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	if !it.flush {
		it.seq = w.seq.Add(1) - 1
		if w.sp != nil {
			seg, serr := w.sp.add(it.ev)
			if serr != nil {
				return serr
			}
			it.seg, it.spool = seg, true
			defer func() {
				if err != nil {
					w.sp.unqueued(seg, it.ev.ID)
				}
			}()
		}
	}
	// Fast path without a timer.
	select {
	case w.q <- it:
		return nil
	default:
	}
	if w.s.drop && !it.flush {
		w.dropped.Add(1)
		return ErrQueueFull
	}
	// Wait for room. Close waits for w.mu, so it cannot close q meanwhile;
	// the goroutine keeps draining q. (Close waits at most the block
	// timeout, or the flush's ctx.)
	t := time.NewTimer(w.s.blockTimeout)
	defer t.Stop()
	tc := t.C
	if it.flush {
		tc = nil // a flush waits for room as long as ctx allows
	}
	select {
	case w.q <- it:
		return nil
	case <-tc:
		w.dropped.Add(1)
		return ErrQueueFull
	case <-ctx.Done():
		if !it.flush {
			w.dropped.Add(1)
		}
		return fmt.Errorf("client: %w (%w)", ErrQueueFull, ctx.Err())
	}
}

// run is the writer's goroutine: it gathers batches from q and sends them,
// until q is closed and drained.
func (w *writer) run() {
	defer close(w.stopped)
	batch := make([]item, 0, w.s.batchSize)
	var flushes []item
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		// Wait for the first item of a batch.
		it, ok := <-w.q
		if !ok {
			return
		}
		if it.flush {
			it.done <- result{err: w.takeFailures(nil)}
			continue
		}
		batch = append(batch[:0], it)
		flushes = flushes[:0]
		timer.Reset(w.s.batchDelay)
		open := true
	gather:
		for len(batch) < w.s.batchSize {
			select {
			case it, ok := <-w.q:
				if !ok {
					open = false
					break gather
				}
				if it.flush {
					flushes = append(flushes, it)
					break gather
				}
				batch = append(batch, it)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		w.send(batch)
		for _, f := range flushes {
			f.done <- result{err: w.takeFailures(nil)}
		}
		if !open {
			return
		}
	}
}

// eventErrorBody is the server's answer to a refused event.
type eventErrorBody struct {
	Error    string `json:"error"`
	Field    string `json:"field"`
	Position *int   `json:"event"` // the refused event's position in the request
}

// send appends batch, retrying what may pass, splitting out refused events,
// and reports each item's result.
func (w *writer) send(batch []item) {
	start := time.Now()
	delay := w.c.backoff
	attempts := 0
	evs := make([]Event, len(batch))
	for len(batch) > 0 {
		evs = evs[:len(batch)]
		for i := range batch {
			evs[i] = batch[i].ev
		}
		attempts++
		res, retryAfter, err := w.append1(evs)
		if err == nil {
			if len(res) != len(batch) {
				w.fail(batch, fmt.Errorf("client: append reply has %d results for %d events", len(res), len(batch)))
				return
			}
			for i, it := range batch {
				if it.spool {
					w.sp.done(it.seg)
				}
				if it.done != nil {
					it.done <- result{index: res[i].Index}
				}
			}
			w.stored.Add(int64(len(batch)))
			return
		}
		var se *StatusError
		if errors.As(err, &se) && (se.Status == http.StatusBadRequest || se.Status == http.StatusUnprocessableEntity) {
			var body eventErrorBody
			_ = json.Unmarshal([]byte(se.Body), &body)
			msg := body.Error
			if msg == "" {
				msg = se.Body
			}
			switch {
			case body.Position != nil && *body.Position >= 0 && *body.Position < len(batch):
				p := *body.Position
				w.refuse(batch[p], se.Status, body.Field, msg)
				batch = append(batch[:p:p], batch[p+1:]...)
				continue // the others were not stored: send them again at once
			case len(batch) == 1:
				w.refuse(batch[0], se.Status, body.Field, msg)
				return
			default:
				// No position: the request as a whole. Send the events
				// one by one to find which.
				for _, it := range batch {
					w.send([]item{it})
				}
				return
			}
		}
		// 409 is the same id still in flight from an earlier attempt.
		again := Retryable(err) || errors.As(err, &se) && se.Status == http.StatusConflict
		if !again || w.ctx.Err() != nil ||
			w.s.maxAttempts > 0 && attempts >= w.s.maxAttempts || time.Since(start) >= w.s.maxElapsed {
			w.fail(batch, err)
			return
		}
		// Full jitter on a doubling delay, at least what Retry-After asks.
		d := min(max(mrand.N(delay)+delay/2, retryAfter), MaxBackoff)
		select {
		case <-time.After(d):
		case <-w.ctx.Done():
		}
		delay = min(delay*2, MaxBackoff)
	}
}

// append1 sends one append request (no retry) and decodes the reply.
func (w *writer) append1(evs []Event) ([]Appended, time.Duration, error) {
	body, err := json.Marshal(evs)
	if err != nil {
		return nil, 0, fmt.Errorf("client: encoding events: %w", err)
	}
	b, ra, err := w.c.do1(w.ctx, http.MethodPost, w.c.base+"/v1/events", "application/json", body, nil, MaxEventsResponse)
	if err != nil {
		return nil, ra, err
	}
	var r api.AppendReply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, 0, &transportError{fmt.Errorf("client: append reply: %w", err)}
	}
	return r.Events, 0, nil
}

func (w *writer) refuse(it item, status int, field, msg string) {
	if it.spool {
		w.sp.done(it.seg) // never sent again
	}
	e := &RefusedError{Seq: it.seq, ID: it.ev.ID, Action: it.ev.Action, Status: status, Field: field, Message: strings.TrimSpace(msg)}
	if it.done != nil {
		it.done <- result{err: e}
		return
	}
	w.failMu.Lock()
	w.refused = append(w.refused, e)
	w.failMu.Unlock()
	if w.s.onError != nil {
		w.s.onError(e)
	}
}

func (w *writer) fail(batch []item, err error) {
	var evs []Event
	for _, it := range batch {
		if it.done != nil {
			it.done <- result{err: &UndeliveredError{Events: []Event{it.ev}, Err: err}}
			continue
		}
		evs = append(evs, it.ev)
	}
	if len(evs) == 0 {
		return
	}
	w.failMu.Lock()
	w.failed = append(w.failed, evs...)
	w.lastErr = err
	w.failMu.Unlock()
	if w.s.onError != nil {
		w.s.onError(&UndeliveredError{Events: evs, Err: err})
	}
}
