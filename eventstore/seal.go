package eventstore

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"indelible.dev/event"
	"indelible.dev/ledger"
)

// A payload ('p' i) has one of three versions:
//
//	1 || day(8) || nonce(12) || AES-256-GCM(day key, nonce, salt || event_bytes, aad = commitment)
//	2 || day(8) || time(12) || AES-256-GCM(event key, 0, salt || event_bytes, aad = commitment)
//	3 || day(8) || wrapped event key(60) || AES-256-GCM(event key, 0, salt || event_bytes, aad = commitment)
//
// Versions 2 and 3 seal each event under its own random key, used once
// (hence the fixed nonce), wrapped under the day key. Version 3 (written
// today) keeps the wrapped key in the payload's header, so a read by index
// is one lookup; version 2 kept it in the value of the event's time-index
// key ('t' time i, found from the time in its header). Either way erasing
// the event destroys the wrapped key with the payload (the purge compacts
// both ranges), and retention destroys the day key, without which no
// wrapped key opens. Versions 1 and 2 still open.
//
// The AAD binds the sealed bytes to the log entry: opening needs the
// commitment read from the log at i, so a payload moved to another index
// (or a log entry swapped under it) does not open.
const (
	payloadV1       = 1
	payloadV2       = 2
	payloadV3       = 3
	payloadHeader   = 1 + 8 + nonceSize   // version 1
	payloadHeaderV2 = 1 + 8 + timeKeySize // version 2
	payloadHeaderV3 = 1 + 8 + wrappedEventKeySize
	// wrappedEventKeySize is a wrapped event key: nonce(12) || AES-256-GCM
	// (day key, nonce, event key, aad = "indelible event key" 0x00 commitment).
	wrappedEventKeySize = nonceSize + dataKeySize + tagSize
)

var zeroNonce [nonceSize]byte

// ErrCorrupt means stored event data does not check out: a payload that does
// not open, or whose opening does not match the log entry.
var ErrCorrupt = errors.New("events: stored event is corrupt")

// dayKey is one UTC day's data key, unwrapped, with its AEAD (reused for
// every payload of the day) and its nonce counter.
type dayKey struct {
	day     int64
	aead    cipher.AEAD
	wrapped []byte // as stored at 'k' day
	// durable is set once a batch holding the wrapped key has committed (or
	// the key was read from the store). Until then every Append that seals
	// under it writes the wrapped key again in its own batch, so no payload
	// is ever durable without its key.
	durable atomic.Bool

	// Nonces: a random 96-bit start per day key and process, then a counter
	// added to its low 64 bits. Nonces never repeat within a process, and
	// two processes (restarts the same day) would have to draw overlapping
	// ranges of 2^64 to collide. A counter also lifts the 2^32-messages
	// limit of random GCM nonces, which a busy day could reach.
	nmu   sync.Mutex
	nbase [nonceSize]byte
	nctr  uint64
}

// nonces reserves n consecutive nonces and returns the first counter value.
func (d *dayKey) nonces(n int) uint64 {
	d.nmu.Lock()
	c := d.nctr
	d.nctr += uint64(n)
	d.nmu.Unlock()
	return c
}

func (d *dayKey) nonce(dst []byte, ctr uint64) {
	copy(dst, d.nbase[:])
	lo := binary.BigEndian.Uint64(d.nbase[4:]) + ctr
	binary.BigEndian.PutUint64(dst[4:], lo)
}

func (l *Layer) newDayKey(day int64, key, wrapped []byte) (*dayKey, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	d := &dayKey{day: day, aead: aead, wrapped: wrapped}
	if _, err := rand.Read(d.nbase[:]); err != nil {
		return nil, fmt.Errorf("events: drawing a nonce base: %w", err)
	}
	return d, nil
}

// dayKeyFor returns the data key of day, loading it from the store or, for
// sealing (create), making a new one if the day has none yet.
func (l *Layer) dayKeyFor(day int64, create bool) (*dayKey, error) {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	if d, ok := l.days[day]; ok {
		return d, nil
	}
	wrapped, err := l.log.GetExt(dayKeyKey(day))
	switch {
	case err == nil:
		key, err := l.keys.UnwrapKey(day, wrapped)
		if err != nil {
			return nil, fmt.Errorf("events: opening the data key of day %d: %w", day, err)
		}
		d, err := l.newDayKey(day, key, wrapped)
		if err != nil {
			return nil, err
		}
		// Only Append writes day keys, and it caches a key before writing
		// it: one found in the store but not cached was written by an
		// earlier process, so it is durable.
		d.durable.Store(true)
		l.days[day] = d
		return d, nil
	case !errors.Is(err, ledger.ErrNotFound):
		return nil, fmt.Errorf("events: reading the data key of day %d: %w", day, err)
	case !create:
		l.lmu.RLock()
		gone := l.isShredded(day) || l.shedding[day]
		l.lmu.RUnlock()
		if gone {
			// A payload read before retention deleted it with its day
			// key (a stream's chunk, a page's fetch): the event is gone.
			return nil, fmt.Errorf("%w: day %d was shredded", errKeyGone, day)
		}
		return nil, fmt.Errorf("%w: no data key for day %d", ErrCorrupt, day)
	}
	l.lmu.RLock()
	shredded := l.isShredded(day)
	l.lmu.RUnlock()
	if shredded {
		return nil, fmt.Errorf("events: day %d was shredded by retention: no event can be sealed under it", day)
	}
	key := make([]byte, dataKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("events: drawing a data key: %w", err)
	}
	wrapped, err = l.keys.WrapKey(day, key)
	if err != nil {
		return nil, fmt.Errorf("events: wrapping the data key of day %d: %w", day, err)
	}
	d, err := l.newDayKey(day, key, wrapped)
	if err != nil {
		return nil, err
	}
	l.days[day] = d
	return d, nil
}

