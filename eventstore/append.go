package eventstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
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
	// order is key[2:10] as an integer for an 'f' key (0 for the others):
	// within a run of 'f' keys, which share key[:2], it orders the keys
	// as their bytes do, but is compared in one instruction, and the
	// random blind values almost never tie on it (issue 21: the sort was
	// 4% of the ingest's CPU, mostly bytes.Compare).
	order    uint64
	ev       int32 // position of the event (its entry) in the request
	valIndex bool  // the value, not the key's last 8 bytes, is the index
}

// compareWrites orders the writes of one run: by key, ties by event.
func compareWrites(a, b write) int {
	if a.order != b.order {
		return cmp.Compare(a.order, b.order)
	}
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
		out = appendSorted(out, run)
	}
	return out
}

// appendSorted appends run to out in compareWrites order. A run of 'f'
// keys out of order is bucket sorted on its order field: the blind values
// are HMAC outputs, uniform, so the leading bits spread the keys evenly
// over about as many buckets as keys, and sorting the few keys of each
// bucket is all the comparing left (issue 21: a comparison sort of the
// 1,000-key runs was ~4% of the ingest's CPU). Keys that share their
// leading bits (one actor throughout a request, which leaves the run
// sorted by time unless times go back) fall into one bucket, which is
// then comparison sorted: never worse than sorting the run.
func appendSorted(out, run []write) []write {
	if slices.IsSortedFunc(run, compareWrites) {
		return append(out, run...)
	}
	if len(run) < bucketSortMin || run[0].key[0] != prefixField {
		slices.SortFunc(run, compareWrites)
		return append(out, run...)
	}
	// Bucket b holds the orders whose top bits are b: buckets are in
	// order, so the run is sorted once each bucket is.
	nb := min(bits.Len(uint(len(run)-1)), maxBucketBits)
	shift := 64 - nb
	var counts [1<<maxBucketBits + 1]int32
	next := counts[:1<<nb+1]
	for i := range run {
		next[run[i].order>>shift+1]++
	}
	for b := 1; b < len(next); b++ {
		next[b] += next[b-1]
	}
	// next[b] is where bucket b starts; scattering moves it to its end.
	base := len(out)
	out = slices.Grow(out, len(run))[:base+len(run)]
	dst := out[base:]
	for i := range run {
		b := run[i].order >> shift
		dst[next[b]] = run[i]
		next[b]++
	}
	lo := int32(0)
	for _, hi := range next[:1<<nb] {
		if hi-lo > 1 {
			sortBucket(dst[lo:hi])
		}
		lo = hi
	}
	return out
}

// bucketSortMin is the shortest run appendSorted bucket sorts, and
// maxBucketBits bounds its buckets (1,024: runs of more than that many
// keys have a few keys a bucket).
const (
	bucketSortMin = 32
	maxBucketBits = 10
)

