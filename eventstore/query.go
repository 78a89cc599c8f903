package eventstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"indelible.dev/event"
)

// fieldValue is q's filter on field f ("" for none).
func fieldValue(q *Query, f byte) string {
	switch f {
	case fieldActor:
		return q.Actor
	case fieldAction:
		return q.Action
	case fieldResource:
		return q.Resource
	case fieldOutcome:
		return q.Outcome
	case fieldSource:
		return q.Source
	}
	return ""
}

// filter is a compiled query.
type filter struct {
	q     Query
	nf    int             // field filters given
	plan  byte            // the field whose index is scanned; 0: the time index
	blind [blindSize]byte // the plan field's blind value
	// outcome is the outcome filter's blind value, if any: the value of a
	// matching event's 't' key ends with it. A scan of the time index
	// compares it with the keys' values; a scan of a field index looks the
	// candidates' 't' keys up (join).
	outcome []byte
	// joins are the index prefixes of the field filters besides the
	// plan's: a candidate of the plan's index is kept only if each of
	// them holds its (time, index) too (join).
	joins [][]byte
	hash  [sha256.Size]byte // identifies the filters, for cursors
}

// joined reports whether a candidate of the plan's scan must be looked up
// in other indexes before it is a match.
func (f *filter) joined() bool {
	return len(f.joins) > 0 || (f.plan != 0 && f.outcome != nil)
}

// planOrder is the order in which a field's index is preferred when several
// filters are given: the ones likely most selective first. The outcome has
// no index of its own: alone, it filters a scan of the time index on the
// keys' values.
var planOrder = []byte{fieldActor, fieldResource, fieldAction, fieldSource}

func (l *Layer) compile(q Query) (*filter, error) {
	if q.Limit < 0 || q.Limit > MaxLimit {
		return nil, fmt.Errorf("%w: limit must be from 1 to %d", ErrBadQuery, MaxLimit)
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	f := &filter{q: q}
	for _, fl := range planOrder {
		if fieldValue(&q, fl) == "" {
			continue
		}
		f.nf++
		if f.plan == 0 {
			f.plan = fl
		}
	}
	if q.Outcome != "" {
		f.nf++
	}
	if f.plan != 0 {
		f.blind = l.blind.field(f.plan, fieldValue(&q, f.plan))
		for _, fl := range planOrder {
			if v := fieldValue(&q, fl); v != "" && fl != f.plan {
				b := l.blind.field(fl, v)
				f.joins = append(f.joins, append([]byte{prefixField, fl}, b[:]...))
			}
		}
	}
	if q.Outcome != "" {
		b := l.blind.field(fieldOutcome, q.Outcome)
		f.outcome = b[:]
	}
	h := sha256.New()
	for fl := fieldActor; fl <= numFields; fl++ {
		v := fieldValue(&q, fl)
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(v)))
		h.Write(n[:])
		h.Write([]byte(v))
	}
	for _, t := range []time.Time{q.Since, q.Until} {
		if t.IsZero() {
			h.Write([]byte{0})
		} else {
			h.Write([]byte{1})
			h.Write(appendTimeKey(nil, t))
		}
	}
	h.Sum(f.hash[:0])
	return f, nil
}

// match re-checks every filter on the decrypted event: index hits are only
// candidates (blind indexes are truncated HMACs).
func (f *filter) match(e *event.Event) bool {
	q := &f.q
	if q.Actor != "" && (e.Actor == nil || e.Actor.ID != q.Actor) {
		return false
	}
	if q.Action != "" && e.Action != q.Action {
		return false
	}
	if q.Resource != "" && (e.Resource == nil || e.Resource.ID != q.Resource) {
		return false
	}
	if q.Outcome != "" && e.Outcome != q.Outcome {
		return false
	}
	if q.Source != "" && e.Source != q.Source {
		return false
	}
	if !q.Since.IsZero() && e.Time.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !e.Time.Before(q.Until) {
		return false
	}
	return true
}

// prefix is the key prefix of the index the plan scans; its keys continue
// with time(12) || index(8).
func (f *filter) prefix() []byte {
	if f.plan == 0 {
		return []byte{prefixTime}
	}
	p := make([]byte, 0, 2+blindSize)
	p = append(p, prefixField, f.plan)
	return append(p, f.blind[:]...)
}

