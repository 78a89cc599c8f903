package eventstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"indelible.dev/event"
	"indelible.dev/ledger"
)

// shredRange is an index range [Lo, Hi) of one shredded UTC day.
type shredRange struct{ Day, Lo, Hi int64 }

// shreddedRecord is the value of 'r' 'x' day: what retention did to a day.
type shreddedRecord struct {
	Day            string     `json:"day"`
	ShreddedAt     time.Time  `json:"shredded_at"`
	Ranges         [][2]int64 `json:"ranges"` // index ranges [lo, hi) of the day's events
	RetentionIndex int64      `json:"retention_index"`
}

// segment is a run of indexes [lo, hi) whose payloads are of one day.
type segment struct{ day, lo, hi int64 }

// openLifecycle loads what retention shredded or is shredding, writes the
// day-switch records a store written before they existed lacks, and
// finishes the purges a crash interrupted.
func (l *Layer) openLifecycle() error {
	var ferr error
	err := l.log.ScanExt([]byte{prefixLife}, []byte{prefixLife + 1}, false, func(k, v []byte) bool {
		if len(k) != 10 {
			ferr = fmt.Errorf("%w: lifecycle key %x", ErrCorrupt, k)
			return false
		}
		day := int64(binary.BigEndian.Uint64(k[2:]))
		switch k[1] {
		case lifeShedding:
			l.shedding[day] = true
		case lifePurge:
			l.purges[day] = true // here the key's number is the record's seq
		case lifeShredded:
			var rec shreddedRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				ferr = fmt.Errorf("%w: shredded-day record of day %d: %w", ErrCorrupt, day, err)
				return false
			}
			for _, r := range rec.Ranges {
				l.shredded = append(l.shredded, shredRange{day, r[0], r[1]})
			}
		}
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("events: reading the lifecycle state: %w", err)
	}
	l.sheddingAny.Store(len(l.shedding) > 0)
	return l.backfillSwitches()
}

// backfillSwitches writes the day-switch records of payloads stored before
// the layer wrote them (a store of an earlier version): it reads the day in
// the header of each payload below the first switch record, once.
func (l *Layer) backfillSwitches() error {
	first := int64(math.MaxInt64)
	if err := l.log.ScanExt(lifeKey(lifeSwitch, 0), lifeKey(lifeSwitch+1, 0), false, func(k, _ []byte) bool {
		first = int64(binary.BigEndian.Uint64(k[2:]))
		return false
	}); err != nil {
		return fmt.Errorf("events: reading day switches: %w", err)
	}
	hi := []byte{prefixPayload + 1}
	if first != math.MaxInt64 {
		hi = payloadKey(first)
	}
	type sw struct{ i, day int64 }
	var sws []sw
	last := int64(math.MinInt64)
	var ferr error
	if err := l.log.ScanExt([]byte{prefixPayload}, hi, false, func(k, v []byte) bool {
		day, _, err := payloadDay(v)
		if err != nil {
			ferr = err
			return false
		}
		if day != last {
			sws = append(sws, sw{int64(binary.BigEndian.Uint64(k[1:])), day})
			last = day
		}
		return true
	}); err != nil {
		return fmt.Errorf("events: scanning payloads for their days: %w", err)
	}
	if ferr != nil {
		return ferr
	}
	if len(sws) == 0 {
		return nil
	}
	return l.log.WriteExt(func(w ledger.Writer) error {
		for _, s := range sws {
			if err := w.Set(switchKey(s.i), binary.BigEndian.AppendUint64(nil, uint64(s.day))); err != nil {
				return err
			}
		}
		return nil
	})
}

// segments returns the day runs of the indexes below n, in index order.
func (l *Layer) segments(n int64) ([]segment, error) {
	var out []segment
	err := l.log.ScanExt(lifeKey(lifeSwitch, 0), lifeKey(lifeSwitch, n), false, func(k, v []byte) bool {
		i := int64(binary.BigEndian.Uint64(k[2:]))
		if len(out) > 0 {
			out[len(out)-1].hi = i
		}
		out = append(out, segment{day: int64(binary.BigEndian.Uint64(v)), lo: i, hi: n})
		return true
	})
	return out, err
}

