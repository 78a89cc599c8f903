package eventstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"indelible.dev/event"
	"indelible.dev/ledger"
)

// Actions of the events the server records itself.
const (
	ActionErase     = "indelible.erase"
	ActionRetention = "indelible.retention"
	// ServerActor is the actor and submitter of what the server does on its own.
	ServerActor = "indelible"
)

// MaxEraseReason bounds the reason of an erasure, in bytes.
const MaxEraseReason = 1024

var (
	// ErrGone means an event's payload was destroyed, by an erasure
	// (*ErasedError) or by retention (*ShreddedError): 410.
	ErrGone = errors.New("events: event destroyed")
	// ErrBadErase is an erasure request refused as malformed (400).
	ErrBadErase = errors.New("events: bad erasure request")
)

// Tombstone is what remains of an erased event ('z' i).
type Tombstone struct {
	Index      int64     `json:"index"`
	ErasedAt   time.Time `json:"erased_at"`
	ErasedBy   string    `json:"erased_by"`
	Reason     string    `json:"reason"`
	EraseIndex int64     `json:"erase_index"` // the indelible.erase event's index
}

// ErasedError is the error of a read of an erased event.
type ErasedError struct{ Tombstone Tombstone }

func (e *ErasedError) Error() string {
	return fmt.Sprintf("events: event %d was erased at %s by %s (reason: %s)", e.Tombstone.Index,
		e.Tombstone.ErasedAt.Format(time.RFC3339), e.Tombstone.ErasedBy, e.Tombstone.Reason)
}

func (e *ErasedError) Unwrap() error { return ErrGone }

// ShreddedError is the error of a read of an event whose UTC day retention
// shredded (or is shredding: Day's key is then still stored, not for long).
type ShreddedError struct {
	Index int64
	Day   time.Time // the UTC day the event was received
}

func (e *ShreddedError) Error() string {
	return fmt.Sprintf("events: event %d was received on %s, a day shredded by retention", e.Index, e.Day.Format(time.DateOnly))
}

func (e *ShreddedError) Unwrap() error { return ErrGone }

// gone returns why the event at index i, which has no readable payload, is
// gone: an *ErasedError, a *ShreddedError, or nil (not an event).
func (l *Layer) gone(i int64, day int64, haveDay bool) error {
	v, err := l.log.GetExt(tombKey(i))
	switch {
	case err == nil:
		var ts Tombstone
		if err := json.Unmarshal(v, &ts); err != nil {
			return fmt.Errorf("%w: tombstone of event %d: %w", ErrCorrupt, i, err)
		}
		return &ErasedError{Tombstone: ts}
	case !errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("events: reading the tombstone of event %d: %w", i, err)
	}
	if !haveDay && l.sheddingAny.Load() {
		// A retention pass deletes a day's payloads, then moves the day
		// from shedding to shredded (under lmu): a payload missing in
		// between is of a day still shedding. Its day is its segment's.
		if segs, err := l.segments(i + 1); err == nil && len(segs) > 0 {
			day, haveDay = segs[len(segs)-1].day, true
		}
	}
	l.lmu.RLock()
	defer l.lmu.RUnlock()
	for _, r := range l.shredded {
		if i >= r.Lo && i < r.Hi {
			return &ShreddedError{Index: i, Day: dayTime(r.Day)}
		}
	}
	if haveDay && l.shedding[day] {
		return &ShreddedError{Index: i, Day: dayTime(day)}
	}
	return nil
}

func dayTime(day int64) time.Time { return time.Unix(day*86400, 0).UTC() }

// keysOf returns every key the event at index i was stored under: its
// payload, its time and field index keys, and its idempotency key if it
// still points to i.
func (l *Layer) keysOf(i int64, e *event.Event) ([][]byte, error) {
	ks, _ := l.indexKeys(e)
	for _, k := range ks {
		binary.BigEndian.PutUint64(k[len(k)-indexSize:], uint64(i))
	}
	ks = append(ks, payloadKey(i))
	if e.ID != "" {
		dk := idemKey(l.blind.idem(e.SubmittedBy, e.ID))
		v, err := l.log.GetExt(dk)
		switch {
		case err == nil && len(v) == indexSize && int64(binary.BigEndian.Uint64(v)) == i:
			ks = append(ks, dk)
		case err != nil && !errors.Is(err, ledger.ErrNotFound):
			return nil, fmt.Errorf("events: looking up an id: %w", err)
		}
	}
	return ks, nil
}