// A cursor is base64url(version(1) = 1 || time(12) || index(8) || mac(16)):
// the position (time, index) of the last event of the page, and
// HMAC(index key, "cursor" || 0x00 || filters' hash || time || index)[:16],
// so a cursor only works with the filters it was issued for and cannot be
// forged.
const (
	cursorVersion = 1
	cursorSize    = 1 + timeKeySize + indexSize + 16
)

func (l *Layer) cursor(f *filter, pos []byte) string {
	b := make([]byte, 0, cursorSize)
	b = append(b, cursorVersion)
	b = append(b, pos...)
	m := l.cursorMAC(f, pos)
	b = append(b, m[:16]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (l *Layer) cursorMAC(f *filter, pos []byte) [sha256.Size]byte {
	d := make([]byte, 0, sha256.Size+len(pos))
	d = append(d, f.hash[:]...)
	d = append(d, pos...)
	return l.blind.mac("cursor", d)
}

// parseCursor returns the position (time(12) || index(8)) a cursor holds.
func (l *Layer) parseCursor(f *filter, s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != cursorSize || b[0] != cursorVersion {
		return nil, fmt.Errorf("%w: malformed", ErrBadCursor)
	}
	pos := b[1 : 1+timeKeySize+indexSize]
	m := l.cursorMAC(f, pos)
	if !hmac.Equal(m[:16], b[1+timeKeySize+indexSize:]) {
		return nil, fmt.Errorf("%w: not issued for these filters by this server", ErrBadCursor)
	}
	return pos, nil
}

// Scan budget (issue 18.7): what one page of a listing may cost. Every
// filter is decided by index keys (the scanned index's, and with two or
// more filters the other indexes' keys at the same position: join), so a
// page decrypts about Limit events (more only if some fail the re-check
// once decrypted); but a rare combination of filters examines and joins
// many candidates, and an outcome filter alone skips keys by their value,
// so either could scan the whole store. Past the budget the listing stops with
// ErrScanBudget (422) rather than tie up a core for a reader who may be
// gone: the client narrows the time range (since/until), or the filters.
const (
	// MaxScanKeys bounds the index keys one page examines.
	MaxScanKeys = 1_000_000
	// MaxScanDecrypts bounds the events one page decrypts (a full page of
	// MaxLimit needs MaxLimit+1 when every candidate matches).
	MaxScanDecrypts = 10_000
)

// ErrScanBudget is the error of a listing or histogram past its scan budget.
var ErrScanBudget = errors.New("events: query over its scan budget")

// scanBudget is what a listing may still examine and decrypt.
// Spent counts what it already paid for (a histogram shares one budget
// across its pages).
type scanBudget struct{ keys, decrypts, spentKeys, spentDecrypts int }

// scanCheckEvery is how many keys a scan examines between checks of its
// context.
const scanCheckEvery = 256

func (l *Layer) list(ctx context.Context, q Query, b *scanBudget) (Page, error) {
	if l.closed.Load() {
		return Page{}, ErrClosed
	}
	f, err := l.compile(q)
	if err != nil {
		return Page{}, err
	}
	pre := f.prefix()
	lo := slices.Clone(pre)
	if !f.q.Since.IsZero() {
		lo = appendTimeKey(lo, f.q.Since)
	}
	var hi []byte
	switch {
	case f.q.Cursor != "":
		pos, err := l.parseCursor(f, f.q.Cursor)
		if err != nil {
			return Page{}, err
		}
		hi = append(slices.Clone(pre), pos...)
	case !f.q.Until.IsZero():
		hi = appendTimeKey(slices.Clone(pre), f.q.Until)
	default:
		hi = prefixEnd(pre)
	}
	if string(lo) >= string(hi) {
		return Page{Records: []Record{}}, nil
	}
	// Every filter is decided by index keys: the scanned index's (time
	// bounds are its key range; an outcome alone, its keys' values), and
	// with more filters, the other indexes' keys at the same (time, index),
	// looked up a chunk at a time (join). A page therefore decrypts only
	// what it returns (each record is still re-checked once decrypted, as
	// blind values are truncated HMACs), and the look-ahead for a next page
	// decrypts nothing.
	joined := f.joined()
	haveT := f.plan == 0 || f.outcome != nil // the candidates carry their 't' values
	pub, _ := l.log.Published()
	page := Page{Records: make([]Record, 0, min(f.q.Limit, 128))}
	var last []byte
	more := false
	for round := 0; hi != nil && !more; round++ {
		need := f.q.Limit - len(page.Records) // 0: look ahead for a next page
		want := max(need, 1)
		scan := want
		if !joined && need > 0 {
			// The page and the look-ahead for a next page in one scan
			// (the index keys decide a match, so the extra candidate
			// costs a key, not a decryption).
			scan = want + 1
		}
		if joined {
			if round == 0 {
				// As if every candidate matched (filters on related
				// fields, such as an actor and its usual action): the
				// page and its look-ahead in one round.
				scan = want + 1
			} else {
				scan = min(max(2*want, 32), 256) // candidates fail the joins
			}
		}
		cands, next, err := l.scanChunk(ctx, f, pre, lo, hi, scan, pub.N, b, len(page.Records))
		if err != nil {
			return Page{}, fmt.Errorf("events: listing: %w", err)
		}
		hi = next
		if joined && len(cands) > 0 {
			if cands, err = l.join(f, cands, b, len(page.Records)); err != nil {
				return Page{}, fmt.Errorf("events: listing: %w", err)
			}
		}
		extra := len(cands) > want // a match beyond this page is known
		if extra {
			cands = cands[:want]
			// Resume below the last candidate kept.
			hi = append(slices.Clone(pre), cands[want-1].pos[:]...)
		}
		if need == 0 {
			more = len(cands) > 0
			continue
		}
		if len(cands) == 0 {
			continue
		}
		if b.spentDecrypts+len(cands) > b.decrypts {
			return Page{}, fmt.Errorf("events: listing: %w: %d candidate events decrypted, the most a query may, with %d of %d found; narrow the time range (since/until) or the filters", ErrScanBudget, b.decrypts, len(page.Records), f.q.Limit)
		}
		b.spentDecrypts += len(cands)
		recs, err := l.fetch(ctx, cands, haveT)
		if err != nil {
			return Page{}, fmt.Errorf("events: listing: %w", err)
		}
		for k := range cands {
			r := recs[k]
			if r == nil || !f.match(&r.Event) {
				continue
			}
			page.Records = append(page.Records, *r)
			last = append(last[:0], cands[k].pos[:]...)
		}
		if extra && len(page.Records) == f.q.Limit {
			more = true
		}
	}
	if more {
		page.NextCursor = l.cursor(f, last)
	}
	return page, nil
}

// scanChunk scans the plan's index in [lo, hi) downwards for up to n
// published candidates (and, for an outcome alone, with its blind value).
// next is where the scan of the rest ends (exclusive): the last candidate's
// key, or nil when the range is done.
func (l *Layer) scanChunk(ctx context.Context, f *filter, pre, lo, hi []byte, n int, published int64, b *scanBudget, found int) (cands []candidate, next []byte, err error) {
	var ferr error
	examined := 0
	// A time index scan keeps each candidate's 't' value: all in one
	// buffer (tends[j] ends candidate j's), sliced once the scan is done.
	var tbuf []byte
	var tends []int
	if f.plan == 0 {
		tbuf = make([]byte, 0, n*(wrappedEventKeySize+blindSize))
		tends = make([]int, 0, n)
	}
	defer func() {
		at := 0
		for j, e := range tends {
			cands[j].tval = tbuf[at:e:e]
			at = e
		}
	}()
	err = l.log.ScanExt(lo, hi, true, func(k, v []byte) bool {
		examined++
		if examined%scanCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				ferr = err
				return false
			}
		}
		if b.spentKeys == b.keys {
			ferr = keyBudgetErr(b, found, f.q.Limit)
			return false
		}
		b.spentKeys++
		if len(k) != len(pre)+timeKeySize+indexSize {
			ferr = fmt.Errorf("%w: index key of %d bytes", ErrCorrupt, len(k))
			return false
		}
		if f.plan == 0 && f.outcome != nil && string(outcomeOf(v)) != string(f.outcome) {
			return true
		}
		var c candidate
		copy(c.pos[:], k[len(pre):])
		c.i = int64(binary.BigEndian.Uint64(c.pos[timeKeySize:]))
		if c.i >= published {
			return true // not yet published
		}
		if f.plan == 0 {
			tbuf = append(tbuf, v...) // the 't' value: the wrapped event key
			tends = append(tends, len(tbuf))
		}
		cands = append(cands, c)
		if len(cands) == n {
			next = slices.Clone(k)
			return false
		}
		return true
	})
	if err == nil {
		err = ferr
	}
	return cands, next, err
}

