package events

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"indelible.dev/event"
	"indelible.dev/ledger"
)

// batch is one request's writes, ready to append: every key and value is
// computed, and the keys are sorted, before the entries are queued, so the
// sequencer only fills in indexes and copies bytes (and pebble's memtable
// inserts the run in key order, its cheap case).
type batch struct {
	l        *Layer
	dk       *dayKey                                  // the day key the payloads are sealed under
	writeDay bool                                     // also write the day's wrapped key
	ops      []write                                  // in key order
	size     int                                      // bytes of keys and values
	extra    func(index int64, w ledger.Writer) error // more writes (erasure, retention), after the events'
}

// write is one Set. Keys whose last 8 bytes are an index hold a zero
// placeholder until the sequencer assigns the index: placeholders compare
// equal, and ties sort by event, so the order found before sequencing is
// the order after (indexes grow with the event's position).
type write struct {
	key, val []byte
	ev       int32 // position of the event (its entry) in the request
	valIndex bool  // the value, not the key's last 8 bytes, is the index
}

func compareWrites(a, b write) int {
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c
	}
	return cmp.Compare(a.ev, b.ev)
}

// writeRuns sorts a request's writes by key. Each kind of key is a run of
// its own, and the runs' order is the prefixes' ('d' < 'f' < 'p' < 't', 'f'
// by field), so only within a run is there anything to sort: 'p' keys
// arrive sorted (one placeholder, ties by event), 't' keys usually (events
// come roughly in time order), 'f' keys not (blind values are random).
// Sorting a few short runs costs about half of sorting them as one.
type writeRuns [numFields + 3][]write // 'd', 'f' by field (1..numFields), 'p', 't'

func (r *writeRuns) add(w write) {
	switch w.key[0] {
	case prefixIdem:
		r[0] = append(r[0], w)
	case prefixField:
		r[w.key[1]] = append(r[w.key[1]], w)
	case prefixPayload:
		r[numFields+1] = append(r[numFields+1], w)
	case prefixTime:
		r[numFields+2] = append(r[numFields+2], w)
	default:
		panic(fmt.Sprintf("events: write of unexpected key kind %q", w.key[0]))
	}
}

func (r *writeRuns) sorted(capacity int) []write {
	out := make([]write, 0, capacity)
	for _, run := range r {
		if !slices.IsSortedFunc(run, compareWrites) {
			slices.SortFunc(run, compareWrites)
		}
		out = append(out, run...)
	}
	return out
}

