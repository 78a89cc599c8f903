package events

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"indelible.dev/event"
)

// queryParams are the parameters ParseQuery accepts.
var queryParams = []string{"actor", "action", "resource", "outcome", "source", "since", "until", "limit", "cursor"}

func (q Query) fieldValue(f byte) string {
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

func parseQuery(v url.Values) (Query, error) {
	var q Query
	for name, vals := range v {
		if !slices.Contains(queryParams, name) {
			return Query{}, fmt.Errorf("%w: unknown parameter %q", ErrBadQuery, name)
		}
		if len(vals) != 1 {
			return Query{}, fmt.Errorf("%w: parameter %q given %d times", ErrBadQuery, name, len(vals))
		}
	}
	q.Actor, q.Action, q.Resource = v.Get("actor"), v.Get("action"), v.Get("resource")
	q.Outcome, q.Source, q.Cursor = v.Get("outcome"), v.Get("source"), v.Get("cursor")
	switch q.Outcome {
	case "", event.OutcomeSuccess, event.OutcomeFailure, event.OutcomeDenied, event.OutcomeUnknown:
	default:
		return Query{}, fmt.Errorf("%w: outcome %q is not success, failure, denied or unknown", ErrBadQuery, q.Outcome)
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		s := v.Get(p.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return Query{}, fmt.Errorf("%w: %s is not an RFC 3339 time: %q", ErrBadQuery, p.name, s)
		}
		*p.t = t.UTC()
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return Query{}, fmt.Errorf("%w: since must be before until", ErrBadQuery)
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return Query{}, fmt.Errorf("%w: limit must be an integer from 1 to %d, not %q", ErrBadQuery, MaxLimit, s)
		}
		q.Limit = n
	}
	return q, nil
}

// filter is a compiled query.
type filter struct {
	q     Query
	nf    int             // field filters given
	plan  byte            // the field whose index is scanned; 0: the time index
	blind [blindSize]byte // the plan field's blind value
	// outcome is set when the time index is scanned for an outcome: its
	// keys' values must equal this blind value.
	outcome []byte
	hash    [sha256.Size]byte // identifies the filters, for cursors
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
		if q.fieldValue(fl) == "" {
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
		f.blind = l.blind.field(f.plan, q.fieldValue(f.plan))
	} else if q.Outcome != "" {
		b := l.blind.field(fieldOutcome, q.Outcome)
		f.outcome = b[:]
	}
	h := sha256.New()
	for fl := fieldActor; fl <= numFields; fl++ {
		v := q.fieldValue(fl)
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

// Scan budget (issue 18.7): what one page of a listing may cost. A page
// whose filters are all decided by the index it scans (at most one field
// filter, time bounds) decrypts at most Limit events; one with two or more
// filters decrypts every candidate of the first, and an outcome filter
// alone skips keys by their value, so either could scan the whole store
// for a rare combination. Past the budget the listing stops with
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
	// Every filter is decided by the scanned keys themselves (and, for an
	// outcome, their values) when at most one field filter is given (time
	// bounds are the key range): then the look-ahead for a next page needs
	// no decryption.
	covered := f.nf <= 1
	page := Page{Records: make([]Record, 0, min(f.q.Limit, 128))}
	var last []byte
	more := false
	var ferr error
	examined := 0
	err = l.log.ScanExt(lo, hi, true, func(k, v []byte) bool {
		examined++
		if examined%scanCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				ferr = err
				return false
			}
		}
		if b.spentKeys == b.keys {
			ferr = fmt.Errorf("%w: %d index keys examined, the most a query may, with %d of %d events found; narrow the time range (since/until) or the filters", ErrScanBudget, b.spentKeys, len(page.Records), f.q.Limit)
			return false
		}
		b.spentKeys++
		if len(k) != len(pre)+timeKeySize+indexSize {
			ferr = fmt.Errorf("%w: index key of %d bytes", ErrCorrupt, len(k))
			return false
		}
		if f.outcome != nil && string(outcomeOf(v)) != string(f.outcome) {
			return true
		}
		pos := k[len(pre):]
		i := int64(binary.BigEndian.Uint64(pos[timeKeySize:]))
		if len(page.Records) == f.q.Limit && covered {
			if l.published(i) {
				more = true
				return false
			}
			return true
		}
		if b.spentDecrypts == b.decrypts {
			ferr = fmt.Errorf("%w: %d candidate events decrypted, the most a query may, with %d of %d found; narrow the time range (since/until) or the filters", ErrScanBudget, b.spentDecrypts, len(page.Records), f.q.Limit)
			return false
		}
		b.spentDecrypts++
		r, err := l.get(i)
		if err != nil {
			if errorsIsNotFound(err) || errors.Is(err, ErrGone) || errors.Is(err, ErrNotEvent) {
				return true // not yet published, or destroyed since the scan
			}
			ferr = err
			return false
		}
		if !f.match(&r.Event) {
			return true
		}
		if len(page.Records) == f.q.Limit {
			more = true
			return false
		}
		page.Records = append(page.Records, r)
		last = append(last[:0], pos...)
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return Page{}, fmt.Errorf("events: listing: %w", err)
	}
	if more {
		page.NextCursor = l.cursor(f, last)
	}
	return page, nil
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

func errorsIsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// published reports whether index i is below the published size.
func (l *Layer) published(i int64) bool {
	_, err := l.log.Entry(i)
	return err == nil
}
