package eventstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/event"
	itlog "indelible.dev/tlog"
)

func TestAppendGet(t *testing.T) {
	e := newEnv(t, nil)
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	in := []event.Event{
		ev("alice", "kubectl.exec", "prod/p1", "success", "kube", t0),
		{Action: "login"}, // time defaults to received_at
	}
	a := e.append("writer", in...)
	if len(a) != 2 || a[0].Index != 0 || a[1].Index != 1 || a[0].Duplicate {
		t.Fatalf("appended %+v", a)
	}
	if in[1].SubmittedBy != "" || !in[1].Time.IsZero() {
		t.Fatal("Append modified the caller's events")
	}
	for i, want := range in {
		r, err := e.l.Get(int64(i))
		if err != nil {
			t.Fatal(err)
		}
		if r.Event.Action != want.Action || r.Event.SubmittedBy != "writer" || !r.Event.ReceivedAt.Equal(e.clock.Now()) {
			t.Fatalf("record %d: %+v", i, r.Event)
		}
		entry, err := e.log.Entry(int64(i))
		if err != nil {
			t.Fatal(err)
		}
		if c := event.Commitment(r.Salt, r.EventBytes); !bytes.Equal(entry, c[:]) || r.Commitment != c {
			t.Fatalf("record %d: commitment does not match the log entry", i)
		}
		// The JSON form (contract).
		j, err := json.Marshal(r.Wire())
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		if len(m) != 5 || string(m["index"]) != strings.TrimSpace(string(must(json.Marshal(i)))) || !bytes.Equal(m["event"], r.EventBytes) {
			t.Fatalf("record JSON %s", j)
		}
		for k, want := range map[string][]byte{"event_bytes": r.EventBytes, "salt": r.Salt[:], "commitment": r.Commitment[:]} {
			var s string
			json.Unmarshal(m[k], &s)
			if got, _ := base64.StdEncoding.DecodeString(s); !bytes.Equal(got, want) {
				t.Fatalf("record JSON %s: %s", k, j)
			}
		}
	}
	if r, _ := e.l.Get(0); !r.Event.Time.Equal(t0) {
		t.Fatalf("time %v", r.Event.Time)
	}
	if r, _ := e.l.Get(1); !r.Event.Time.Equal(e.clock.Now()) {
		t.Fatalf("default time %v", r.Event.Time)
	}
	for _, i := range []int64{-1, 2, 1 << 40} {
		if _, err := e.l.Get(i); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%d): %v", i, err)
		}
	}
	// An entry written by no event.
	if _, err := e.log.Append(context.Background(), make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Get(2); !errors.Is(err, ErrNotEvent) {
		t.Fatalf("Get of a raw entry: %v", err)
	}
	// Survives a restart.
	e.reopen()
	if r, err := e.l.Get(0); err != nil || r.Event.Actor.ID != "alice" {
		t.Fatalf("after reopen: %+v %v", r, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestAppendTooLarge(t *testing.T) {
	e := newEnv(t, nil)
	big := event.Event{Action: "x", Reason: strings.Repeat("a", 1000), Metadata: json.RawMessage(`{"a":"` + strings.Repeat("b", event.MaxEventBytes) + `"}`)}
	_, err := e.l.Append(context.Background(), "w", []event.Event{{Action: "ok"}, big})
	var ee *event.Error
	if !errors.As(err, &ee) || !errors.Is(err, event.ErrTooLarge) || ee.Position != 1 {
		t.Fatalf("err %v", err)
	}
	if cp, _ := e.log.Checkpoint(); cp.N != 0 {
		t.Fatalf("stored %d entries", cp.N)
	}
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t, nil)
	a := e.append("w1", event.Event{ID: "x", Action: "a"}, event.Event{ID: "y", Action: "b"}, event.Event{ID: "x", Action: "c"})
	if a[0].Index != 0 || a[1].Index != 1 || a[2].Index != 0 || !a[2].Duplicate || a[0].Duplicate || a[2].ID != "x" {
		t.Fatalf("first request %+v", a)
	}
	b := e.append("w1", event.Event{ID: "y", Action: "z"}, event.Event{ID: "new", Action: "z"})
	if b[0].Index != 1 || !b[0].Duplicate || b[1].Index != 2 || b[1].Duplicate {
		t.Fatalf("second request %+v", b)
	}
	// Another writer's id is another id.
	c := e.append("w2", event.Event{ID: "x", Action: "a"})
	if c[0].Index != 3 || c[0].Duplicate {
		t.Fatalf("other writer %+v", c)
	}
	// A writer name that runs into the id does not collide.
	d := e.append("w", event.Event{ID: "1x", Action: "a"})
	if d[0].Duplicate {
		t.Fatalf("(w, 1x) collided with (w1, x)")
	}
	if cp, _ := e.log.Checkpoint(); cp.N != 5 {
		t.Fatalf("size %d, want 5", cp.N)
	}
	e.reopen()
	f := e.append("w1", event.Event{ID: "x", Action: "a"})
	if f[0].Index != 0 || !f[0].Duplicate {
		t.Fatalf("after reopen %+v", f)
	}
	// Large requests, ids in no order (the lookup sorts them): the second
	// overlaps the first by half, and repeats an id of its own.
	mk := func(from, to int) []event.Event {
		var evs []event.Event
		for k := from; k < to; k++ {
			evs = append(evs, event.Event{ID: fmt.Sprintf("bulk-%d", k*7919%1000), Action: "bulk"})
		}
		return evs
	}
	g := e.append("w1", mk(0, 300)...)
	byID := map[string]int64{}
	for _, a := range g {
		if a.Duplicate {
			t.Fatalf("first bulk request: %+v is a duplicate", a)
		}
		byID[a.ID] = a.Index
	}
	e.reopen()
	second := append(mk(150, 450), mk(160, 161)...)
	h := e.append("w1", second...)
	seen := map[string]int64{}
	for k, a := range h {
		old, stored := byID[a.ID]
		prev, repeat := seen[a.ID]
		switch {
		case stored && (!a.Duplicate || a.Index != old):
			t.Fatalf("event %d (id %s): %+v, want a duplicate of %d", k, a.ID, a, old)
		case !stored && repeat && (!a.Duplicate || a.Index != prev):
			t.Fatalf("event %d (id %s): %+v, want a duplicate of %d in the request", k, a.ID, a, prev)
		case !stored && !repeat && a.Duplicate:
			t.Fatalf("event %d (id %s): %+v is new", k, a.ID, a)
		}
		seen[a.ID] = a.Index
	}
}

func TestIdempotencyConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	const writers, ids = 8, 50
	got := make([][]Appended, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var evs []event.Event
			for k := range ids {
				// Each writer sends the ids in its own order.
				id := (k + w*7) % ids
				evs = append(evs, event.Event{ID: "id-" + string(rune('A'+id/26)) + string(rune('a'+id%26)), Action: "a"})
			}
			for _, half := range [][]event.Event{evs[:ids/2], evs[ids/2:]} {
				a, err := e.l.Append(context.Background(), "w", half)
				if err != nil {
					t.Error(err)
					return
				}
				got[w] = append(got[w], a...)
			}
		}()
	}
	wg.Wait()
	if cp, _ := e.log.Checkpoint(); cp.N != ids {
		t.Fatalf("size %d, want %d", cp.N, ids)
	}
	byID := map[string]int64{}
	for w := range writers {
		for k, a := range got[w] {
			if old, ok := byID[a.ID]; ok && old != a.Index {
				t.Fatalf("id %s got indexes %d and %d", a.ID, old, a.Index)
			}
			byID[a.ID] = a.Index
			_ = k
		}
	}
	if len(byID) != ids {
		t.Fatalf("%d ids", len(byID))
	}
	for id, i := range byID {
		r, err := e.l.Get(i)
		if err != nil || r.Event.ID != id {
			t.Fatalf("index %d: %v %v, want id %s", i, r.Event.ID, err, id)
		}
	}
}

