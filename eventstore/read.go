package eventstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"indelible.dev/event"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

// record returns the record at index i from its payload value v.
func (l *Layer) record(i int64, v []byte) (Record, error) {
	c, err := l.entry(i)
	if err != nil {
		return Record{}, err
	}
	return l.recordOf(i, v, c, nil)
}

// entry returns log entry i, or ErrNotFound if it is not published.
func (l *Layer) entry(i int64) ([]byte, error) {
	c, err := l.log.Entry(i)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("%w: index %d", ErrNotFound, i)
	}
	if err != nil {
		return nil, fmt.Errorf("events: reading log entry %d: %w", i, err)
	}
	return c, nil
}

// recordOf returns the record at index i from its payload v and log entry
// c; tval is its 't' value if the caller has it (nil: it is read).
func (l *Layer) recordOf(i int64, v, c, tval []byte) (Record, error) {
	if len(c) != 32 {
		return Record{}, fmt.Errorf("%w: payload at index %d, whose log entry is %d bytes", ErrCorrupt, i, len(c))
	}
	salt, b, err := l.openPayload(i, v, c, tval)
	if errors.Is(err, errKeyGone) {
		day, _, _ := payloadDay(v)
		if g := l.gone(i, day, true); g != nil {
			return Record{}, g
		}
	}
	if err != nil {
		return Record{}, fmt.Errorf("events: event %d: %w", i, err)
	}
	r := Record{Index: i, EventBytes: b, Salt: salt}
	r.Commitment = event.Commitment(salt, b)
	if string(r.Commitment[:]) != string(c) {
		return Record{}, fmt.Errorf("%w: event %d does not match its log entry", ErrCorrupt, i)
	}
	if r.Event, err = event.Decode(b); err != nil {
		return Record{}, fmt.Errorf("%w: event %d: %w", ErrCorrupt, i, err)
	}
	return r, nil
}

func (l *Layer) get(i int64) (Record, error) {
	if l.closed.Load() {
		return Record{}, ErrClosed
	}
	if i < 0 {
		return Record{}, fmt.Errorf("%w: index %d", ErrNotFound, i)
	}
	// The log entry first: it bounds reads by the published size.
	c, err := l.entry(i)
	if err != nil {
		return Record{}, err
	}
	v, err := l.log.GetExt(payloadKey(i))
	if errors.Is(err, ledger.ErrNotFound) {
		if g := l.gone(i, 0, false); g != nil {
			return Record{}, g
		}
		return Record{}, fmt.Errorf("%w: index %d", ErrNotEvent, i)
	}
	if err != nil {
		return Record{}, fmt.Errorf("events: reading event %d: %w", i, err)
	}
	return l.recordOf(i, v, c, nil)
}

func (l *Layer) receipt(i int64, cp itlog.Checkpoint, signed []byte) ([]byte, error) {
	if i >= cp.N {
		return nil, fmt.Errorf("%w: no published checkpoint covers index %d yet", ErrNotFound, i)
	}
	r, err := l.get(i)
	if err != nil {
		return nil, err
	}
	proof, err := l.log.InclusionProof(i, cp.N)
	if err != nil {
		return nil, fmt.Errorf("events: proving event %d in tree size %d: %w", i, cp.N, err)
	}
	rc := itlog.Receipt{
		Extra:      event.Opening{Salt: r.Salt, Bytes: r.EventBytes}.Encode(),
		Index:      i,
		Proof:      proof,
		Checkpoint: signed,
	}
	return []byte(rc.String()), nil
}

func (l *Layer) waitReceipts(ctx context.Context, indexes []int64) ([][]byte, error) {
	if len(indexes) == 0 {
		return [][]byte{}, nil
	}
	m := indexes[0]
	for _, i := range indexes {
		m = max(m, i)
	}
	cp, signed, err := l.log.WaitSize(ctx, m+1)
	if err != nil {
		return nil, fmt.Errorf("events: waiting for a checkpoint: %w", err)
	}
	return l.receipts(indexes, cp, signed)
}