// sortBucket sorts the writes of one bucket: by insertion if they are
// few, as buckets of random keys are.
func sortBucket(ws []write) {
	if len(ws) > 12 {
		slices.SortFunc(ws, compareWrites)
		return
	}
	for i := 1; i < len(ws); i++ {
		for j := i; j > 0 && compareWrites(ws[j-1], ws[j]) > 0; j-- {
			ws[j-1], ws[j] = ws[j], ws[j-1]
		}
	}
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
		op.place(indexes[op.ev])
		// New keys: each holds the new event's index, or is the 'd' key
		// of an id that reserve found unstored and holds claimed.
		if err := w.Insert(op.key, op.val); err != nil {
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
// first event appended (after that event's own writes). It runs the three
// stages: prepare (pure), reserve (idempotency), commit.
func (l *Layer) appendAt(ctx context.Context, now time.Time, submittedBy string, evs []event.Event, extra func(int64, ledger.Writer) error) ([]Appended, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	if len(evs) == 0 {
		return []Appended{}, nil
	}
	p, err := l.prepare(now, submittedBy, evs)
	if err != nil {
		return nil, err
	}
	defer p.blind.done()
	release, err := l.reserve(ctx, p)
	if err != nil {
		return nil, err
	}
	defer release()
	return l.commit(ctx, p, extra)
}

// prepared is a request after the pure stage: each event finished and
// encoded, its idempotency key computed once, and repeats of an id within
// the request pointed at its first occurrence.
type prepared struct {
	now         time.Time
	submittedBy string
	evs         []event.Event     // finished copies of the caller's events
	bytes       [][]byte          // canonical bytes, by position
	idem        [][blindSize]byte // idempotency key, by position (if hasID)
	hasID       []bool            // the event has an id
	dupOf       []int             // -1, or the earlier position with the same id
	keys        [][]byte          // distinct idempotency keys ('d' keys), sorted
	keyPos      []int             // position of each of keys' first occurrence
	stored      []int64           // by position: index of the stored event with the id, or -1
	blind       *blindRequest     // the request's blind indexes
}

// prepare finishes and encodes the events and computes their idempotency
// keys: no store access, no randomness.
func (l *Layer) prepare(now time.Time, submittedBy string, evs []event.Event) (*prepared, error) {
	if len(submittedBy) > 0xffff {
		return nil, fmt.Errorf("events: submitter name of %d bytes", len(submittedBy))
	}
	n := len(evs)
	p := &prepared{
		now: now, submittedBy: submittedBy, blind: l.blind.request(),
		evs:   append([]event.Event(nil), evs...), // the caller's events stay as they were
		bytes: make([][]byte, n),
		idem:  make([][blindSize]byte, n),
		hasID: make([]bool, n),
		dupOf: make([]int, n),
	}
	var withID []int // positions of the events with an id
	for i := range p.evs {
		e := &p.evs[i]
		e.Finish(now, submittedBy)
		b, err := event.Canonical(*e)
		if err != nil {
			p.blind.done()
			var ee *event.Error
			if errors.As(err, &ee) {
				c := *ee
				c.Position = i
				return nil, &c
			}
			return nil, fmt.Errorf("events: encoding event %d: %w", i, err)
		}
		p.bytes[i] = b
		p.dupOf[i] = -1
		if e.ID == "" {
			continue
		}
		if withID == nil {
			withID = make([]int, 0, n-i)
		}
		p.idem[i], p.hasID[i] = p.blind.idem(submittedBy, e.ID), true
		withID = append(withID, i)
	}
	// The ids in key order, ties by position, so that an id's repeats
	// follow its first occurrence (no map of the request's ids: issue 21);
	// the first occurrences are the distinct keys, in key order, for one
	// sorted lookup.
	slices.SortFunc(withID, func(a, b int) int {
		if c := compareBlind(&p.idem[a], &p.idem[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	first := -1
	for k, i := range withID {
		if k > 0 && p.idem[i] == p.idem[first] {
			p.dupOf[i] = first
			continue
		}
		first = i
		p.keyPos = append(p.keyPos, i)
	}
	p.keys = make([][]byte, len(p.keyPos))
	karena := make([]byte, 0, len(p.keyPos)*(1+blindSize))
	for j, i := range p.keyPos {
		s := len(karena)
		karena = append(append(karena, prefixIdem), p.idem[i][:]...)
		p.keys[j] = karena[s:len(karena):len(karena)]
	}
	return p, nil
}

// reserve claims the request's ids (a concurrent request with one of them
// waits until this one is done, so an id is never appended twice), then
// looks them all up in one sorted pass: p.stored gets the index of each
// event whose id is already stored. The caller calls release once the
// request's events are durable (or it gave up).
func (l *Layer) reserve(ctx context.Context, p *prepared) (release func(), err error) {
	p.stored = make([]int64, len(p.evs))
	for i := range p.stored {
		p.stored[i] = -1
	}
	if len(p.keys) == 0 {
		return func() {}, nil
	}
	claimed := make([][blindSize]byte, len(p.keyPos))
	for j, i := range p.keyPos {
		claimed[j] = p.idem[i]
	}
	release, err = l.claim(ctx, claimed)
	if err != nil {
		return nil, err
	}
	// Only the ids the filter may hold are looked up (idfilter.go): for
	// new ids, which nearly all are, the store is not read at all.
	var keys [][]byte
	var pos []int
	for j, i := range p.keyPos {
		if l.ids.mayHold(&p.idem[i]) {
			keys, pos = append(keys, p.keys[j]), append(pos, i)
		}
	}
	var bad error
	err = l.log.GetExtSorted(keys, func(j int, v []byte) {
		if len(v) != indexSize {
			bad = fmt.Errorf("%w: idempotency record of %d bytes", ErrCorrupt, len(v))
			return
		}
		p.stored[pos[j]] = int64(binary.BigEndian.Uint64(v))
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		release()
		return nil, fmt.Errorf("events: looking up ids: %w", err)
	}
	return release, nil
}

// commit seals the events that are neither stored nor repeats, builds
// their writes and appends them in one batch; it returns every event's
// result in request order.
func (l *Layer) commit(ctx context.Context, p *prepared, extra func(int64, ledger.Writer) error) ([]Appended, error) {
	out := make([]Appended, len(p.evs))
	var pos []int // event position of each entry
	for i := range p.evs {
		out[i].ID = p.evs[i].ID
		if p.dupOf[i] < 0 && p.stored[i] < 0 {
			pos = append(pos, i)
		}
	}
	if n := len(pos); n > 0 {
		day, err := l.dayKeyFor(dayOf(p.now), true)
		if err != nil {
			return nil, err
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
		w := newRequestWrites(n)
		entryOf := make([]int32, len(p.evs)) // entry number of each new event, by position
		// The sealed payloads and wrapped keys in one allocation.
		sealed := 0
		for _, i := range pos {
			sealed += sealedSize(len(p.bytes[i]))
		}
		arena := make([]byte, sealed)
		aad := new([eventKeyAADSize]byte)
		for k, i := range pos {
			e := &p.evs[i]
			c := &commitments[k]
			var salt [event.SaltSize]byte
			copy(salt[:], salts[k*event.SaltSize:])
			*c = event.Commitment(salt, p.bytes[i])
			var tk [timeKeySize]byte
			appendTimeKey(tk[:0], e.Time)
			payload, tval, err := day.seal(&arena, aad, ctr+uint64(k), ekeys[k*dataKeySize:(k+1)*dataKeySize], &tk, &salt, p.bytes[i], c, l.sealV2)
			if err != nil {
				return nil, err
			}
			w.add(l, p.blind, int32(k), e, payload, tval)
			entries[k] = ledger.Entry{Data: c[:]}
			entryOf[i] = int32(k)
		}
		// The 'd' keys in key order (p.keyPos is sorted by idempotency
		// key), so that their run needs no sorting: the first occurrence
		// of each id not stored yet.
		for _, i := range p.keyPos {
			if p.stored[i] < 0 {
				w.addIdem(entryOf[i], &p.idem[i])
				// Before the batch is queued: a later request with this
				// id (it waits for this one's claim) must look it up.
				l.ids.add(&p.idem[i])
			}
		}
		b := &batch{l: l, dk: day, extra: extra, writeDay: !day.durable.Load()}
		b.ops, b.size = w.sorted()
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
				(*f)(idx[j], &p.evs[i], p.bytes[i])
			}
		}
	}
	for i := range p.evs {
		if s := p.stored[i]; s >= 0 {
			out[i].Index, out[i].Duplicate = s, true
		} else if j := p.dupOf[i]; j >= 0 {
			out[i].Index, out[i].Duplicate = out[j].Index, true
		}
	}
	return out, nil
}

// requestWrites owns the key layout of a request's events (keys.go,
// docs/events.md): the keys each event writes, where its index goes in each
// (an index slot the sequencer fills in, write.place), and their order.
// Keys live in one arena; each kind of key is a run of its own (writeRuns).
type requestWrites struct {
	arena []byte
	keys  [][]byte
	runs  writeRuns
	n     int // writes added
}

func newRequestWrites(events int) *requestWrites {
	w := &requestWrites{
		// 'p' i, the 't' and 'f' keys, 'd' blind with its 8-byte value.
		arena: make([]byte, 0, events*(1+indexSize+maxIndexKeyBytes+1+blindSize+indexSize)),
		keys:  make([][]byte, 0, 1+numFields),
	}
	// Every run has room for a write per event (one allocation, not a run
	// grown by doublings: issue 21).
	all := make([]write, len(w.runs)*events)
	for i := range w.runs {
		w.runs[i] = all[i*events : i*events : (i+1)*events]
	}
	return w
}

// add adds the writes of event ev (its position among the request's
// entries): 'p' -> the sealed payload; 't' -> tval (as seal returned it:
// empty, or a version-2 payload's wrapped event key) and the blind
// outcome; the 'f' keys. addIdem adds its 'd' key if it has an id.
func (w *requestWrites) add(l *Layer, br *blindRequest, ev int32, e *event.Event, payload, tval []byte) {
	s := len(w.arena)
	w.arena = append(w.arena, prefixPayload)
	w.arena = append(w.arena, make([]byte, indexSize)...)
	w.runs.add(write{key: w.arena[s:len(w.arena):len(w.arena)], val: payload, ev: ev})
	// seal leaves room for the outcome in tval.
	w.arena, w.keys, tval = l.appendIndexKeys(w.arena, w.keys[:0], tval, e, br)
	w.runs.add(write{key: w.keys[0], val: tval, ev: ev})
	for _, fk := range w.keys[1:] {
		w.runs.add(write{key: fk, order: binary.BigEndian.Uint64(fk[2:]), ev: ev})
	}
	w.n += 2 + len(w.keys) - 1
}

// addIdem adds event ev's 'd' key -> its index. Added in key order, the
// run needs no sorting (writeRuns.sorted checks).
func (w *requestWrites) addIdem(ev int32, idem *[blindSize]byte) {
	s := len(w.arena)
	w.arena = append(w.arena, prefixIdem)
	w.arena = append(w.arena, idem[:]...)
	w.arena = append(w.arena, make([]byte, indexSize)...)
	k := s + 1 + blindSize
	w.runs.add(write{key: w.arena[s:k:k], val: w.arena[k:len(w.arena):len(w.arena)], ev: ev, valIndex: true})
	w.n++
}

// sorted returns the writes in key order and their size in bytes (keys,
// values, 8 bytes of overhead each).
func (w *requestWrites) sorted() ([]write, int) {
	ops := w.runs.sorted(w.n)
	size := 0
	for _, op := range ops {
		size += len(op.key) + len(op.val) + 8
	}
	return ops, size
}

// place writes idx into the write's index slot: the key's last 8 bytes, or
// the value ('d' keys).
func (op *write) place(idx int64) {
	if op.valIndex {
		binary.BigEndian.PutUint64(op.val, uint64(idx))
	} else {
		binary.BigEndian.PutUint64(op.key[len(op.key)-indexSize:], uint64(idx))
	}
}

// maxIndexKeyBytes bounds what appendIndexKeys appends.
const maxIndexKeyBytes = 1 + timeKeySize + indexSize + int(numFields)*(2+blindSize+timeKeySize+indexSize)

// indexKeys returns the event's 't' key and its 'f' keys, in one
// allocation, each ending with the index placeholder, and the 't' key's
// value. The outcome has no 'f' key: its blind value is the 't' key's value
// (four outcomes would make four huge postings; a scan of the time index
// filters on the value instead, without decrypting).
func (l *Layer) indexKeys(e *event.Event) (keys [][]byte, tval []byte) {
	_, keys, tval = l.appendIndexKeys(make([]byte, 0, maxIndexKeyBytes), make([][]byte, 0, 1+numFields), nil, e, nil)
	return keys, tval
}

// appendIndexKeys is indexKeys appending the keys' bytes to arena, the
// keys to keys and the 't' key's value to tval, blinding with br (nil: l's
// blinder).
func (l *Layer) appendIndexKeys(arena []byte, keys [][]byte, tval []byte, e *event.Event, br *blindRequest) ([]byte, [][]byte, []byte) {
	blind := l.blind.field
	if br != nil {
		blind = br.field
	}
	var vals [numFields + 1]string
	if e.Actor != nil {
		vals[fieldActor] = e.Actor.ID
	}
	vals[fieldAction] = e.Action
	if e.Resource != nil {
		vals[fieldResource] = e.Resource.ID
	}
	vals[fieldSource] = e.Source
	if e.Outcome != "" {
		b := blind(fieldOutcome, e.Outcome)
		tval = append(tval, b[:]...)
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
		b := blind(f, vals[f])
		s := len(arena)
		arena = append(arena, prefixField, f)
		arena = append(arena, b[:]...)
		arena = append(arena, tk[:]...)
		arena = append(arena, make([]byte, indexSize)...)
		keys = append(keys, arena[s:len(arena):len(arena)])
	}
	return arena, keys, tval
}

// compareBlind orders blind values as their bytes do.
func compareBlind(a, b *[blindSize]byte) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
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