// store fills e with n events over a few actors etc. and returns them by
// index, as stored.
func (e *env) store(n int, sameTime bool) []event.Event {
	e.t.Helper()
	actors := []string{"alice", "bob", "carol"}
	actions := []string{"read", "write", "delete", "exec"}
	outcomes := []string{"success", "failure", "denied", "unknown", ""}
	sources := []string{"kube", "ssh"}
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var out []event.Event
	for i := 0; i < n; {
		var batch []event.Event
		for k := 0; k < 37 && i < n; k++ {
			at := base.Add(time.Duration((i*7919)%n) * time.Minute)
			if sameTime {
				at = base.Add(time.Duration(i/10) * time.Minute) // ten per time
			}
			x := ev(actors[i%3], actions[i%4], "res-"+string(rune('a'+i%5)), outcomes[i%5], sources[i%2], at)
			if i%11 == 0 {
				x.Actor = nil
			}
			batch = append(batch, x)
			i++
		}
		e.append("writer", batch...)
		out = append(out, batch...)
	}
	return out
}

// expect returns the indexes of stored events matching q, in listing order.
func expect(stored []event.Event, q Query) []int64 {
	f := &filter{q: q}
	var idx []int64
	for i := range stored {
		x := stored[i]
		if x.Time.IsZero() {
			panic("no time")
		}
		if f.match(&x) {
			idx = append(idx, int64(i))
		}
	}
	sort.Slice(idx, func(a, b int) bool {
		ta, tb := stored[idx[a]].Time, stored[idx[b]].Time
		if !ta.Equal(tb) {
			return ta.After(tb)
		}
		return idx[a] > idx[b]
	})
	return idx
}