// receipts returns receipt(i, cp, signed) for each of indexes (repeats
// allowed), in that order, or the error receipt would return for the first
// index that has one; but it reads the store in a few sorted multi-gets for
// the whole request (the events' payloads, their time-index values, their
// entry bundles, the proofs' tiles), each record once, instead of several
// point reads per event: on PostgreSQL each point read is a round trip, and
// those capped POST-to-checkpoint near 2,000 events/s (BENCHMARKS.md,
// issue 20).
func (l *Layer) receipts(indexes []int64, cp itlog.Checkpoint, signed []byte) ([][]byte, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	for _, i := range indexes {
		if i >= cp.N {
			return nil, fmt.Errorf("%w: no published checkpoint covers index %d yet", ErrNotFound, i)
		}
		if i < 0 {
			return nil, fmt.Errorf("%w: index %d", ErrNotFound, i)
		}
	}
	uniq := slices.Clone(indexes)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	keys := make([][]byte, len(uniq))
	for k, i := range uniq {
		keys[k] = payloadKey(i)
	}
	// The payloads: those not stored are settled below (gone or written by
	// no event), as get does.
	items := make([]streamItem, 0, len(uniq))
	if err := l.log.GetExtSorted(keys, func(k int, v []byte) {
		items = append(items, streamItem{uniq[k], bytes.Clone(v)})
	}); err != nil {
		return nil, fmt.Errorf("events: reading events %d to %d: %w", uniq[0], uniq[len(uniq)-1], err)
	}
	recs := make(map[int64]Record, len(uniq))
	errs := map[int64]error{}
	if len(items) > 0 {
		ents, tvals, err := l.chunkInputs(items)
		if err != nil {
			return nil, err
		}
		for k, it := range items {
			r, err := l.recordOf(it.i, it.v, ents[k], tvals[k])
			if err != nil {
				errs[it.i] = err
				continue
			}
			recs[it.i] = r
		}
	}
	for _, i := range uniq {
		if _, ok := recs[i]; ok || errs[i] != nil {
			continue
		}
		if g := l.gone(i, 0, false); g != nil {
			errs[i] = g
		} else {
			errs[i] = fmt.Errorf("%w: index %d", ErrNotEvent, i)
		}
	}
	for _, i := range indexes {
		if err := errs[i]; err != nil {
			return nil, err
		}
	}
	proofs, err := l.log.InclusionProofs(uniq, cp.N)
	if err != nil {
		return nil, fmt.Errorf("events: proving events %d to %d in tree size %d: %w", uniq[0], uniq[len(uniq)-1], cp.N, err)
	}
	out := make([][]byte, len(indexes))
	for k, i := range indexes {
		r := recs[i]
		j, _ := slices.BinarySearch(uniq, i)
		rc := itlog.Receipt{
			Extra:      event.Opening{Salt: r.Salt, Bytes: r.EventBytes}.Encode(),
			Index:      i,
			Proof:      proofs[j],
			Checkpoint: signed,
		}
		out[k] = []byte(rc.String())
	}
	return out, nil
}

// streamChunk bounds the payloads a stream reads in one scan.
const streamChunk = 256

func (l *Layer) stream(ctx context.Context, q Query, after int64, send func(Record) error) error {
	f, err := l.compile(q)
	if err != nil {
		return err
	}
	// A resume point past the published log is no event a stream could
	// have sent; refusing it also keeps next+1 from overflowing below.
	if pub, _ := l.log.Published(); after >= pub.N {
		return fmt.Errorf("%w: resume after index %d, but the log has %d events", ErrBadCursor, after, pub.N)
	}
	next := max(after+1, 0)
	buf := make([]streamItem, 0, streamChunk)
	for {
		if l.closed.Load() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		cp, _, err := l.log.WaitSize(ctx, next+1)
		if err != nil {
			return err
		}
		for next < cp.N {
			buf = buf[:0]
			erasures := l.erasures.Load()
			err := l.log.ScanExt(payloadKey(next), payloadKey(cp.N), false, func(k, v []byte) bool {
				buf = append(buf, streamItem{int64(binary.BigEndian.Uint64(k[1:])), append([]byte(nil), v...)})
				return len(buf) < streamChunk
			})
			if err != nil {
				return fmt.Errorf("events: scanning events: %w", err)
			}
			if len(buf) == 0 {
				next = cp.N // entries written by no event
				break
			}
			ents, tvals, err := l.chunkInputs(buf)
			if err != nil {
				return err
			}
			for k, it := range buf {
				if l.erasures.Load() != erasures {
					// An erasure since the scan (while an event was
					// sent): this payload's copy may be of an event gone
					// from the store.
					if _, err := l.log.GetExt(payloadKey(it.i)); errors.Is(err, ledger.ErrNotFound) {
						next = it.i + 1
						continue
					} else if err != nil {
						return fmt.Errorf("events: reading event %d: %w", it.i, err)
					}
				}
				r, err := l.recordOf(it.i, it.v, ents[k], tvals[k])
				if errors.Is(err, ErrGone) {
					next = it.i + 1 // erased or shredded since the scan
					continue
				}
				if err != nil {
					return err
				}
				if f.match(&r.Event) {
					if err := send(r); err != nil {
						return err
					}
				}
				next = it.i + 1
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
}