func (l *Layer) retentionLoop(every time.Duration) {
	defer l.wg.Done()
	ctx, cancel := l.stopContext()
	defer cancel()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if days, err := l.Retain(ctx); err != nil {
			if ctx.Err() == nil {
				l.logger.Error("events: retention", "err", err)
			}
		} else if len(days) > 0 {
			l.logger.Info("events: retention shredded days", "days", len(days))
		}
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
	}
}

// MaxClockLead is how far past the newest event's received_at the clock may
// be before retention stops trusting it: a clock that jumped forward would
// otherwise shred days not yet past retention. Past it, a pass shreds only
// what was due at the newest event's received_at plus MaxClockLead; a sane
// clock (or a new event) lifts the hold.
const MaxClockLead = 24 * time.Hour

// Retain shreds every UTC day (of the server's receive time) entirely
// older than the configured retention, and returns those days. For each
// day, in three steps:
//
//  1. the day is marked as being shredded ('r' 'q' day) and its events'
//     index and idempotency keys are deleted, a batch per chunk of events
//     (each event is opened to find its keys; an event whose time key is
//     already gone was done by an earlier, interrupted pass);
//  2. in one batch with the indelible.retention event (actor and submitter
//     "indelible", metadata {"days": [...]}), the day's data key and
//     payloads are deleted and the day is recorded as shredded ('r' 'x');
//  3. the deleted bytes are purged from the store's files (see purge).
//
// "Now" is the clock's time, but at most MaxClockLead past the newest
// event's received_at (the hold is logged and counted in Lifecycle). Days
// a crash left half-shredded (marked in step 1) are finished whatever the
// clock says. Without Config.Retention it does nothing (Open still finishes
// half-shredded days).
func (l *Layer) Retain(ctx context.Context) ([]time.Time, error) {
	if l.retention <= 0 {
		return nil, nil
	}
	return l.retain(ctx, false)
}

// finishShedding finishes the days a retention pass that a crash
// interrupted left marked as being shredded (Open runs it in the
// background, with or without Config.Retention).
func (l *Layer) finishShedding() {
	defer l.wg.Done()
	ctx, cancel := l.stopContext()
	defer cancel()
	days, err := l.retain(ctx, true)
	switch {
	case err != nil && ctx.Err() == nil:
		l.logger.Error("events: finishing an interrupted retention pass", "err", err)
	case err == nil:
		l.logger.Info("events: finished an interrupted retention pass", "days", len(days))
	}
}