func TestList(t *testing.T) {
	for _, same := range []bool{false, true} {
		t.Run(map[bool]string{false: "distinct times", true: "equal times"}[same], func(t *testing.T) {
			e := newEnv(t, nil)
			stored := e.store(600, same)
			base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
			queries := [][]string{
				{},
				{"actor", "alice"},
				{"action", "exec"},
				{"resource", "res-c"},
				{"outcome", "denied"},
				{"outcome", "unknown", "since", base.Add(10 * time.Minute).Format(time.RFC3339), "until", base.Add(45 * time.Minute).Format(time.RFC3339)},
				{"action", "read", "outcome", "failure"},
				{"source", "ssh"},
				{"actor", "bob", "action", "write"},
				{"actor", "carol", "source", "kube", "outcome", "failure"},
				{"since", base.Add(100 * time.Minute).Format(time.RFC3339)},
				{"until", base.Add(30 * time.Minute).Format(time.RFC3339)},
				{"since", base.Add(10 * time.Minute).Format(time.RFC3339), "until", base.Add(45 * time.Minute).Format(time.RFC3339)},
				{"actor", "alice", "since", base.Add(10 * time.Minute).Format(time.RFC3339), "until", base.Add(300 * time.Minute).Format(time.RFC3339)},
				{"actor", "nobody"},
				{"resource", "res-a", "action", "read", "outcome", "success", "source", "kube", "actor", "alice"},
			}
			for _, qs := range queries {
				for _, limit := range []string{"1", "7", "100", "1000"} {
					q := mustQuery(t, append(slices.Clone(qs), "limit", limit)...)
					want := expect(stored, q)
					got := e.listAll(q)
					var gi []int64
					for _, r := range got {
						gi = append(gi, r.Index)
						if r.Event.SubmittedBy != "writer" {
							t.Fatal("bad record")
						}
					}
					if !slices.Equal(gi, want) {
						t.Fatalf("query %v limit %s:\n got %v\nwant %v", qs, limit, gi, want)
					}
				}
			}
		})
	}
}

