package events

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"indelible.dev/event"
	"indelible.dev/ledger"
)

// prepared is one event ready to append: its log entry, its sealed payload,
// and its index keys, each ending with 8 placeholder bytes the Sidecar fills
// with the index once the sequencer assigns it.
type prepared struct {
	commitment [32]byte
	payload    []byte
	keys       [][]byte // the 't' key, then the 'f' keys (value empty)
	tval       []byte   // the 't' key's value: the wrapped event key, then the outcome's blind value if any
	idem       []byte   // 'd' key or nil; its value is the index
	l          *Layer
	dk         *dayKey                                  // the day key the payload is sealed under
	writeDay   bool                                     // also write the day's wrapped key
	extra      func(index int64, w ledger.Writer) error // more writes in the same batch (erasure, retention)
}

// sidecar adds the event's writes to the log's batch. It only copies
// precomputed bytes: everything costly happened before AppendEntries.
func (p *prepared) sidecar(i int64, w ledger.Writer) error {
	var ib [indexSize]byte
	binary.BigEndian.PutUint64(ib[:], uint64(i))
	if p.writeDay {
		if err := w.Set(dayKeyKey(p.dk.day), p.dk.wrapped); err != nil {
			return err
		}
	}
	// Record where, in index order, the day of the payloads changes: a
	// day's events are then the index ranges retention shreds. Sidecars run
	// one at a time, in index order, on the sequencer's goroutine.
	if p.dk.day != p.l.seqDay.Load() {
		if err := w.Set(switchKey(i), binary.BigEndian.AppendUint64(nil, uint64(p.dk.day))); err != nil {
			return err
		}
		p.l.seqDay.Store(p.dk.day)
	}
	pk := [1 + indexSize]byte{prefixPayload}
	copy(pk[1:], ib[:])
	if err := w.Set(pk[:], p.payload); err != nil {
		return err
	}
	for j, k := range p.keys {
		copy(k[len(k)-indexSize:], ib[:])
		var v []byte
		if j == 0 {
			v = p.tval
		}
		if err := w.Set(k, v); err != nil {
			return err
		}
	}
	if p.idem != nil {
		if err := w.Set(p.idem, ib[:]); err != nil {
			return err
		}
	}
	if p.extra != nil {
		return p.extra(i, w)
	}
	return nil
}

func (l *Layer) append(ctx context.Context, submittedBy string, evs []event.Event) ([]Appended, error) {
	return l.appendAt(ctx, l.now(), submittedBy, evs, nil)
}

// appendAt is append at time now, with extra called in the batch of the
// first event appended (after that event's own writes).
func (l *Layer) appendAt(ctx context.Context, now time.Time, submittedBy string, evs []event.Event, extra func(int64, ledger.Writer) error) ([]Appended, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	if len(submittedBy) > 0xffff {
		return nil, fmt.Errorf("events: submitter name of %d bytes", len(submittedBy))
	}
	if len(evs) == 0 {
		return []Appended{}, nil
	}
	out := make([]Appended, len(evs))
	bytes := make([][]byte, len(evs))
	evs = append([]event.Event(nil), evs...) // the caller's events stay as they were
	for i := range evs {
		e := &evs[i]
		e.Finish(now, submittedBy)
		b, err := event.Canonical(*e)
		if err != nil {
			var ee *event.Error
			if errors.As(err, &ee) {
				c := *ee
				c.Position = i
				return nil, &c
			}
			return nil, fmt.Errorf("events: encoding event %d: %w", i, err)
		}
		bytes[i] = b
		out[i].ID = e.ID
	}

	// Idempotency: claim the request's ids (so a concurrent duplicate waits
	// for this append to finish), then look each up. The first occurrence
	// of an id in the request is the one appended.
	var idem [][blindSize]byte
	first := map[[blindSize]byte]int{}
	skip := make([]int, len(evs)) // -1: append; else: same as that position, or the stored index (dupStored)
	for i := range evs {
		skip[i] = -1
		if evs[i].ID == "" {
			continue
		}
		k := l.blind.idem(submittedBy, evs[i].ID)
		if j, ok := first[k]; ok {
			skip[i] = j
			continue
		}
		first[k] = i
		idem = append(idem, k)
	}
	release, err := l.claim(ctx, idem)
	if err != nil {
		return nil, err
	}
	defer release()
	stored := map[[blindSize]byte]int64{}
	for _, k := range idem {
		v, err := l.log.GetExt(idemKey(k))
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("events: looking up an id: %w", err)
		}
		if len(v) != indexSize {
			return nil, fmt.Errorf("%w: idempotency record of %d bytes", ErrCorrupt, len(v))
		}
		stored[k] = int64(binary.BigEndian.Uint64(v))
	}

	day, err := l.dayKeyFor(dayOf(now), true)
	if err != nil {
		return nil, err
	}
	n := 0
	for i := range evs {
		if skip[i] < 0 {
			if evs[i].ID != "" {
				if _, ok := stored[l.blind.idem(submittedBy, evs[i].ID)]; ok {
					continue
				}
			}
			n++
		}
	}
	// One draw of randomness for every salt and event key of the request.
	salts := make([]byte, n*(event.SaltSize+dataKeySize))
	if _, err := rand.Read(salts); err != nil {
		return nil, fmt.Errorf("events: drawing salts: %w", err)
	}
	ekeys := salts[n*event.SaltSize:]
	ctr := day.nonces(n)
	preps := make([]prepared, n)
	entries := make([]ledger.Entry, n)
	pos := make([]int, n) // event position of each entry
	k := 0
	for i := range evs {
		if skip[i] >= 0 {
			continue
		}
		var ik [blindSize]byte
		if evs[i].ID != "" {
			ik = l.blind.idem(submittedBy, evs[i].ID)
			if idx, ok := stored[ik]; ok {
				out[i].Index, out[i].Duplicate = idx, true
				continue
			}
		}
		p := &preps[k]
		var salt [event.SaltSize]byte
		copy(salt[:], salts[k*event.SaltSize:])
		p.commitment = event.Commitment(salt, bytes[i])
		var tk [timeKeySize]byte
		appendTimeKey(tk[:0], evs[i].Time)
		var wrapped, outcome []byte
		p.payload, wrapped, err = day.seal(ctr+uint64(k), ekeys[k*dataKeySize:(k+1)*dataKeySize], &tk, &salt, bytes[i], &p.commitment)
		if err != nil {
			return nil, err
		}
		p.keys, outcome = l.indexKeys(&evs[i])
		p.tval = append(wrapped, outcome...)
		if evs[i].ID != "" {
			p.idem = idemKey(ik)
		}
		p.l, p.dk = l, day
		if k == 0 {
			p.writeDay = !day.durable.Load()
			p.extra = extra
		}
		entries[k] = ledger.Entry{Data: p.commitment[:], Sidecar: p.sidecar}
		pos[k] = i
		k++
	}
	if n > 0 {
		// The entries must not be abandoned half-way: a cancelled context
		// would let this call return (and release the ids) while the batch
		// may still commit. The wait is bounded by one commit.
		idx, err := l.log.AppendEntries(context.WithoutCancel(ctx), entries)
		if err != nil {
			return nil, fmt.Errorf("events: appending: %w", err)
		}
		day.durable.Store(true)
		for j, i := range pos {
			out[i].Index = idx[j]
		}
	}
	for i := range evs {
		if j := skip[i]; j >= 0 {
			out[i].Index, out[i].Duplicate = out[j].Index, true
		}
	}
	return out, nil
}

