package eventstore

import (
	"errors"
	"testing"

	"indelible.dev/event"
)

// FuzzCursor feeds arbitrary cursors to List: each is refused with
// ErrBadCursor unless it is exactly one the layer issued for the query.
func FuzzCursor(f *testing.F) {
	e := newEnv(f, nil)
	var evs []event.Event
	for range 30 {
		evs = append(evs, event.Event{Action: "a", Actor: &event.Actor{ID: "alice"}})
	}
	e.append("w", evs...)
	q := Query{Actor: "alice", Limit: 4}
	issued := map[string]bool{}
	for c := ""; ; {
		q.Cursor = c
		p, err := e.l.List(q)
		if err != nil {
			f.Fatal(err)
		}
		if p.NextCursor == "" {
			break
		}
		issued[p.NextCursor] = true
		f.Add(p.NextCursor)
		c = p.NextCursor
	}
	f.Add("")
	f.Add("AQ")
	f.Add("==")
	f.Fuzz(func(t *testing.T, c string) {
		if c == "" {
			return
		}
		q := Query{Actor: "alice", Limit: 4, Cursor: c}
		p, err := e.l.List(q)
		if issued[c] {
			if err != nil {
				t.Fatalf("issued cursor refused: %v", err)
			}
			return
		}
		if !errors.Is(err, ErrBadCursor) {
			t.Fatalf("cursor %q: %v, %d records", c, err, len(p.Records))
		}
	})
}

// FuzzOpenPayload feeds arbitrary payload values (of every version) to the
// opening of a stored event's payload: it never panics, fails with
// ErrCorrupt (or, for a version-2 header naming no stored 't' key, as a
// destroyed key), and only the value stored at that index opens, to that
// event.
func FuzzOpenPayload(f *testing.F) {
	e := newEnv(f, nil)
	e.l.sealV2 = true
	old := e.append("w", event.Event{Action: "a", Actor: &event.Actor{ID: "alice"}})
	e.l.sealV2 = false
	cur := e.append("w", event.Event{Action: "b", Actor: &event.Actor{ID: "bob"}})
	type stored struct {
		v, c []byte
		r    Record
	}
	var byIndex []stored
	for _, a := range []Appended{old[0], cur[0]} {
		v, err := e.log.GetExt(payloadKey(a.Index))
		if err != nil {
			f.Fatal(err)
		}
		c, err := e.log.Entry(a.Index)
		if err != nil {
			f.Fatal(err)
		}
		r, err := e.l.Get(a.Index)
		if err != nil {
			f.Fatal(err)
		}
		byIndex = append(byIndex, stored{v, c, r})
		f.Add(uint8(a.Index), v)
		f.Add(uint8(1-a.Index), v) // under the other event's entry
	}
	f.Add(uint8(0), []byte{payloadV3})
	f.Add(uint8(1), []byte{payloadV1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, at uint8, v []byte) {
		i := int64(at % 2)
		s := byIndex[i]
		salt, b, err := e.l.openPayload(i, v, s.c, nil)
		if err != nil {
			// errKeyGone: a version-2 header naming a 't' key not stored.
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, errKeyGone) {
				t.Fatalf("payload %x at %d: %v, want ErrCorrupt", v, i, err)
			}
			return
		}
		if salt != s.r.Salt || string(b) != string(s.r.EventBytes) {
			t.Fatalf("payload %x opened at %d to another event", v, i)
		}
	})
}
