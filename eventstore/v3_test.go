package eventstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"

	"indelible.dev/event"
	"indelible.dev/evidence"
	"indelible.dev/ledger"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pebblekv"
	itlog "indelible.dev/tlog"
)

// storedTimeKey returns the 't' key stored for index i (the time index is
// scanned: nothing derives it).
func storedTimeKey(t *testing.T, l *Layer, i int64) []byte {
	t.Helper()
	var found []byte
	if err := l.log.ScanExt([]byte{prefixTime}, []byte{prefixTime + 1}, false, func(k, _ []byte) bool {
		if int64(binary.BigEndian.Uint64(k[len(k)-indexSize:])) == i {
			found = bytes.Clone(k)
			return false
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if found == nil {
		t.Fatalf("no time key of event %d", i)
	}
	return found
}

// payloadVersion returns the version byte of the payload at index i.
func payloadVersion(t *testing.T, l *Layer, i int64) byte {
	t.Helper()
	v, err := l.log.GetExt(payloadKey(i))
	if err != nil {
		t.Fatalf("payload %d: %v", i, err)
	}
	return v[0]
}

// TestPayloadV3TimeKey pins what erasure, retention and Check rely on now
// that a payload no longer carries its time key: the time key computed from
// the decrypted event is exactly the one append wrote, for an event whose
// time the server filled in (a clock with nanoseconds), one with
// nanoseconds in another zone, one before 1970 and one at a whole second.
// Erasing each then leaves no key of it, which Check confirms.
func TestPayloadV3TimeKey(t *testing.T) {
	e := newEnv(t, nil)
	e.clock.Add(123456789 * time.Nanosecond)
	zone := time.FixedZone("IST", 5*3600+1800)
	evs := []event.Event{
		ev("alice", "read", "r1", "success", "kube", time.Time{}), // the server's time
		ev("alice", "read", "r2", "failure", "kube", time.Date(2026, 3, 1, 12, 30, 45, 987654321, zone)),
		ev("alice", "read", "r3", "", "kube", time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC)),
		ev("alice", "read", "", "", "", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)),
	}
	evs[0].ID = "server-time"
	a := e.append("writer", evs...)
	for k, x := range a {
		if v := payloadVersion(t, e.l, x.Index); v != payloadV3 {
			t.Fatalf("event %d: payload version %d", k, v)
		}
		r, err := e.l.Get(x.Index)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 && (!r.Event.Time.Equal(e.clock.Now()) || r.Event.Time.Nanosecond() != 123456789) {
			t.Fatalf("the server's time %v, want %v", r.Event.Time, e.clock.Now())
		}
		if k > 0 && !r.Event.Time.Equal(evs[k].Time) {
			t.Fatalf("event %d: time %v, want %v", k, r.Event.Time, evs[k].Time)
		}
		stored := storedTimeKey(t, e.l, x.Index)
		if got := timeIndexKey(appendTimeKey(nil, r.Event.Time), x.Index); !bytes.Equal(got, stored) {
			t.Fatalf("event %d: time key from the decrypted event %x, stored %x", k, got, stored)
		}
		keys, err := e.l.keysOf(x.Index, &r.Event)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, stored) }) {
			t.Fatalf("event %d: the keys erasure deletes %x miss the stored time key %x", k, keys, stored)
		}
	}
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}
	for _, x := range a {
		if _, err := e.l.Erase(context.Background(), x.Index, "admin", "test"); err != nil {
			t.Fatal(err)
		}
		if err := e.l.log.ScanExt(nil, nil, false, func(k, _ []byte) bool {
			if (k[0] == prefixTime || k[0] == prefixField) && int64(binary.BigEndian.Uint64(k[len(k)-indexSize:])) == x.Index {
				t.Errorf("index key %x of erased event %d remains", k, x.Index)
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckTimeValueShape: Check refuses a version-3 event whose 't' value
// is not the blind outcome alone (a wrapped key where none belongs).
func TestCheckTimeValueShape(t *testing.T) {
	e := newEnv(t, nil)
	a := e.append("writer", ev("alice", "read", "r", "success", "kube", e.clock.Now()))
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}
	k := storedTimeKey(t, e.l, a[0].Index)
	v, err := e.log.GetExt(k)
	if err != nil {
		t.Fatal(err)
	}
	bad := append(make([]byte, wrappedEventKeySize), v...) // the shape of a version-2 value
	if err := e.log.WriteExt(func(w ledger.Writer) error { return w.Set(k, bad) }); err != nil {
		t.Fatal(err)
	}
	if err := e.l.Check(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check of a version-3 event with a 76-byte time value: %v", err)
	}
}

// setStoreFormat marks the (closed) store in dir with our key space's
// format f, as a release of that format left it.
func setStoreFormat(t *testing.T, dir, f string) {
	t.Helper()
	var s kv.Store
	var err error
	if ledger.TestingStore != nil {
		s, err = ledger.TestingStore(dir)
	} else {
		s, err = pebblekv.Open(dir, pebblekv.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.NewBatch(0)
	defer b.Close()
	if err := b.Set([]byte("mformat"), []byte(f)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
}

// storeFormat returns the format marker of the (closed) store in dir.
func storeFormat(t *testing.T, dir string) string {
	t.Helper()
	var s kv.Store
	var err error
	if ledger.TestingStore != nil {
		s, err = ledger.TestingStore(dir)
	} else {
		s, err = pebblekv.Open(dir, pebblekv.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, closer, err := s.Get([]byte("mformat"))
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	return string(v)
}

// TestFormat2Store: a store of the previous release (format marker 2,
// version-2 payloads) opens and is moved to format 3; its events read, list
// (every plan: actor, outcome, a join with an outcome, a time range),
// stream, get receipts and erase; new events are version 3 beside them, and
// a listing across both, the stream and Check see them all, before and
// after the next open, and also when fetch's hint of where version 3 starts
// is wrong (a version-2 payload then reads its 't' value itself); an
// evidence bundle of the whole log verifies, with both versions open.
func TestFormat2Store(t *testing.T) {
	e := newEnv(t, nil)
	e.l.sealV2 = true
	at := e.clock.Now()
	var evs []event.Event
	for k := range 40 {
		out := "success"
		if k%4 == 0 {
			out = "denied"
		}
		x := ev([]string{"alice", "bob"}[k%2], []string{"read", "write"}[k%3%2], "res", out, "kube", at.Add(time.Duration(k)*time.Second))
		x.ID = "old-" + string(rune('A'+k))
		evs = append(evs, x)
	}
	old := e.append("writer", evs...)
	e.close()
	setStoreFormat(t, e.dir, "2")
	e.l = nil
	e.open() // a binary of today: sealV2 is off
	if e.l.sealV2 {
		t.Fatal("sealV2 survived the reopen")
	}
	e.close()
	if f := storeFormat(t, e.dir); f != "3" {
		t.Fatalf("format %q after open, want 3", f)
	}
	e.open()
	if got := e.l.v3From.Load(); got != old[len(old)-1].Index+1 {
		t.Fatalf("v3From %d, want %d (every payload is version 2)", got, old[len(old)-1].Index+1)
	}
	for _, a := range old {
		if v := payloadVersion(t, e.l, a.Index); v != payloadV2 {
			t.Fatalf("event %d: payload version %d, want 2", a.Index, v)
		}
	}

	type counts struct{ actor, denied, join, window, all int }
	count := func() counts {
		t.Helper()
		return counts{
			actor:  len(e.listAll(mustQuery(t, "actor", "alice", "limit", "7"))),
			denied: len(e.listAll(mustQuery(t, "outcome", "denied", "limit", "3"))),
			join:   len(e.listAll(mustQuery(t, "actor", "alice", "outcome", "denied", "limit", "2"))),
			window: len(e.listAll(mustQuery(t, "since", at.Add(10*time.Second).Format(time.RFC3339Nano), "until", at.Add(30*time.Second).Format(time.RFC3339Nano), "limit", "6"))),
			all:    len(e.listAll(mustQuery(t, "action", "read", "limit", "5"))),
		}
	}
	readAll := func(n int) {
		t.Helper()
		if err := e.l.Check(); err != nil {
			t.Fatal(err)
		}
		var streamed int
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cp, _ := e.log.Checkpoint()
		err := e.l.Stream(ctx, Query{}, -1, func(r Record) error {
			streamed++
			if r.Index == cp.N-1 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || streamed != n {
			t.Fatalf("stream: %d events, %v; want %d", streamed, err, n)
		}
	}
	before := count()
	if (before != counts{actor: 20, denied: 10, join: 10, window: 20, all: 27}) {
		t.Fatalf("listings of the version-2 events: %+v", before)
	}
	readAll(40)
	idx := []int64{old[3].Index, old[0].Index, old[3].Index}
	rcs, err := e.l.WaitReceipts(context.Background(), idx)
	if err != nil || len(rcs) != 3 {
		t.Fatalf("receipts of version-2 events: %v", err)
	}
	for _, i := range idx {
		verifyReceipt(t, e, i)
	}

	// Erase a version-2 event; append version-3 ones (one reuses an id:
	// a duplicate of a version-2 event).
	if _, err := e.l.Erase(context.Background(), old[0].Index, "admin", "test"); err != nil {
		t.Fatal(err)
	}
	var nevs []event.Event
	for k := range 20 {
		out := "success"
		if k%4 == 0 {
			out = "denied"
		}
		x := ev([]string{"alice", "bob"}[k%2], "read", "res", out, "kube", at.Add(time.Duration(100+k)*time.Second))
		x.ID = "new-" + string(rune('A'+k))
		nevs = append(nevs, x)
	}
	dup := evs[5]
	nevs = append(nevs, dup)
	fresh := e.append("writer", nevs...)
	if !fresh[20].Duplicate || fresh[20].Index != old[5].Index {
		t.Fatalf("an id of a version-2 event appended again: %+v", fresh[20])
	}
	fresh = fresh[:20]
	for _, a := range fresh {
		if v := payloadVersion(t, e.l, a.Index); v != payloadV3 {
			t.Fatalf("new event %d: payload version %d, want 3", a.Index, v)
		}
	}
	// 39 old events, 20 new, the erase event.
	want := counts{actor: 19 + 10, denied: 9 + 5, join: 9 + 5, window: 20, all: 26 + 20}
	readAll(39 + 20 + 1)
	if got := count(); got != want {
		t.Fatalf("listings of a mixed store: %+v, want %+v", got, want)
	}
	verifyReceipt(t, e, fresh[0].Index)
	if _, err := e.l.Erase(context.Background(), fresh[1].Index, "admin", "test"); err != nil {
		t.Fatal(err)
	}
	want.all-- // bob's
	readAll(39 + 19 + 2)
	if got := count(); got != want {
		t.Fatalf("listings after erasing a version-3 event: %+v, want %+v", got, want)
	}
	e.reopen()
	if got := e.l.v3From.Load(); got != old[len(old)-1].Index+1 {
		t.Fatalf("v3From %d after the reopen, want %d", got, old[len(old)-1].Index+1)
	}
	if got := count(); got != want {
		t.Fatalf("listings after the reopen: %+v, want %+v", got, want)
	}
	// A wrong hint: every candidate taken for version 3.
	e.l.v3From.Store(0)
	if got := count(); got != want {
		t.Fatalf("listings with every candidate taken for version 3: %+v, want %+v", got, want)
	}
	readAll(39 + 19 + 2)
	// An evidence bundle of the whole log opens both versions.
	n, _, err := e.log.ServedCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.l.PlanBundle(BundleRequest{From: 0, To: n, LogKey: e.vkey})
	if err != nil {
		t.Fatal(err)
	}
	var bb bytes.Buffer
	if err := p.Write(context.Background(), &bb, nil); err != nil {
		t.Fatal(err)
	}
	policy, err := itlog.NewPolicy(e.vkey, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(&bb, evidence.Options{Policy: policy})
	if err != nil || !rep.OK() || rep.Erased != 2 || rep.Open != n-2 {
		t.Fatalf("bundle of a mixed store: %v, %+v", err, rep)
	}
}

// TestShreddingV3Unreadable: while retention is shredding a day (marked, its
// index keys going), a version-3 event of that day reads as shredded, as a
// version-2 one does once its 't' key is deleted, though its payload still
// holds its wrapped key; a day not being shredded reads as before.
func TestShreddingV3Unreadable(t *testing.T) {
	e := newEnv(t, nil)
	a := e.append("writer", ev("alice", "read", "r", "success", "kube", e.clock.Now()))
	e.clock.Add(48 * time.Hour)
	b := e.append("writer", ev("alice", "read", "r", "success", "kube", e.clock.Now()))
	v, err := e.log.GetExt(payloadKey(a[0].Index))
	if err != nil {
		t.Fatal(err)
	}
	day, _, _ := payloadDay(v)
	e.l.lmu.Lock()
	e.l.shedding[day] = true
	e.l.sheddingAny.Store(true)
	e.l.lmu.Unlock()
	var se *ShreddedError
	if _, err := e.l.Get(a[0].Index); !errors.As(err, &se) {
		t.Fatalf("Get of a version-3 event of a day being shredded: %v", err)
	}
	if _, err := e.l.Get(b[0].Index); err != nil {
		t.Fatalf("Get of an event of another day: %v", err)
	}
	if got := e.listAll(mustQuery(t, "actor", "alice")); len(got) != 1 || got[0].Index != b[0].Index {
		t.Fatalf("listing with a day being shredded: %d records", len(got))
	}
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestPayloadV3NeedsNoTimeValue: a version-3 event is read, listed by a
// field index, streamed and given a receipt from its payload and log entry
// alone: with its 't' key deleted under it, every read still opens it (a
// version-2 event's would not: its key is in that value).
func TestPayloadV3NeedsNoTimeValue(t *testing.T) {
	e := newEnv(t, nil)
	a := e.append("writer", ev("alice", "read", "r", "success", "kube", e.clock.Now()))
	i := a[0].Index
	k := storedTimeKey(t, e.l, i)
	if err := e.log.WriteExt(func(w ledger.Writer) error { return w.Delete(k) }); err != nil {
		t.Fatal(err)
	}
	if r, err := e.l.Get(i); err != nil || r.Event.Actor.ID != "alice" {
		t.Fatalf("Get without the time key: %v", err)
	}
	if got := e.listAll(mustQuery(t, "actor", "alice")); len(got) != 1 || got[0].Index != i {
		t.Fatalf("listing without the time key: %d records", len(got))
	}
	if _, err := e.l.WaitReceipts(context.Background(), []int64{i}); err != nil {
		t.Fatalf("receipt without the time key: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	if err := e.l.Stream(ctx, Query{}, -1, func(r Record) error { n++; cancel(); return nil }); !errors.Is(err, context.Canceled) || n != 1 {
		t.Fatalf("stream without the time key: %d events, %v", n, err)
	}
}

// TestShreddingMixedDayUnreadable: on the day of an upgrade a day holds
// events of every payload version; once retention marks it for shredding,
// every one of them reads as gone (Get and Receipt 410, skipped by
// listings, streams and evidence bundles), not only the version-3 ones: a
// version-1 or version-2 event whose index keys a pass has not dropped yet
// must not stay readable while its version-3 peers are not (the day half
// gone). Events of other days stay readable and the store passes Check.
func TestShreddingMixedDayUnreadable(t *testing.T) {
	e := newEnv(t, nil)
	day1 := e.clock.Now()
	v1 := appendV1(t, e, ev("alice", "read", "r", "success", "kube", day1))
	e.l.sealV2 = true
	v2 := e.append("writer", ev("alice", "read", "r", "success", "kube", day1))[0].Index
	e.l.sealV2 = false
	e.reopen()
	v3 := e.append("writer", ev("alice", "read", "r", "success", "kube", day1))[0].Index
	for i, want := range map[int64]byte{v1: payloadV1, v2: payloadV2, v3: payloadV3} {
		if got := payloadVersion(t, e.l, i); got != want {
			t.Fatalf("payload %d of version %d, want %d", i, got, want)
		}
	}
	e.clock.Add(48 * time.Hour)
	later := e.append("writer", ev("alice", "read", "r", "success", "kube", e.clock.Now()))[0].Index
	if _, _, err := e.log.WaitSize(context.Background(), later+1); err != nil {
		t.Fatal(err)
	}
	e.l.lmu.Lock()
	e.l.shedding[dayOf(day1)] = true
	e.l.sheddingAny.Store(true)
	e.l.lmu.Unlock()

	for _, i := range []int64{v1, v2, v3} {
		var se *ShreddedError
		if r, err := e.l.Get(i); !errors.As(err, &se) {
			t.Errorf("Get of the version-%d event %d of a day being shredded: %v (event %+v)", payloadVersion(t, e.l, i), i, err, r.Event.Actor)
		}
		if _, err := e.l.Receipt(i); !errors.Is(err, ErrGone) {
			t.Errorf("Receipt of the version-%d event %d of a day being shredded: %v", payloadVersion(t, e.l, i), i, err)
		}
	}
	if _, err := e.l.Get(later); err != nil {
		t.Fatalf("Get of an event of another day: %v", err)
	}
	if got := e.listAll(mustQuery(t, "actor", "alice")); len(got) != 1 || got[0].Index != later {
		var idx []int64
		for _, r := range got {
			idx = append(idx, r.Index)
		}
		t.Errorf("listing with a day being shredded: %v, want only %d", idx, later)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var streamed []int64
	if err := e.l.Stream(ctx, Query{}, -1, func(r Record) error {
		streamed = append(streamed, r.Index)
		if r.Index >= later {
			cancel()
		}
		return nil
	}); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if !slices.Equal(streamed, []int64{later}) {
		t.Errorf("stream with a day being shredded: %v, want only %d", streamed, later)
	}
	// An evidence bundle of the whole log: the day's three events shredded.
	n, _, err := e.log.ServedCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.l.PlanBundle(BundleRequest{From: 0, To: n, LogKey: e.vkey})
	if err != nil {
		t.Fatal(err)
	}
	var bb bytes.Buffer
	if err := p.Write(context.Background(), &bb, nil); err != nil {
		t.Fatal(err)
	}
	policy, err := itlog.NewPolicy(e.vkey, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := evidence.Verify(&bb, evidence.Options{Policy: policy}); err != nil || !rep.OK() || rep.Shredded != 3 || rep.Open != n-3 {
		t.Errorf("bundle with a day being shredded: %v, %d open, %d shredded, want %d and 3 (%+v)", err, rep.Open, rep.Shredded, n-3, rep.Failures)
	}
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestShreddingPayloadsDeleted: a retention pass deletes a day's payloads
// in the batch of its retention event and only then records the day as
// shredded in memory; a read in between finds no payload. It must answer
// that the event was shredded (410), as before and after, not that the
// index holds no event (404). The state in between is built directly: the
// day marked as being shredded, its payload deleted.
func TestShreddingPayloadsDeleted(t *testing.T) {
	e := newEnv(t, nil)
	a := e.append("writer", ev("alice", "read", "r", "success", "kube", e.clock.Now()))[0].Index
	e.clock.Add(48 * time.Hour)
	b := e.append("writer", ev("alice", "read", "r", "success", "kube", e.clock.Now()))[0].Index
	if _, _, err := e.log.WaitSize(context.Background(), b+1); err != nil {
		t.Fatal(err)
	}
	e.l.lmu.Lock()
	e.l.shedding[dayOf(e.clock.Now().Add(-48*time.Hour))] = true
	e.l.sheddingAny.Store(true)
	e.l.lmu.Unlock()
	if err := e.log.WriteExt(func(w ledger.Writer) error { return w.Delete(payloadKey(a)) }); err != nil {
		t.Fatal(err)
	}
	var se *ShreddedError
	if _, err := e.l.Get(a); !errors.As(err, &se) || se.Index != a {
		t.Errorf("Get of an event whose payload the shredding deleted: %v", err)
	}
	if _, err := e.l.WaitReceipts(context.Background(), []int64{a}); !errors.As(err, &se) {
		t.Errorf("receipt of an event whose payload the shredding deleted: %v", err)
	}
	if _, err := e.l.Get(b); err != nil {
		t.Fatalf("Get of an event of another day: %v", err)
	}
}
