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

// A payload ('p' i) has one of two versions:
//
//	1 || day(8) || nonce(12) || AES-256-GCM(day key, nonce, salt || event_bytes, aad = commitment)
//	2 || day(8) || time(12) || AES-256-GCM(event key, 0, salt || event_bytes, aad = commitment)
//
// Version 2 (written since erasure exists) seals each event under its own
// random key, used once (hence the fixed nonce). The event key is wrapped
// under the day key and stored small, in the value of the event's time-index
// key ('t' time i, found from the time in the payload header): erasing the
// event destroys those 60 bytes, and the payload, wherever its bytes linger,
// no longer opens. Version 1 payloads still open.
//
// The AAD binds the sealed bytes to the log entry: opening needs the
// commitment read from the log at i, so a payload moved to another index
// (or a log entry swapped under it) does not open.
const (
	payloadV1       = 1
	payloadV2       = 2
	payloadHeader   = 1 + 8 + nonceSize   // version 1
	payloadHeaderV2 = 1 + 8 + timeKeySize // version 2
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
// bytes.
func sealedSize(n int) int {
	return payloadHeaderV2 + event.SaltSize + n + tagSize + wrappedEventKeySize + blindSize
}

// seal returns the payload value (version 2) of one event sealed under the
// event key ekey, and ekey wrapped under the day key with the counter's
// nonce. tk is the event's time key. Both are taken from arena when it has
// room (sealedSize: a request's events share one allocation), else
// allocated. scratch, if not nil, is room for the key's AAD (a request's
// events reuse one).
func (d *dayKey) seal(arena *[]byte, scratch *[eventKeyAADSize]byte, ctr uint64, ekey []byte, tk *[timeKeySize]byte, salt *[event.SaltSize]byte, eventBytes []byte, commitment *[32]byte) (payload, wrapped []byte, err error) {
	aead, err := newAEAD(ekey)
	if err != nil {
		return nil, nil, err
	}
	n := len(salt) + len(eventBytes)
	var v, w []byte
	if arena != nil && len(*arena) >= sealedSize(len(eventBytes)) {
		a := *arena
		k := payloadHeaderV2 + n + tagSize
		v = a[:k:k]
		w = a[k : k+nonceSize : k+wrappedEventKeySize+blindSize]
		*arena = a[k+wrappedEventKeySize+blindSize:]
	} else {
		v = make([]byte, payloadHeaderV2+n+tagSize)
		w = make([]byte, nonceSize, wrappedEventKeySize+blindSize)
	}
	v[0] = payloadV2
	binary.BigEndian.PutUint64(v[1:], uint64(d.day))
	copy(v[9:], tk[:])
	pt := v[payloadHeaderV2 : payloadHeaderV2+n]
	copy(pt, salt[:])
	copy(pt[len(salt):], eventBytes)
	aead.Seal(pt[:0], zeroNonce[:], pt, commitment[:])

	// w has room for the outcome's blind value the 't' key's value appends.
	d.nonce(w, ctr)
	if scratch == nil {
		scratch = new([eventKeyAADSize]byte)
	}
	return v, d.aead.Seal(w, w, ekey, appendEventKeyAAD(scratch[:0], commitment[:])), nil
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

// payloadDay returns the day of a payload and, for version 2, its time key.
func payloadDay(v []byte) (day int64, tk []byte, err error) {
	switch {
	case len(v) >= payloadHeader+event.SaltSize+tagSize && v[0] == payloadV1:
		return int64(binary.BigEndian.Uint64(v[1:])), nil, nil
	case len(v) >= payloadHeaderV2+event.SaltSize+tagSize && v[0] == payloadV2:
		return int64(binary.BigEndian.Uint64(v[1:])), v[9:payloadHeaderV2], nil
	}
	return 0, nil, fmt.Errorf("%w: malformed payload", ErrCorrupt)
}

// errKeyGone means a version-2 payload whose wrapped event key is not
// stored: the event is being erased or its day shredded.
var errKeyGone = errors.New("events: event key destroyed")

// openPayload opens payload v of index i under the commitment c read from
// the log. For version 2, tval is the value of the event's 't' key if the
// caller has it (nil: it is read).
func (l *Layer) openPayload(i int64, v, c, tval []byte) (salt [event.SaltSize]byte, eventBytes []byte, err error) {
	day, tk, err := payloadDay(v)
	if err != nil {
		return salt, nil, err
	}
	d, err := l.dayKeyFor(day, false)
	if err != nil {
		return salt, nil, err
	}
	var pt []byte
	if tk == nil {
		pt, err = d.aead.Open(nil, v[9:payloadHeader], v[payloadHeader:], c)
		if err != nil {
			return salt, nil, fmt.Errorf("%w: payload does not open under its day key and log entry", ErrCorrupt)
		}
	} else {
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
		w := tval[:wrappedEventKeySize]
		ekey, err := d.aead.Open(nil, w[:nonceSize], w[nonceSize:], eventKeyAAD(c))
		if err != nil {
			return salt, nil, fmt.Errorf("%w: event key does not open under its day key and log entry", ErrCorrupt)
		}
		aead, err := newAEAD(ekey)
		if err != nil {
			return salt, nil, err
		}
		pt, err = aead.Open(nil, zeroNonce[:], v[payloadHeaderV2:], c)
		if err != nil {
			return salt, nil, fmt.Errorf("%w: payload does not open under its event key and log entry", ErrCorrupt)
		}
	}
	copy(salt[:], pt)
	return salt, pt[event.SaltSize:], nil
}
