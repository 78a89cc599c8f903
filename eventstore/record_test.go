package eventstore

import (
	"errors"
	"testing"

	"indelible.dev/event"
	"indelible.dev/ledger"
)

// TestAppendRefusesServerRecords: a writer's event with an action or source
// reserved for the server is refused, naming its position and the field,
// and nothing of the request is stored; Record takes them (and only them)
// and commits its writes in the same batch.
func TestAppendRefusesServerRecords(t *testing.T) {
	e := newEnv(t, nil)
	ok := event.Event{Action: "user.login"}
	for _, tc := range []struct {
		ev    event.Event
		field string
	}{
		{event.Event{Action: "indelible.read"}, "action"},
		{event.Event{Action: "indelible.erase", Source: "app"}, "action"},
		{event.Event{Action: "INDELIBLE.token.create"}, "action"},
		{event.Event{Action: " indelible.x"}, "action"},
		{event.Event{Action: "indelible"}, "action"},
		{event.Event{Action: "user.login", Source: "indelible"}, "source"},
		{event.Event{Action: "user.login", Source: "Indelible"}, "source"},
	} {
		_, err := e.l.Append(t.Context(), "writer", []event.Event{ok, tc.ev})
		var ee *event.Error
		if !errors.Is(err, event.ErrReserved) || !errors.As(err, &ee) || ee.Field != tc.field || ee.Position != 1 {
			t.Errorf("Append(%+v): %v, want ErrReserved on field %s of event 1", tc.ev, err, tc.field)
		}
	}
	for _, ev := range []event.Event{{Action: "indelibleish"}, {Action: "app.indelible.read"}, {Action: "x", Source: "indelible-app"}} {
		if _, err := e.l.Append(t.Context(), "writer", []event.Event{ev}); err != nil {
			t.Errorf("Append(%+v): %v", ev, err)
		}
	}
	if n := e.log.QueueLen(); n != 0 {
		t.Fatalf("queue %d", n)
	}

	// Record: only server records; its writes commit with them.
	if _, err := e.l.Record(t.Context(), ServerActor, []event.Event{ok}, nil); !errors.Is(err, ErrNotServerRecord) {
		t.Fatalf("Record of a writer's event: %v", err)
	}
	if _, err := e.l.Record(t.Context(), ServerActor, []event.Event{{Action: "indelible.x", Source: "app"}}, nil); !errors.Is(err, ErrNotServerRecord) {
		t.Fatalf("Record with another source: %v", err)
	}
	if _, err := e.l.Record(t.Context(), ServerActor, []event.Event{{Action: "indelible.x", ID: "a"}}, func(int64, ledger.Writer) error { return nil }); !errors.Is(err, ErrNotServerRecord) {
		t.Fatalf("Record with an id and writes: %v", err)
	}
	var at int64 = -1
	res, err := e.l.Record(t.Context(), ServerActor, []event.Event{{Action: "indelible.test"}}, func(i int64, w ledger.Writer) error {
		at = i
		return w.Set(TokenKey("t"), []byte("v"))
	})
	if err != nil || res[0].Index != at {
		t.Fatalf("Record: %v %v, writes saw index %d", res, err, at)
	}
	if v, err := e.log.GetExt(TokenKey("t")); err != nil || string(v) != "v" {
		t.Fatalf("the record's write: %q %v", v, err)
	}
	if _, _, err := e.log.WaitSize(t.Context(), res[0].Index+1); err != nil {
		t.Fatal(err)
	}
	r, err := e.l.Get(res[0].Index)
	if err != nil || r.Event.Source != event.ServerSource || r.Event.SubmittedBy != ServerActor {
		t.Fatalf("the record: %+v %v", r.Event, err)
	}
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}
}