func keyBudgetErr(b *scanBudget, found, limit int) error {
	return fmt.Errorf("%w: %d index keys examined, the most a query may, with %d of %d events found; narrow the time range (since/until) or the filters", ErrScanBudget, b.spentKeys, found, limit)
}

// join keeps the candidates (in scan order) that every other filter's
// index holds at the same (time, index), and, with an outcome filter,
// whose 't' value carries the outcome's blind value (then kept as their
// tval, which fetch needs anyway). Each index is looked up once per chunk,
// in key order (one iterator; a table's bloom filter answers for the keys
// it does not hold), and only for the candidates still in. Each lookup
// counts as an index key examined.
func (l *Layer) join(f *filter, cands []candidate, b *scanBudget, found int) ([]candidate, error) {
	// The scan went downwards: ascending key order is the reverse.
	in := make([]int, len(cands))
	for j := range in {
		in[j] = len(cands) - 1 - j
	}
	probe := func(pre []byte, hit func(k int, v []byte) bool) error {
		if len(in) == 0 {
			return nil
		}
		if b.spentKeys+len(in) > b.keys {
			b.spentKeys = b.keys
			return keyBudgetErr(b, found, f.q.Limit)
		}
		b.spentKeys += len(in)
		keys := make([][]byte, len(in))
		arena := make([]byte, 0, len(in)*(len(pre)+timeKeySize+indexSize))
		for j, k := range in {
			s := len(arena)
			arena = append(append(arena, pre...), cands[k].pos[:]...)
			keys[j] = arena[s:len(arena):len(arena)]
		}
		var still []int
		err := l.log.GetExtSorted(keys, func(j int, v []byte) {
			if hit(in[j], v) {
				still = append(still, in[j])
			}
		})
		in = still
		return err
	}
	for _, pre := range f.joins {
		if err := probe(pre, func(int, []byte) bool { return true }); err != nil {
			return nil, err
		}
	}
	if f.plan != 0 && f.outcome != nil {
		err := probe([]byte{prefixTime}, func(k int, v []byte) bool {
			if string(outcomeOf(v)) != string(f.outcome) {
				return false
			}
			cands[k].tval = bytes.Clone(v)
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]candidate, 0, len(in))
	for j := len(in) - 1; j >= 0; j-- {
		out = append(out, cands[in[j]])
	}
	return out, nil
}

// candidate is an event an index scan found: its index, its position in
// the index (time(12) || index(8), for cursors), and its 't' value if the
// scan was of the time index.
type candidate struct {
	i    int64
	pos  [timeKeySize + indexSize]byte
	tval []byte
}

// payloadBufs holds the buffers fetch reads a chunk's payloads into. A
// payload's bytes are not kept past its opening (recordOf copies the salt
// and decrypts into a new buffer), so a buffer is reused once fetch has
// returned.
var payloadBufs = sync.Pool{New: func() any { return new([]byte) }}

// fetchParallelMin is the fewest candidates fetch opens on more than one
// goroutine.
const fetchParallelMin = 16

// fetch reads and opens the candidates' events: their payloads, the 't'
// values of those that may be of version 2 (unless the scan or the join
// had them) and log entries each in one sorted pass
// (one iterator, each block read once, instead of a point lookup apiece),
// then decrypts and checks them on every core. recs[k] is nil for a
// candidate whose event is gone (erased, shredded) or is no event.
func (l *Layer) fetch(ctx context.Context, cands []candidate, haveT bool) ([]*Record, error) {
	n := len(cands)
	byIndex := make([]int, n) // candidates by index, ascending
	for k := range byIndex {
		byIndex[k] = k
	}
	slices.SortFunc(byIndex, func(a, b int) int { return cmp.Compare(cands[a].i, cands[b].i) })
	// The lookups read different keys: run them side by side (on a large
	// store each is a block read per candidate, mostly waiting).
	vals := make([][]byte, n)
	ents := make([][]byte, n)
	pbuf := payloadBufs.Get().(*[]byte)
	defer func() {
		if cap(*pbuf) <= 4<<20 {
			payloadBufs.Put(pbuf)
		}
	}()
	var lerr [3]error
	var lwg sync.WaitGroup
	lwg.Add(2)
	go func() {
		defer lwg.Done()
		keys := make([][]byte, n)
		kbuf := make([]byte, 0, n*(1+indexSize))
		for j, k := range byIndex {
			at := len(kbuf)
			kbuf = append(kbuf, payloadKey(cands[k].i)...)
			keys[j] = kbuf[at:len(kbuf):len(kbuf)]
		}
		get := l.log.GetExtSorted
		if n > 1 && cands[byIndex[n-1]].i-cands[byIndex[0]].i < int64(4*n) {
			// Close together (a time range, the newest events): each
			// read is a short forward seek from the one before.
			get = l.log.GetExtNear
		}
		// One buffer for the page's payloads instead of one apiece,
		// reused across listings: opening a payload copies what it keeps.
		buf := (*pbuf)[:0]
		ends := slices.Repeat([]int{-1}, n) // -1: no value
		lerr[0] = get(keys, func(j int, v []byte) {
			buf = append(buf, v...)
			ends[j] = len(buf)
		})
		*pbuf = buf
		at := 0
		for j, e := range ends {
			if e >= 0 {
				vals[byIndex[j]] = buf[at:e:e]
				at = e
			}
		}
	}()
	go func() {
		defer lwg.Done()
		idx := make([]int64, n)
		for j, k := range byIndex {
			idx[j] = cands[k].i
		}
		buf := make([]byte, 0, n*32) // log entries are 32-byte commitments
		ends := slices.Repeat([]int{-1}, n)
		lerr[1] = l.log.EntriesFunc(idx, func(j int, e []byte) error {
			buf = append(buf, e...)
			ends[j] = len(buf)
			return nil
		})
		at := 0
		for j, e := range ends {
			if e >= 0 {
				ents[byIndex[j]] = buf[at:e:e]
				at = e
			}
		}
	}()
	// Only a version-2 payload needs its 't' value (its wrapped event
	// key), and only if the scan or the join did not read it: with every
	// candidate at or past v3From (every one written since version 3),
	// there is nothing to read.
	var byTime []int
	if !haveT {
		v3From := l.v3From.Load()
		for _, k := range byIndex {
			if cands[k].i < v3From {
				byTime = append(byTime, k)
			}
		}
	}
	if len(byTime) > 0 {
		slices.SortFunc(byTime, func(a, b int) int { return bytes.Compare(cands[a].pos[:], cands[b].pos[:]) })
		// The keys and the values each in one buffer, not one apiece.
		const tkeySize = 1 + timeKeySize + indexSize
		tkeys := make([][]byte, len(byTime))
		kbuf := make([]byte, 0, len(byTime)*tkeySize)
		for j, k := range byTime {
			at := len(kbuf)
			kbuf = append(append(kbuf, prefixTime), cands[k].pos[:]...)
			tkeys[j] = kbuf[at:len(kbuf):len(kbuf)]
		}
		vbuf := make([]byte, 0, len(byTime)*(wrappedEventKeySize+blindSize))
		ends := slices.Repeat([]int{-1}, len(byTime))
		lerr[2] = l.log.GetExtSorted(tkeys, func(j int, v []byte) {
			vbuf = append(vbuf, v...)
			ends[j] = len(vbuf)
		})
		at := 0
		for j, e := range ends {
			if e >= 0 {
				cands[byTime[j]].tval = vbuf[at:e:e]
				at = e
			}
		}
	}
	lwg.Wait()
	for _, err := range lerr {
		if err != nil {
			return nil, err
		}
	}
	recs := make([]*Record, n)
	errs := make([]error, n)
	open := func(k int) {
		c := &cands[k]
		if vals[k] == nil {
			return // destroyed since the scan, or written by no event
		}
		var tval []byte
		if len(c.tval) > 0 {
			tval = c.tval // else openPayload reads it (and finds it gone)
		}
		r, err := l.recordOf(c.i, vals[k], ents[k], tval)
		if err != nil {
			if errors.Is(err, ErrGone) || errors.Is(err, ErrNotEvent) {
				return
			}
			errs[k] = err
			return
		}
		recs[k] = &r
	}
	workers := min(runtime.GOMAXPROCS(0), (n+fetchParallelMin-1)/fetchParallelMin)
	if workers <= 1 {
		for k := range n {
			open(k)
		}
	} else {
		var wg sync.WaitGroup
		var next atomic.Int64
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k := int(next.Add(1)) - 1
					if k >= n || ctx.Err() != nil {
						return
					}
					open(k)
				}
			}()
		}
		wg.Wait()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// prefixEnd returns the smallest key above every key starting with p.
func prefixEnd(p []byte) []byte {
	e := slices.Clone(p)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil
}