// indexKeys returns the event's 't' key and its 'f' keys, in one
// allocation, each ending with the index placeholder, and the 't' key's
// value. The outcome has no 'f' key: its blind value is the 't' key's value
// (four outcomes would make four huge postings; a scan of the time index
// filters on the value instead, without decrypting).
func (l *Layer) indexKeys(e *event.Event) (keys [][]byte, tval []byte) {
	var vals [numFields + 1]string
	if e.Actor != nil {
		vals[fieldActor] = e.Actor.ID
	}
	vals[fieldAction] = e.Action
	if e.Resource != nil {
		vals[fieldResource] = e.Resource.ID
	}
	vals[fieldSource] = e.Source
	nf := 0
	for f := fieldActor; f <= numFields; f++ {
		if vals[f] != "" {
			nf++
		}
	}
	if e.Outcome != "" {
		b := l.blind.field(fieldOutcome, e.Outcome)
		tval = b[:]
	}
	const tlen = 1 + timeKeySize + indexSize
	const flen = 2 + blindSize + timeKeySize + indexSize
	arena := make([]byte, 0, tlen+nf*flen)
	keys = make([][]byte, 0, 1+nf)
	var tk [timeKeySize]byte
	appendTimeKey(tk[:0], e.Time)
	arena = append(arena, prefixTime)
	arena = append(arena, tk[:]...)
	arena = append(arena, make([]byte, indexSize)...)
	keys = append(keys, arena[:tlen:tlen])
	for f := fieldActor; f <= numFields; f++ {
		if vals[f] == "" {
			continue
		}
		b := l.blind.field(f, vals[f])
		s := len(arena)
		arena = append(arena, prefixField, f)
		arena = append(arena, b[:]...)
		arena = append(arena, tk[:]...)
		arena = append(arena, make([]byte, indexSize)...)
		keys = append(keys, arena[s:len(arena):len(arena)])
	}
	return keys, tval
}

func idemKey(b [blindSize]byte) []byte {
	k := make([]byte, 1+blindSize)
	k[0] = prefixIdem
	copy(k[1:], b[:])
	return k
}

// claim marks the idempotency keys as in flight. If another append holds
// one of them, it releases what it took, waits for that append to finish
// and tries again (never holding one key while waiting for another, so two
// requests cannot deadlock).
func (l *Layer) claim(ctx context.Context, keys [][blindSize]byte) (release func(), err error) {
	if len(keys) == 0 {
		return func() {}, nil
	}
	for {
		l.imu.Lock()
		var busy chan struct{}
		for _, k := range keys {
			if ch, ok := l.inflight[k]; ok {
				busy = ch
				break
			}
		}
		if busy == nil {
			ch := make(chan struct{})
			for _, k := range keys {
				l.inflight[k] = ch
			}
			l.imu.Unlock()
			return func() {
				l.imu.Lock()
				for _, k := range keys {
					delete(l.inflight, k)
				}
				l.imu.Unlock()
				close(ch)
			}, nil
		}
		l.imu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