// retain is Retain; onlyShedding limits it to the days marked as being
// shredded.
func (l *Layer) retain(ctx context.Context, onlyShedding bool) ([]time.Time, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	l.emu.Lock()
	defer l.emu.Unlock()
	now := l.now()
	cp, _ := l.log.Published()
	cutoff := int64(math.MinInt64)
	if !onlyShedding {
		asOf, err := l.retentionNow(now, cp.N)
		if err != nil {
			return nil, err
		}
		cutoff = dayOf(asOf.Add(-l.retention)) // days below it ended retention ago or earlier
	}
	segs, err := l.segments(cp.N)
	if err != nil {
		return nil, fmt.Errorf("events: reading day switches: %w", err)
	}
	byDay := map[int64][]segment{}
	var days []int64
	l.lmu.RLock()
	for _, s := range segs {
		if !(s.day < cutoff || l.shedding[s.day]) || s.lo >= s.hi || l.isShredded(s.day) {
			continue
		}
		if byDay[s.day] == nil {
			days = append(days, s.day)
		}
		byDay[s.day] = append(byDay[s.day], s)
	}
	l.lmu.RUnlock()
	if len(days) == 0 {
		return nil, nil
	}
	slices.Sort(days)

	// 1. Index and idempotency keys.
	if err := l.log.WriteExt(func(w ledger.Writer) error {
		for _, d := range days {
			if err := w.Set(lifeKey(lifeShedding, d), nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("events: marking days for shredding: %w", err)
	}
	l.lmu.Lock()
	for _, d := range days {
		l.shedding[d] = true
	}
	l.sheddingAny.Store(true)
	l.lmu.Unlock()
	for _, d := range days {
		for _, s := range byDay[d] {
			if err := l.dropIndexKeys(ctx, s); err != nil {
				return nil, err
			}
		}
	}

	// 2. Day keys and payloads, with the retention event.
	names := make([]string, len(days))
	for j, d := range days {
		names[j] = dayTime(d).Format(time.DateOnly)
	}
	meta, err := json.Marshal(map[string]any{"days": names})
	if err != nil {
		return nil, fmt.Errorf("events: encoding retention metadata: %w", err)
	}
	ev := event.Event{
		Actor:    &event.Actor{ID: ServerActor},
		Action:   ActionRetention,
		Outcome:  "success",
		Source:   ServerActor,
		Metadata: meta,
	}
	var ranges [][2][]byte
	for _, d := range days {
		ranges = append(ranges, pointRange(dayKeyKey(d)))
		for _, s := range byDay[d] {
			ranges = append(ranges, [2][]byte{payloadKey(s.lo), payloadKey(s.hi)})
		}
	}
	var seq int64
	extra := func(idx int64, w ledger.Writer) error {
		seq = idx
		for j, d := range days {
			rec := shreddedRecord{Day: names[j], ShreddedAt: now.UTC(), RetentionIndex: idx}
			for _, s := range byDay[d] {
				rec.Ranges = append(rec.Ranges, [2]int64{s.lo, s.hi})
				if err := w.DeleteRange(payloadKey(s.lo), payloadKey(s.hi)); err != nil {
					return err
				}
			}
			v, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if err := w.Delete(dayKeyKey(d)); err != nil {
				return err
			}
			if err := w.Delete(lifeKey(lifeShedding, d)); err != nil {
				return err
			}
			if err := w.Set(lifeKey(lifeShredded, d), v); err != nil {
				return err
			}
		}
		return w.Set(lifeKey(lifePurge, idx), encodeRanges(ranges))
	}
	if _, err := l.appendAt(ctx, now, ServerActor, []event.Event{ev}, extra); err != nil {
		return nil, fmt.Errorf("events: recording retention: %w", err)
	}
	l.addPurge(seq)
	l.blind.forgetIDs()
	l.lmu.Lock()
	for _, d := range days {
		delete(l.shedding, d)
		for _, s := range byDay[d] {
			l.shredded = append(l.shredded, shredRange{d, s.lo, s.hi})
		}
	}
	l.sheddingAny.Store(len(l.shedding) > 0)
	l.lmu.Unlock()
	l.dmu.Lock()
	for _, d := range days {
		delete(l.days, d)
	}
	l.dmu.Unlock()

	// 3. Purge.
	out := make([]time.Time, len(days))
	for j, d := range days {
		out[j] = dayTime(d)
	}
	if err := l.purge(ctx, seq, ranges); err != nil {
		return out, err
	}
	return out, nil
}

// retentionNow returns the time a retention pass at now shreds as of: now,
// or, when now is more than MaxClockLead past the received_at of the
// newest event below n (a clock that jumped forward), that received_at plus
// MaxClockLead. It records the hold (Lifecycle) and logs it.
func (l *Layer) retentionNow(now time.Time, n int64) (time.Time, error) {
	newest, ok, err := l.newestReceived(n)
	if err != nil {
		return time.Time{}, err
	}
	ahead := time.Duration(0)
	if ok && now.Sub(newest) > MaxClockLead {
		ahead = now.Sub(newest)
	}
	l.lmu.Lock()
	l.clockAhead = ahead
	if ahead > 0 {
		l.clockHeld++
	}
	l.lmu.Unlock()
	if ahead == 0 {
		return now, nil
	}
	asOf := newest.Add(MaxClockLead)
	l.logger.Warn("events: retention: the clock is more than a day past the newest event; shredding only what was due a day after that event (a clock that jumped forward must not shred days still within retention)",
		"now", now.UTC(), "newest_received_at", newest.UTC(), "ahead", ahead, "as_of", asOf.UTC())
	return asOf, nil
}

// newestReceived returns the received_at of the newest readable event
// below index n (false if there is none).
func (l *Layer) newestReceived(n int64) (time.Time, bool, error) {
	var idx []int64
	if err := l.log.ScanExt([]byte{prefixPayload}, payloadKey(n), true, func(k, _ []byte) bool {
		idx = append(idx, int64(binary.BigEndian.Uint64(k[1:])))
		return len(idx) < 64
	}); err != nil {
		return time.Time{}, false, fmt.Errorf("events: finding the newest event: %w", err)
	}
	for _, i := range idx {
		r, err := l.get(i)
		if errors.Is(err, ErrGone) {
			continue // a day being shredded
		}
		if err != nil {
			return time.Time{}, false, fmt.Errorf("events: reading the newest event: %w", err)
		}
		return r.Event.ReceivedAt, true, nil
	}
	return time.Time{}, false, nil
}

// isShredded reports whether retention shredded day (lmu held).
func (l *Layer) isShredded(day int64) bool {
	for _, r := range l.shredded {
		if r.Day == day {
			return true
		}
	}
	return false
}

// dropIndexKeys deletes the index and idempotency keys of the events of
// segment s, a batch per chunk.
func (l *Layer) dropIndexKeys(ctx context.Context, s segment) error {
	next := s.lo
	type item struct {
		i int64
		v []byte
	}
	for next < s.hi {
		if err := ctx.Err(); err != nil {
			return err
		}
		var buf []item
		if err := l.log.ScanExt(payloadKey(next), payloadKey(s.hi), false, func(k, v []byte) bool {
			buf = append(buf, item{int64(binary.BigEndian.Uint64(k[1:])), append([]byte(nil), v...)})
			return len(buf) < streamChunk
		}); err != nil {
			return fmt.Errorf("events: scanning day %d: %w", s.day, err)
		}
		if len(buf) == 0 {
			return nil
		}
		var del [][]byte
		for _, it := range buf {
			next = it.i + 1
			// A version-2 payload's key is in its 't' value: without it,
			// the event was done by an interrupted pass. Versions 1 and 3
			// open without it, and the time key is the decrypted event's
			// (keysOf); deleting keys an interrupted pass deleted already
			// does no harm.
			_, tk, err := payloadDay(it.v)
			if err != nil {
				return fmt.Errorf("events: event %d: %w", it.i, err)
			}
			var tval []byte
			if tk != nil {
				tval, err = l.log.GetExt(timeIndexKey(tk, it.i))
				if errors.Is(err, ledger.ErrNotFound) {
					continue // done by an interrupted pass
				}
				if err != nil {
					return fmt.Errorf("events: reading the key of event %d: %w", it.i, err)
				}
			}
			c, err := l.entry(it.i)
			if err != nil {
				return err
			}
			salt, b, err := l.openPayloadAny(it.i, it.v, c, tval)
			if err != nil {
				return fmt.Errorf("events: event %d: %w", it.i, err)
			}
			if cm := event.Commitment(salt, b); string(cm[:]) != string(c) {
				return fmt.Errorf("%w: event %d does not match its log entry", ErrCorrupt, it.i)
			}
			e, err := event.Decode(b)
			if err != nil {
				return fmt.Errorf("%w: event %d: %w", ErrCorrupt, it.i, err)
			}
			ks, err := l.keysOf(it.i, &e)
			if err != nil {
				return err
			}
			del = append(del, ks...)
		}
		if err := l.log.WriteExt(func(w ledger.Writer) error {
			for _, k := range del {
				if k[0] == prefixPayload {
					continue // in step 2, with the day key
				}
				if err := w.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("events: dropping index keys of day %d: %w", s.day, err)
		}
	}
	return nil
}