// pointRange is the key range [k, k 0x00): k alone.
func pointRange(k []byte) [2][]byte { return [2][]byte{k, append(append([]byte(nil), k...), 0)} }

// Erase destroys the event at index i: its payload (and with it its salt),
// its event key, its index keys and idempotency key go, a tombstone stays,
// and an indelible.erase event (actor and submitter by, metadata {"index",
// "reason"}) is appended in the very same batch, so there is never one
// without the other. The log entry stays, so every proof still verifies.
// It returns once the destroyed bytes are gone from the store's files too
// (see purge); the tombstone carries the erase event's index.
//
// Errors: ErrBadErase (no or too long reason), ErrNotFound (not published),
// ErrNotEvent, *ErasedError (already erased; its tombstone),
// *ShreddedError, and the append's errors.
func (l *Layer) Erase(ctx context.Context, i int64, by, reason string) (Tombstone, error) {
	switch {
	case reason == "":
		return Tombstone{}, fmt.Errorf("%w: a reason is required", ErrBadErase)
	case len(reason) > MaxEraseReason:
		return Tombstone{}, fmt.Errorf("%w: reason of %d bytes, over the limit of %d", ErrBadErase, len(reason), MaxEraseReason)
	case !utf8.ValidString(reason):
		return Tombstone{}, fmt.Errorf("%w: reason is not UTF-8", ErrBadErase)
	case by == "":
		return Tombstone{}, fmt.Errorf("%w: no eraser name", ErrBadErase)
	}
	if l.closed.Load() {
		return Tombstone{}, ErrClosed
	}
	l.emu.Lock() // one erasure or retention pass at a time
	defer l.emu.Unlock()
	r, err := l.get(i)
	if err != nil {
		return Tombstone{}, err
	}
	keys, err := l.keysOf(i, &r.Event)
	if err != nil {
		return Tombstone{}, err
	}
	meta, err := json.Marshal(struct {
		Index  int64  `json:"index"`
		Reason string `json:"reason"`
	}{i, reason})
	if err != nil {
		return Tombstone{}, fmt.Errorf("events: encoding erase metadata: %w", err)
	}
	ev := event.Event{
		Actor:    &event.Actor{ID: by},
		Action:   ActionErase,
		Resource: &event.Resource{Type: "event", ID: strconv.FormatInt(i, 10)},
		Outcome:  "success",
		Source:   ServerActor,
		Metadata: meta,
	}
	var ranges [][2][]byte
	for _, k := range keys {
		ranges = append(ranges, pointRange(k))
	}
	ts := Tombstone{Index: i, ErasedBy: by, Reason: reason}
	var tsErr error
	extra := func(idx int64, w ledger.Writer) error {
		for _, k := range keys {
			if err := w.Delete(k); err != nil {
				return err
			}
		}
		ts.EraseIndex = idx
		v, err := json.Marshal(ts)
		if err != nil {
			tsErr = err
			return err
		}
		if err := w.Set(tombKey(i), v); err != nil {
			return err
		}
		return w.Set(lifeKey(lifePurge, idx), encodeRanges(ranges))
	}
	// received_at of the erase event is the erasure's time.
	now := l.now()
	ts.ErasedAt = now.UTC()
	if _, err := l.appendAt(ctx, now, by, []event.Event{ev}, extra); err != nil {
		if tsErr != nil {
			err = tsErr
		}
		return Tombstone{}, fmt.Errorf("events: recording the erasure of event %d: %w", i, err)
	}
	l.erasures.Add(1)
	l.addPurge(ts.EraseIndex)
	if a := r.Event.Actor; a != nil {
		l.blind.forget(fieldActor, a.ID)
	}
	if res := r.Event.Resource; res != nil {
		l.blind.forget(fieldResource, res.ID)
	}
	l.logger.Info("events: erased", "index", i, "by", by, "erase_index", ts.EraseIndex)
	if err := l.purge(ctx, ts.EraseIndex, ranges); err != nil {
		return ts, err
	}
	return ts, nil
}