// sealedSize is the bytes seal takes from its arena for an event of n
// bytes: the payload and room for the 't' value (the blind outcome; for
// version 2, the wrapped key before it).
func sealedSize(n int) int {
	return max(payloadHeaderV3, payloadHeaderV2+wrappedEventKeySize) + event.SaltSize + n + tagSize + blindSize
}

// seal returns the payload value of one event sealed under the event key
// ekey, which it wraps under the day key with the counter's nonce, and the
// start of the event's 't' value: empty with room for the blind outcome
// (version 3, the wrapped key in the payload), or, with v2 (tests only:
// mixed stores), the wrapped key with that room after it, the payload
// being version 2 with the time key tk in its header. Both are taken from
// arena when it has room (sealedSize: a request's events share one
// allocation), else allocated. scratch, if not nil, is room for the key's
// AAD (a request's events reuse one).
func (d *dayKey) seal(arena *[]byte, scratch *[eventKeyAADSize]byte, ctr uint64, ekey []byte, tk *[timeKeySize]byte, salt *[event.SaltSize]byte, eventBytes []byte, commitment *[32]byte, v2 bool) (payload, tval []byte, err error) {
	aead, err := newAEAD(ekey)
	if err != nil {
		return nil, nil, err
	}
	hdr, tlen := payloadHeaderV3, 0
	if v2 {
		hdr, tlen = payloadHeaderV2, wrappedEventKeySize
	}
	n := len(salt) + len(eventBytes)
	var v, w []byte
	if arena != nil && len(*arena) >= sealedSize(len(eventBytes)) {
		a := *arena
		k := hdr + n + tagSize
		v = a[:k:k]
		w = a[k : k : k+tlen+blindSize]
		*arena = a[k+tlen+blindSize:]
	} else {
		v = make([]byte, hdr+n+tagSize)
		w = make([]byte, 0, tlen+blindSize)
	}
	binary.BigEndian.PutUint64(v[1:], uint64(d.day))
	pt := v[hdr : hdr+n]
	copy(pt, salt[:])
	copy(pt[len(salt):], eventBytes)
	aead.Seal(pt[:0], zeroNonce[:], pt, commitment[:])

	if scratch == nil {
		scratch = new([eventKeyAADSize]byte)
	}
	aad := appendEventKeyAAD(scratch[:0], commitment[:])
	if v2 {
		v[0] = payloadV2
		copy(v[9:], tk[:])
		w = w[:nonceSize]
		d.nonce(w, ctr)
		return v, d.aead.Seal(w, w, ekey, aad), nil
	}
	v[0] = payloadV3
	wk := v[9 : 9+nonceSize : payloadHeaderV3] // sealed in place, in the header
	d.nonce(wk, ctr)
	d.aead.Seal(wk, wk, ekey, aad)
	return v, w, nil
}

// eventKeyAADSize is the size of an event key's AAD.
const eventKeyAADSize = len(eventKeyLabel) + 32

const eventKeyLabel = "indelible event key\x00"

func eventKeyAAD(commitment []byte) []byte {
	return appendEventKeyAAD(make([]byte, 0, len(eventKeyLabel)+len(commitment)), commitment)
}

func appendEventKeyAAD(b, commitment []byte) []byte {
	b = append(b, eventKeyLabel...)
	return append(b, commitment...)
}

// payloadDay returns the day of a payload and, for version 2, its time key
// (the 't' key whose value holds its wrapped event key). Versions 1 and 3
// need no 't' value to open: tk is nil.
func payloadDay(v []byte) (day int64, tk []byte, err error) {
	switch {
	case len(v) >= payloadHeaderV3+event.SaltSize+tagSize && v[0] == payloadV3:
		return int64(binary.BigEndian.Uint64(v[1:])), nil, nil
	case len(v) >= payloadHeader+event.SaltSize+tagSize && v[0] == payloadV1:
		return int64(binary.BigEndian.Uint64(v[1:])), nil, nil
	case len(v) >= payloadHeaderV2+event.SaltSize+tagSize && v[0] == payloadV2:
		return int64(binary.BigEndian.Uint64(v[1:])), v[9:payloadHeaderV2], nil
	}
	return 0, nil, fmt.Errorf("%w: malformed payload", ErrCorrupt)
}

