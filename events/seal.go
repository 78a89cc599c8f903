package events

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

// A payload ('p' i) is
//
//	version(1) = 1 || day(8) || nonce(12) || AES-256-GCM(day key, nonce, salt || event_bytes, aad = commitment)
//
// The AAD binds the sealed bytes to the log entry: opening needs the
// commitment read from the log at i, so a payload moved to another index
// (or a log entry swapped under it) does not open.
const (
	payloadVersion = 1
	payloadHeader  = 1 + 8 + nonceSize
)

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

// seal returns the payload value of one event: the header, then salt ||
// eventBytes sealed in place.
func (d *dayKey) seal(ctr uint64, salt *[event.SaltSize]byte, eventBytes []byte, commitment *[32]byte) []byte {
	n := len(salt) + len(eventBytes)
	v := make([]byte, payloadHeader+n+tagSize)
	v[0] = payloadVersion
	binary.BigEndian.PutUint64(v[1:], uint64(d.day))
	nonce := v[9:payloadHeader]
	d.nonce(nonce, ctr)
	pt := v[payloadHeader : payloadHeader+n]
	copy(pt, salt[:])
	copy(pt[len(salt):], eventBytes)
	d.aead.Seal(pt[:0], nonce, pt, commitment[:])
	return v
}

// openPayload opens a payload value under the commitment read from the log.
func (l *Layer) openPayload(v []byte, commitment []byte) (salt [event.SaltSize]byte, eventBytes []byte, err error) {
	if len(v) < payloadHeader+event.SaltSize+tagSize || v[0] != payloadVersion {
		return salt, nil, fmt.Errorf("%w: malformed payload", ErrCorrupt)
	}
	day := int64(binary.BigEndian.Uint64(v[1:]))
	d, err := l.dayKeyFor(day, false)
	if err != nil {
		return salt, nil, err
	}
	pt, err := d.aead.Open(nil, v[9:payloadHeader], v[payloadHeader:], commitment)
	if err != nil {
		return salt, nil, fmt.Errorf("%w: payload does not open under its day key and log entry", ErrCorrupt)
	}
	copy(salt[:], pt)
	return salt, pt[event.SaltSize:], nil
}
