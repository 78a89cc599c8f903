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