// sidecar adds the request's writes to the log's batch: AppendBatch calls
// it on the sequencer's goroutine once the entries have their indexes.
func (b *batch) sidecar(indexes []int64, w ledger.Writer) error {
	if b.writeDay {
		if err := w.Set(dayKeyKey(b.dk.day), b.dk.wrapped); err != nil {
			return err
		}
	}
	// Record where, in index order, the day of the payloads changes: a
	// day's events are then the index ranges retention shreds. Sidecars run
	// one at a time, in index order, on the sequencer's goroutine, and a
	// request's payloads are all of one day.
	if b.dk.day != b.l.seqDay.Load() {
		if err := w.Set(switchKey(indexes[0]), binary.BigEndian.AppendUint64(nil, uint64(b.dk.day))); err != nil {
			return err
		}
		b.l.seqDay.Store(b.dk.day)
	}
	for i := range b.ops {
		op := &b.ops[i]
		idx := uint64(indexes[op.ev])
		if op.valIndex {
			binary.BigEndian.PutUint64(op.val, idx)
		} else {
			binary.BigEndian.PutUint64(op.key[len(op.key)-indexSize:], idx)
		}
		if err := w.Set(op.key, op.val); err != nil {
			return err
		}
	}
	if b.extra != nil {
		return b.extra(indexes[0], w)
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
	commitments := make([][32]byte, n)
	entries := make([]ledger.Entry, n)
	pos := make([]int, n) // event position of each entry
	// Every key of the request in one arena: 'p', 't', up to four 'f', and
	// 'd' with its 8-byte value.
	const maxKeys = 2 + int(numFields)
	arena := make([]byte, 0, n*(1+indexSize+maxIndexKeyBytes+1+blindSize+indexSize))
	keys := make([][]byte, 0, maxKeys)
	b := &batch{l: l, dk: day, extra: extra}
	var runs writeRuns
	b.writeDay = !day.durable.Load()
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
		c := &commitments[k]
		var salt [event.SaltSize]byte
		copy(salt[:], salts[k*event.SaltSize:])
		*c = event.Commitment(salt, bytes[i])
		var tk [timeKeySize]byte
		appendTimeKey(tk[:0], evs[i].Time)
		payload, wrapped, err := day.seal(ctr+uint64(k), ekeys[k*dataKeySize:(k+1)*dataKeySize], &tk, &salt, bytes[i], c)
		if err != nil {
			return nil, err
		}
		ev := int32(k)
		s := len(arena)
		arena = append(arena, prefixPayload)
		arena = append(arena, make([]byte, indexSize)...)
		runs.add(write{key: arena[s:len(arena):len(arena)], val: payload, ev: ev})
		var outcome []byte
		arena, keys, outcome = l.appendIndexKeys(arena, keys[:0], &evs[i])
		// The 't' key's value: the wrapped event key, then the outcome's
		// blind value if any (seal leaves room for it in wrapped).
		runs.add(write{key: keys[0], val: append(wrapped, outcome...), ev: ev})
		for _, fk := range keys[1:] {
			runs.add(write{key: fk, ev: ev})
		}
		if evs[i].ID != "" {
			s := len(arena)
			arena = append(arena, prefixIdem)
			arena = append(arena, ik[:]...)
			arena = append(arena, make([]byte, indexSize)...)
			runs.add(write{key: arena[s : s+1+blindSize : s+1+blindSize], val: arena[s+1+blindSize : len(arena) : len(arena)], ev: ev, valIndex: true})
		}
		entries[k] = ledger.Entry{Data: c[:]}
		pos[k] = i
		k++
	}
	if n > 0 {
		b.ops = runs.sorted(n * maxKeys)
		for _, op := range b.ops {
			b.size += len(op.key) + len(op.val) + 8
		}
		// The entries must not be abandoned half-way: a cancelled context
		// would let this call return (and release the ids) while the batch
		// may still commit. The wait is bounded by one commit.
		idx, err := l.log.AppendBatch(context.WithoutCancel(ctx), entries, b.sidecar, b.size)
		if err != nil {
			return nil, fmt.Errorf("events: appending: %w", err)
		}
		day.durable.Store(true)
		for j, i := range pos {
			out[i].Index = idx[j]
		}
		if f := l.committed.Load(); f != nil {
			for j, i := range pos {
				(*f)(idx[j], &evs[i], bytes[i])
			}
		}
	}
	for i := range evs {
		if j := skip[i]; j >= 0 {
			out[i].Index, out[i].Duplicate = out[j].Index, true
		}
	}
	return out, nil
}

// maxIndexKeyBytes bounds what appendIndexKeys appends.
const maxIndexKeyBytes = 1 + timeKeySize + indexSize + int(numFields)*(2+blindSize+timeKeySize+indexSize)

// indexKeys returns the event's 't' key and its 'f' keys, in one
// allocation, each ending with the index placeholder, and the 't' key's
// value. The outcome has no 'f' key: its blind value is the 't' key's value
// (four outcomes would make four huge postings; a scan of the time index
// filters on the value instead, without decrypting).
func (l *Layer) indexKeys(e *event.Event) (keys [][]byte, tval []byte) {
	_, keys, tval = l.appendIndexKeys(make([]byte, 0, maxIndexKeyBytes), make([][]byte, 0, 1+numFields), e)
	return keys, tval
}

// appendIndexKeys is indexKeys appending the keys' bytes to arena and the
// keys to keys.
func (l *Layer) appendIndexKeys(arena []byte, keys [][]byte, e *event.Event) ([]byte, [][]byte, []byte) {
	var vals [numFields + 1]string
	if e.Actor != nil {
		vals[fieldActor] = e.Actor.ID
	}
	vals[fieldAction] = e.Action
	if e.Resource != nil {
		vals[fieldResource] = e.Resource.ID
	}
	vals[fieldSource] = e.Source
	var tval []byte
	if e.Outcome != "" {
		b := l.blind.field(fieldOutcome, e.Outcome)
		tval = b[:]
	}
	var tk [timeKeySize]byte
	appendTimeKey(tk[:0], e.Time)
	s := len(arena)
	arena = append(arena, prefixTime)
	arena = append(arena, tk[:]...)
	arena = append(arena, make([]byte, indexSize)...)
	keys = append(keys, arena[s:len(arena):len(arena)])
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
	return arena, keys, tval
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