func TestCursor(t *testing.T) {
	e := newEnv(t, nil)
	e.store(50, true)
	q := mustQuery(t, "actor", "alice", "limit", "3")
	p, err := e.l.List(q)
	if err != nil || p.NextCursor == "" {
		t.Fatal(p, err)
	}
	c := p.NextCursor
	// The cursor works for its own query only.
	for _, other := range []Query{mustQuery(t, "actor", "bob"), mustQuery(t), mustQuery(t, "actor", "alice", "since", "2026-01-01T00:00:00Z")} {
		other.Cursor = c
		if _, err := e.l.List(other); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("cursor used with other filters: %v", err)
		}
	}
	// Another limit is fine.
	q.Cursor, q.Limit = c, 5
	if _, err := e.l.List(q); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(c)
	for i := range raw {
		for bit := range 8 {
			b := slices.Clone(raw)
			b[i] ^= 1 << bit
			q.Cursor = base64.RawURLEncoding.EncodeToString(b)
			if _, err := e.l.List(q); !errors.Is(err, ErrBadCursor) {
				t.Fatalf("flipped bit %d of byte %d: %v", bit, i, err)
			}
		}
	}
	for _, s := range []string{"x", c[:len(c)-1], c + "A", "!!!!", strings.Repeat("A", 500)} {
		q.Cursor = s
		if _, err := e.l.List(q); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("cursor %q: %v", s, err)
		}
	}
	// A cursor from another server (another master key) is refused.
	e2 := newEnv(t, nil)
	e2.store(50, true)
	q.Cursor = c
	if _, err := e2.l.List(q); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("cursor of another server: %v", err)
	}
}

func TestReceipt(t *testing.T) {
	e := newEnv(t, nil)
	e.store(300, false)
	a := e.append("w", ev("alice", "exec", "pod", "success", "kube", time.Time{}))
	rcs, err := e.l.WaitReceipts(context.Background(), []int64{a[0].Index, 5})
	if err != nil {
		t.Fatal(err)
	}
	one, err := e.l.Receipt(7)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(e.vkey)
	if err != nil {
		t.Fatal(err)
	}
	for k, rc := range append(rcs, one) {
		want := []int64{a[0].Index, 5, 7}[k]
		r, err := itlog.ParseReceipt(rc)
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(r.Checkpoint, note.VerifierList(v))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := itlog.ParseCheckpoint(n.Text)
		if err != nil {
			t.Fatal(err)
		}
		o, err := event.ParseOpening(r.Extra)
		if err != nil {
			t.Fatal(err)
		}
		c := o.Commitment()
		if r.Index != want {
			t.Fatalf("receipt index %d, want %d", r.Index, want)
		}
		if err := tlog.CheckRecord(r.Proof, cp.N, cp.Hash, r.Index, tlog.RecordHash(c[:])); err != nil {
			t.Fatalf("receipt %d: %v", want, err)
		}
		rec, _ := e.l.Get(want)
		if !bytes.Equal(o.Bytes, rec.EventBytes) {
			t.Fatal("receipt carries other bytes")
		}
	}
	if _, err := e.l.Receipt(10000); !errors.Is(err, ErrNotFound) {
		t.Fatalf("receipt beyond the log: %v", err)
	}
}

// TestKeysPerEvent pins the key space of one event with every field set and
// no id: a payload (version 3: its wrapped event key in it), a time key
// whose value is the outcome's blind value alone, and
// one field key each for actor, action, resource and source (the outcome has
// none); no idempotency key.
func TestKeysPerEvent(t *testing.T) {
	e := newEnv(t, nil)
	at := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	e.append("writer", ev("alice", "read", "res-a", "denied", "kube", at))
	count := map[byte]int{}
	fields := map[byte]bool{}
	if err := e.l.log.ScanExt(nil, nil, false, func(k, v []byte) bool {
		count[k[0]]++
		switch k[0] {
		case prefixTime:
			if b := e.l.blind.field(fieldOutcome, "denied"); string(v) != string(b[:]) {
				t.Errorf("time key value %x, want the blind outcome %x alone", v, b)
			}
		case prefixPayload:
			if v[0] != payloadV3 {
				t.Errorf("payload of version %d, want %d", v[0], payloadV3)
			}
		case prefixField:
			fields[k[1]] = true
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	want := map[byte]int{prefixDayKey: 1, prefixPayload: 1, prefixTime: 1, prefixField: 4, prefixLife: 1} // a day switch: the first event
	if !maps.Equal(count, want) {
		t.Fatalf("keys by prefix %v, want %v", count, want)
	}
	if fields[fieldOutcome] {
		t.Fatal("an outcome field key was written")
	}
}