// errKeyGone means an event key that is destroyed or being destroyed: a
// version-2 payload whose wrapped event key is not stored (the event is
// being erased or its day shredded), a payload of a day retention is
// shredding (its index keys may already be gone), or one read before
// retention deleted it with its day key.
var errKeyGone = errors.New("events: event key destroyed")

// openPayload opens payload v of index i under the commitment c read from
// the log. For version 2, tval is the value of the event's 't' key if the
// caller has it (nil: it is read); versions 1 and 3 ignore it. A payload
// of a day being shredded, of any version, does not open (errKeyGone): a
// read sees the day gone from the mark on, not half gone as retention
// drops its events' index keys (a day may hold every version: the day of
// an upgrade).
func (l *Layer) openPayload(i int64, v, c, tval []byte) (salt [event.SaltSize]byte, eventBytes []byte, err error) {
	if l.sheddingAny.Load() {
		day, _, err := payloadDay(v)
		if err != nil {
			return salt, nil, err
		}
		l.lmu.RLock()
		gone := l.shedding[day]
		l.lmu.RUnlock()
		if gone {
			return salt, nil, errKeyGone
		}
	}
	return l.openPayloadAny(i, v, c, tval)
}

// openPayloadAny is openPayload for retention's own pass over a day being
// shredded.
func (l *Layer) openPayloadAny(i int64, v, c, tval []byte) (salt [event.SaltSize]byte, eventBytes []byte, err error) {
	day, tk, err := payloadDay(v)
	if err != nil {
		return salt, nil, err
	}
	d, err := l.dayKeyFor(day, false)
	if err != nil {
		return salt, nil, err
	}
	var pt []byte
	switch v[0] {
	case payloadV1:
		pt, err = d.aead.Open(nil, v[9:payloadHeader], v[payloadHeader:], c)
		if err != nil {
			return salt, nil, fmt.Errorf("%w: payload does not open under its day key and log entry", ErrCorrupt)
		}
	case payloadV3:
		if pt, err = openSealed(d, v[9:payloadHeaderV3], v[payloadHeaderV3:], c); err != nil {
			return salt, nil, err
		}
	default: // version 2
		if tval == nil {
			tval, err = l.log.GetExt(timeIndexKey(tk, i))
			if errors.Is(err, ledger.ErrNotFound) {
				return salt, nil, errKeyGone
			}
			if err != nil {
				return salt, nil, fmt.Errorf("events: reading the key of event %d: %w", i, err)
			}
		}
		if len(tval) < wrappedEventKeySize {
			return salt, nil, fmt.Errorf("%w: time index value of %d bytes", ErrCorrupt, len(tval))
		}
		if pt, err = openSealed(d, tval[:wrappedEventKeySize], v[payloadHeaderV2:], c); err != nil {
			return salt, nil, err
		}
	}
	copy(salt[:], pt)
	return salt, pt[event.SaltSize:], nil
}

// openSealed unwraps the wrapped event key w under day key d and opens the
// sealed bytes with it, both bound to the commitment c.
func openSealed(d *dayKey, w, sealed, c []byte) ([]byte, error) {
	var aad [eventKeyAADSize]byte
	ekey, err := d.aead.Open(nil, w[:nonceSize], w[nonceSize:], appendEventKeyAAD(aad[:0], c))
	if err != nil {
		return nil, fmt.Errorf("%w: event key does not open under its day key and log entry", ErrCorrupt)
	}
	aead, err := newAEAD(ekey)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, zeroNonce[:], sealed, c)
	if err != nil {
		return nil, fmt.Errorf("%w: payload does not open under its event key and log entry", ErrCorrupt)
	}
	return pt, nil
}

// payloadV3From returns an index from which on every stored payload is of
// version 3: the lowest i such that the first payload at or after i is of
// version 3, or there is none. Payload versions grow with the index (a
// release writes one version, and the store's format marker keeps an
// earlier release from writing to a store a later one opened), so a
// binary search over the indexes finds it in about log2(n) seeks. Were a
// version-2 payload above it all the same, it would still open: reading
// its 't' value on its own.
func (l *Layer) payloadV3From() (int64, error) {
	first := func(i int64, reverse bool) (idx int64, v3, ok bool, err error) {
		err = l.log.ScanExt(payloadKey(i), []byte{prefixPayload + 1}, reverse, func(k, v []byte) bool {
			idx = int64(binary.BigEndian.Uint64(k[1:]))
			v3, ok = len(v) > 0 && v[0] == payloadV3, true
			return false
		})
		return idx, v3, ok, err
	}
	last, _, ok, err := first(0, true)
	if err != nil || !ok {
		return 0, err
	}
	lo, hi := int64(0), last+1 // no payload at or after hi
	for lo < hi {
		mid := lo + (hi-lo)/2
		_, v3, ok, err := first(mid, false)
		if err != nil {
			return 0, fmt.Errorf("events: finding the first version-3 payload: %w", err)
		}
		if v3 || !ok {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}
