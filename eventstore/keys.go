package eventstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"hash/maphash"
	"sync"
	"time"
)

// The events layer's key space inside the ledger's extension namespace
// (docs/events.md has the full table). Every key is a one-byte prefix and
// fixed-width fields; integers are big-endian, so numeric order is key order.
//
//	'k' day(8)                              wrapped data key of a UTC day
//	'p' i(8)                                sealed payload of the event at index i
//	't' time(12) i(8)                       time index -> blind outcome(16) or empty
//	'f' field(1) blind(16) time(12) i(8)    blind field index (value empty; no outcome keys)
//	'd' blind(16)                           idempotency key -> i(8)
//
// Reserved for the lifecycle (erasure, retention) and tokens: 'z', 'r', 'a'.
const (
	prefixDayKey  = 'k'
	prefixPayload = 'p'
	prefixTime    = 't'
	prefixField   = 'f'
	prefixIdem    = 'd'
	prefixTomb    = 'z' // 'z' i(8) -> tombstone (JSON) of an erased event
	prefixLife    = 'r' // lifecycle state, below
	prefixToken   = 'a' // 'a' name -> a token's record (package audited)
)

// TokenKey is the key of the named token's record. The events layer only
// reserves the range; the token records are written by the server's audit
// service (package audited), in the batch that records their change.
func TokenKey(name string) []byte { return append([]byte{prefixToken}, name...) }

// TokenKeys is the range [lo, hi) of every token record's key.
func TokenKeys() (lo, hi []byte) { return []byte{prefixToken}, []byte{prefixToken + 1} }

// Lifecycle keys ('r' kind ...).
const (
	lifeSwitch   = 's' // 'r' 's' i(8) -> day(8): from index i on, payloads are of that day
	lifeShredded = 'x' // 'r' 'x' day(8) -> shredded-day record (JSON)
	lifeShedding = 'q' // 'r' 'q' day(8) -> empty: retention is shredding that day
	lifePurge    = 'p' // 'r' 'p' seq(8) -> ranges still to purge (see purge)
)

// seqKey is the 9-byte key prefix, n (big-endian): keys of one prefix sort
// by n.
func seqKey(prefix byte, n int64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 9), prefix), uint64(n))
}

func lifeKey(kind byte, n int64) []byte {
	k := make([]byte, 10)
	k[0], k[1] = prefixLife, kind
	binary.BigEndian.PutUint64(k[2:], uint64(n))
	return k
}

func switchKey(i int64) []byte { return lifeKey(lifeSwitch, i) }

func tombKey(i int64) []byte { return seqKey(prefixTomb, i) }

const (
	blindSize   = 16
	timeKeySize = 12
	indexSize   = 8
)

// Blind-indexed fields. The byte is the field's code in 'f' keys; the name
// is what the HMAC covers.
const (
	fieldActor byte = iota + 1
	fieldAction
	fieldResource
	fieldOutcome
	fieldSource
	numFields = fieldSource
)

var fieldNames = [numFields + 1]string{"", "actor", "action", "resource", "outcome", "source"}

func dayKeyKey(day int64) []byte { return seqKey(prefixDayKey, day) }

// timeIndexKey returns the 't' key of the event at index i with time key tk.
func timeIndexKey(tk []byte, i int64) []byte {
	k := make([]byte, 0, 1+timeKeySize+indexSize)
	k = append(k, prefixTime)
	k = append(k, tk...)
	return binary.BigEndian.AppendUint64(k, uint64(i))
}

// outcomeOf returns the blind outcome in a 't' value: the whole value (16
// bytes or empty) for a version-1 event, what follows the wrapped event key
// for a version-2 event.
func outcomeOf(tval []byte) []byte {
	if len(tval) >= wrappedEventKeySize {
		return tval[wrappedEventKeySize:]
	}
	return tval
}

func payloadKey(i int64) []byte { return seqKey(prefixPayload, i) }

// appendTimeKey appends t as 12 bytes that sort as the times do: Unix
// seconds with the sign bit flipped, then nanoseconds. (Nanoseconds since
// the epoch in an int64 would not cover the years 0000..9999 events allow.)
func appendTimeKey(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix())^1<<63)
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// dayOf is the UTC day (days since the Unix epoch) of t.
func dayOf(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return d
}

