package eventstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"indelible.dev/event"
	"indelible.dev/ledger"
)

// Check verifies the events layer's invariants over the whole store and
// returns the first violation (wrapping ErrCorrupt) or nil:
//
//   - every payload has a published log entry, opens under its keys, and its
//     commitment is that entry; no payload is in a shredded day's range or
//     has a tombstone;
//   - every time, field and idempotency key is one of those the stored
//     events imply (none is left without its payload or log entry), and
//     every event has all of them, unless retention is shredding its day;
//   - every tombstone is of a published index without a payload; no
//     shredded day still has its data key.
//
// It reads every event and keeps the index keys the events imply in
// memory: it is for tests and offline checks of a quiet store, not for a
// busy server.
func (l *Layer) Check() error {
	if l.closed.Load() {
		return ErrClosed
	}
	cp, _ := l.log.Published()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: check: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	l.lmu.RLock()
	shredded := append([]shredRange(nil), l.shredded...)
	shedding := make(map[int64]bool, len(l.shedding))
	for d := range l.shedding {
		shedding[d] = true
	}
	l.lmu.RUnlock()
	inShredded := func(i int64) bool {
		for _, r := range shredded {
			if i >= r.Lo && i < r.Hi {
				return true
			}
		}
		return false
	}

	// Payloads: each opens, and implies its index keys.
	want := map[string]bool{}
	may := map[string]bool{} // keys of events of days being shredded
	var keys, vals [][]byte
	if err := l.log.ScanExt([]byte{prefixPayload}, []byte{prefixPayload + 1}, false, func(k, v []byte) bool {
		keys = append(keys, bytes.Clone(k))
		vals = append(vals, bytes.Clone(v))
		return true
	}); err != nil {
		return fmt.Errorf("events: check: scanning payloads: %w", err)
	}
	for n, k := range keys {
		if len(k) != 1+indexSize {
			return bad("payload key %x", k)
		}
		i := int64(binary.BigEndian.Uint64(k[1:]))
		if i >= cp.N {
			return bad("payload at index %d, beyond the published size %d", i, cp.N)
		}
		if inShredded(i) {
			return bad("payload at index %d, in a shredded day", i)
		}
		if _, err := l.log.GetExt(tombKey(i)); err == nil {
			return bad("payload at index %d, which has a tombstone", i)
		}
		c, err := l.entry(i)
		if err != nil {
			return bad("payload at index %d without a log entry: %v", i, err)
		}
		// A day being shredded loses its events' index keys a chunk at a
		// time: an event of it may have them or not (a version-2 event
		// without its 't' key, which held its event key, is not opened).
		day, _, _ := payloadDay(vals[n])
		going := shedding[day]
		salt, b, err := l.openPayloadAny(i, vals[n], c, nil)
		if errors.Is(err, errKeyGone) {
			if going {
				continue // its index keys are gone with its event key
			}
			return bad("event %d has no event key", i)
		}
		if err != nil {
			return bad("event %d: %v", i, err)
		}
		if cm := event.Commitment(salt, b); string(cm[:]) != string(c) {
			return bad("event %d does not match its log entry", i)
		}
		e, err := event.Decode(b)
		if err != nil {
			return bad("event %d: %v", i, err)
		}
		ks, outcome := l.indexKeys(&e)
		if e.ID != "" {
			ks = append(ks, idemKey(l.blind.idem(e.SubmittedBy, e.ID)))
		}
		for j, k := range ks {
			if k[0] != prefixIdem {
				binary.BigEndian.PutUint64(k[len(k)-indexSize:], uint64(i))
			}
			if going {
				may[string(k)] = true
				continue
			}
			want[string(k)] = true
			if j == 0 {
				v, err := l.log.GetExt(k)
				if err != nil {
					return bad("event %d: time key: %v", i, err)
				}
				// Its value: the blind outcome (or nothing), after the
				// wrapped event key for a version-2 payload.
				size := len(outcome)
				if vals[n][0] == payloadV2 {
					size += wrappedEventKeySize
				}
				if len(v) != size || string(outcomeOf(v)) != string(outcome) {
					return bad("event %d: time key value %x, want the outcome %x (payload version %d)", i, v, outcome, vals[n][0])
				}
			}
		}
	}

	// Everything else.
	var ferr error
	err := l.log.ScanExt(nil, nil, false, func(k, v []byte) bool {
		switch k[0] {
		case prefixPayload, prefixDayKey, prefixToken:
		case prefixTime, prefixField, prefixIdem:
			if !want[string(k)] && !may[string(k)] {
				ferr = bad("index key %x of no stored event", k)
				return false
			}
			if k[0] == prefixIdem {
				i := int64(binary.BigEndian.Uint64(v))
				if _, err := l.log.GetExt(payloadKey(i)); err != nil {
					ferr = bad("idempotency key %x points to index %d, which has no payload", k, i)
					return false
				}
			}
			delete(want, string(k))
		case prefixTomb:
			i := int64(binary.BigEndian.Uint64(k[1:]))
			var ts Tombstone
			if err := json.Unmarshal(v, &ts); err != nil || ts.Index != i {
				ferr = bad("tombstone %d: %s", i, v)
				return false
			}
			if i >= cp.N || ts.EraseIndex >= cp.N {
				ferr = bad("tombstone %d (erase event %d) beyond the published size %d", i, ts.EraseIndex, cp.N)
				return false
			}
		case prefixLife:
			if len(k) == 10 && k[1] == lifeShredded {
				day := int64(binary.BigEndian.Uint64(k[2:]))
				if _, err := l.log.GetExt(dayKeyKey(day)); !errors.Is(err, ledger.ErrNotFound) {
					ferr = bad("shredded day %d still has its data key", day)
					return false
				}
			}
		default:
			ferr = bad("unknown key %x", k)
			return false
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("events: check: scanning: %w", err)
	}
	if ferr != nil {
		return ferr
	}
	for k := range want {
		return bad("missing index key %x", k)
	}
	return nil
}