// purge makes the deleted keys in ranges gone from the store's files (see
// ledger.Log.PurgeExt), then drops the pending-purge record seq, which was
// written in the same batch as the deletions: a purge cut short (a client
// that gave up, a long reader holding old files, a crash) leaves the record,
// and the background purger (purgeLoop) retries it until it succeeds, on
// this run and after a restart. Lifecycle reports the purges pending.
func (l *Layer) purge(ctx context.Context, seq int64, ranges [][2][]byte) error {
	if err := l.log.PurgeExt(ctx, ranges); err != nil {
		l.logger.Warn("events: purge of destroyed bytes incomplete; retried in the background", "seq", seq, "err", err)
		l.kickPurger()
		return fmt.Errorf("events: purging destroyed bytes: %w", err)
	}
	if err := l.log.WriteExt(func(w ledger.Writer) error { return w.Delete(lifeKey(lifePurge, seq)) }); err != nil {
		l.kickPurger()
		return fmt.Errorf("events: dropping a purge record: %w", err)
	}
	l.lmu.Lock()
	delete(l.purges, seq)
	l.lmu.Unlock()
	return nil
}

// addPurge notes the pending-purge record seq, just committed.
func (l *Layer) addPurge(seq int64) {
	l.lmu.Lock()
	l.purges[seq] = true
	l.lmu.Unlock()
}

// kickPurger wakes the background purger.
func (l *Layer) kickPurger() {
	select {
	case l.purgeKick <- struct{}{}:
	default:
	}
}

// Background purge retries: the first after purgeRetryMin, doubling up to
// purgeRetryMax while a purge keeps failing.
const (
	purgeRetryMin = time.Second
	purgeRetryMax = time.Minute
)

// stopContext returns a context that ends when the layer is closed (or
// when cancel is called): the background loops' context.
func (l *Layer) stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// purgeLoop runs the pending purges (at once if now, those an earlier run
// left; then purgeRetryMin after a purge was cut short) until none is left,
// retrying failures with backoff, until the layer is closed.
func (l *Layer) purgeLoop(now bool) {
	defer l.wg.Done()
	ctx, cancel := l.stopContext()
	defer cancel()
	delay := purgeRetryMin
	var retry <-chan time.Time
	if now {
		retry = time.After(0)
	}
	for {
		select {
		case <-l.stop:
			return
		case <-l.purgeKick:
			if retry == nil { // a failure just now: give the reader or the client time
				retry = time.After(delay)
			}
			continue
		case <-retry:
		}
		retry = nil
		if err := l.resumePurges(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.logger.Warn("events: background purge incomplete; retrying", "in", delay, "err", err)
			retry = time.After(delay)
			delay = min(2*delay, purgeRetryMax)
			continue
		}
		delay = purgeRetryMin
	}
}

// resumePurges runs every pending purge (those a crash or an error
// interrupted), and returns the first error, if any, once all were tried.
func (l *Layer) resumePurges(ctx context.Context) error {
	type pending struct {
		seq    int64
		ranges [][2][]byte
	}
	var todo []pending
	var ferr error
	err := l.log.ScanExt(lifeKey(lifePurge, 0), lifeKey(lifePurge+1, 0), false, func(k, v []byte) bool {
		rs, err := decodeRanges(v)
		if err != nil || len(k) != 10 {
			ferr = fmt.Errorf("%w: purge record %x", ErrCorrupt, k)
			return false
		}
		todo = append(todo, pending{int64(binary.BigEndian.Uint64(k[2:])), rs})
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	var first error
	for _, p := range todo {
		if err := l.purge(ctx, p.seq, p.ranges); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// encodeRanges encodes key ranges as len(2) lo len(2) hi ... .
func encodeRanges(rs [][2][]byte) []byte {
	var b []byte
	for _, r := range rs {
		for _, k := range r {
			b = binary.BigEndian.AppendUint16(b, uint16(len(k)))
			b = append(b, k...)
		}
	}
	return b
}

func decodeRanges(b []byte) ([][2][]byte, error) {
	var out [][2][]byte
	for len(b) > 0 {
		var r [2][]byte
		for j := range r {
			if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
				return nil, errors.New("truncated")
			}
			n := int(binary.BigEndian.Uint16(b))
			r[j] = append([]byte(nil), b[2:2+n]...)
			b = b[2+n:]
		}
		out = append(out, r)
	}
	return out, nil
}