// blinder computes blind indexes: HMAC-SHA-256 under the index key,
// truncated to 16 bytes. Values repeat a lot, so results are cached in
// memory (never on disk). Actions, outcomes and sources, categories, are
// cached by value. Actor and resource ids are not: their entries are keyed
// by a 128-bit hash of the id under two random per-process seeds, so the
// cache holds no id (erased ones included), only what the blind indexes on
// disk already show, and an id's entry is dropped when an event naming it
// is erased (forget). Two ids colliding in 128 bits of seeded hash is not a
// concern.
type blinder struct {
	pool sync.Pool // of *macState

	seeds [2]maphash.Seed
	mu    sync.RWMutex
	cache [numFields + 1]map[string][blindSize]byte // actions, outcomes, sources: by value
	ids   [numFields + 1]map[idKey][blindSize]byte  // actors, resources: by seeded hash
}

// idKey is an id's 128-bit seeded hash.
type idKey [2]uint64

// blindCacheMax bounds the entries of each field's cache; a full cache is
// emptied.
const blindCacheMax = 1 << 16

func newBlinder(key []byte) *blinder {
	k := append([]byte(nil), key...)
	b := &blinder{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	b.pool.New = func() any {
		return &macState{h: hmac.New(sha256.New, k), in: make([]byte, 0, 128), sum: make([]byte, 0, sha256.Size)}
	}
	for f := range b.cache {
		b.cache[f] = make(map[string][blindSize]byte)
		b.ids[f] = make(map[idKey][blindSize]byte)
	}
	return b
}

// isID reports whether field f holds identifiers (cached by hash only).
func isID(f byte) bool { return f == fieldActor || f == fieldResource }

// idKeyOf is the cache key of id: its 128-bit seeded hash.
func (b *blinder) idKeyOf(id string) idKey {
	return idKey{maphash.String(b.seeds[0], id), maphash.String(b.seeds[1], id)}
}

// macState is a keyed HMAC-SHA-256 with room for its input and its sum, so
// that a blind index allocates nothing (issue 21: each Write of a converted
// string and the sum escaped, four allocations an HMAC). crypto/hmac keeps
// the key's inner and outer states and restores them on Reset and Sum, so
// the key's two blocks are not hashed again either.
type macState struct {
	h   hash.Hash
	in  []byte
	sum []byte
}

// maxPooledInput bounds the input room a pooled macState keeps.
const maxPooledInput = 4 << 10

func (b *blinder) getMAC() *macState { return b.pool.Get().(*macState) }

func (b *blinder) putMAC(m *macState) {
	if cap(m.in) <= maxPooledInput {
		b.pool.Put(m)
	}
}

// mac returns HMAC(indexKey, m.in), and clears m.in: a pooled state keeps
// no value (an actor, an id) past the call.
func (m *macState) mac() [sha256.Size]byte {
	m.h.Reset()
	m.h.Write(m.in)
	clear(m.in)
	m.sum = m.h.Sum(m.sum[:0])
	return [sha256.Size]byte(m.sum)
}

// field returns the blind index of value in field f:
// HMAC(indexKey, name || 0x00 || value)[:16].
func (b *blinder) field(f byte, value string) [blindSize]byte {
	return b.fieldMAC(nil, f, value)
}

// fieldMAC is field computing with m (nil: one from the pool).
func (b *blinder) fieldMAC(m *macState, f byte, value string) [blindSize]byte {
	id := isID(f)
	var ik idKey
	if id {
		ik = b.idKeyOf(value)
	}
	var v [blindSize]byte
	var ok bool
	b.mu.RLock()
	if id {
		v, ok = b.ids[f][ik]
	} else {
		v, ok = b.cache[f][value]
	}
	b.mu.RUnlock()
	if ok {
		return v
	}
	own := m == nil
	if own {
		m = b.getMAC()
	}
	m.in = append(append(append(m.in[:0], fieldNames[f]...), 0), value...)
	sum := m.mac()
	if own {
		b.putMAC(m)
	}
	copy(v[:], sum[:])
	b.mu.Lock()
	if id {
		if len(b.ids[f]) >= blindCacheMax {
			clear(b.ids[f])
		}
		b.ids[f][ik] = v
	} else {
		if len(b.cache[f]) >= blindCacheMax {
			clear(b.cache[f])
		}
		b.cache[f][value] = v
	}
	b.mu.Unlock()
	return v
}

// forget drops the cached blind index of id in field f (an erased event's
// actor or resource: nothing in memory should still tie it to its index).
func (b *blinder) forget(f byte, id string) {
	ik := b.idKeyOf(id)
	b.mu.Lock()
	delete(b.ids[f], ik)
	b.mu.Unlock()
}

// forgetIDs empties the id cache (after retention shredded whole days).
func (b *blinder) forgetIDs() {
	b.mu.Lock()
	for f := range b.ids {
		clear(b.ids[f])
	}
	b.mu.Unlock()
}

// idem returns the idempotency key of a writer's id:
// HMAC(indexKey, "id" || 0x00 || len(submittedBy) (2 bytes) || submittedBy || id)[:16].
// The length prefix keeps (writer, id) pairs from running into each other.
func (b *blinder) idem(submittedBy, id string) [blindSize]byte {
	return b.idemMAC(nil, submittedBy, id)
}

// idemMAC is idem computing with m (nil: one from the pool).
func (b *blinder) idemMAC(m *macState, submittedBy, id string) [blindSize]byte {
	own := m == nil
	if own {
		m = b.getMAC()
	}
	m.in = append(m.in[:0], "id\x00"...)
	m.in = binary.BigEndian.AppendUint16(m.in, uint16(len(submittedBy)))
	m.in = append(append(m.in, submittedBy...), id...)
	sum := m.mac()
	if own {
		b.putMAC(m)
	}
	return [blindSize]byte(sum[:blindSize])
}

// mac returns HMAC(indexKey, label || 0x00 || data), whole: for cursors.
func (b *blinder) mac(label string, data []byte) [sha256.Size]byte {
	m := b.getMAC()
	m.in = append(append(append(m.in[:0], label...), 0), data...)
	sum := m.mac()
	b.putMAC(m)
	return sum
}

// blindRequest is one request's use of the blinder: an HMAC state of its
// own (no pool round trip per value) and a memo of the values of the
// fields with few values (actions, outcomes, sources), which the events of
// a request repeat: a repeat costs a lookup in a map of the request's, not
// the shared cache's lock and map (issue 21). Actors and resources go to
// the shared cache, which holds them by hash only (a lookup there is a
// few cache misses in a map of up to blindCacheMax entries, ~250 ns), except
// that an actor or resource equal to the previous event's is taken from
// the previous event: a request's events often come in runs of one actor,
// and a map of every id of the request would cost more to fill than it
// saves when they do not. Not safe for concurrent use; done returns the
// state to the pool.
type blindRequest struct {
	b    *blinder
	m    *macState
	memo [numFields + 1]map[string][blindSize]byte
	last [numFields + 1]struct {
		ok    bool
		value string
		blind [blindSize]byte
	}
}

func (b *blinder) request() *blindRequest { return &blindRequest{b: b, m: b.getMAC()} }

func (r *blindRequest) done() {
	r.b.putMAC(r.m)
	r.m = nil
}

// field is blinder.field.
func (r *blindRequest) field(f byte, value string) [blindSize]byte {
	if isID(f) {
		l := &r.last[f]
		if !l.ok || l.value != value {
			l.ok, l.value, l.blind = true, value, r.b.fieldMAC(r.m, f, value)
		}
		return l.blind
	}
	if v, ok := r.memo[f][value]; ok {
		return v
	}
	v := r.b.fieldMAC(r.m, f, value)
	if r.memo[f] == nil {
		r.memo[f] = make(map[string][blindSize]byte, 8)
	}
	r.memo[f][value] = v
	return v
}

// idem is blinder.idem.
func (r *blindRequest) idem(submittedBy, id string) [blindSize]byte {
	return r.b.idemMAC(r.m, submittedBy, id)
}
