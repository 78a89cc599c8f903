package eventstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"indelible.dev/event"
	"indelible.dev/ledger"
)

// appendV1 stores an event as the layer did before payload version 2 (one
// key per day, the time key's value the outcome alone, no day switches).
func appendV1(t *testing.T, e *env, x event.Event) int64 {
	t.Helper()
	now := e.clock.Now()
	x.Finish(now, "writer")
	b, err := event.Canonical(x)
	if err != nil {
		t.Fatal(err)
	}
	var salt [event.SaltSize]byte
	rand.Read(salt[:])
	c := event.Commitment(salt, b)
	d, err := e.l.dayKeyFor(dayOf(now), true)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, nonceSize)
	rand.Read(nonce)
	v := append([]byte{payloadV1}, binary.BigEndian.AppendUint64(nil, uint64(d.day))...)
	v = append(v, nonce...)
	pt := append(append([]byte(nil), salt[:]...), b...)
	v = d.aead.Seal(v, nonce, pt, c[:])
	keys, tval := e.l.indexKeys(&x)
	idx, err := e.log.AppendBatch(context.Background(), []ledger.Entry{{Data: c[:]}}, func(is []int64, w ledger.Writer) error {
		i := is[0]
		w.Set(dayKeyKey(d.day), d.wrapped)
		w.Set(payloadKey(i), v)
		for j, k := range keys {
			binary.BigEndian.PutUint64(k[len(k)-indexSize:], uint64(i))
			var val []byte
			if j == 0 {
				val = tval
			}
			w.Set(k, val)
		}
		return nil
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.durable.Store(true)
	return idx[0]
}

// TestPayloadV1 opens a store holding version-1 payloads (written as the
// layer did before per-event keys): they read, list and check; new events
// are version 2 beside them; a version-1 event can be erased (its payload
// purged from every file) and its day shredded.
func TestPayloadV1(t *testing.T) {
	e := newEnv(t, nil)
	const marker = "V1-MARKER-91be"
	day1 := e.clock.Now()
	var old []int64
	for k := range 3 {
		x := ev("carol", "v1.act", "r", "success", "src", day1.Add(time.Duration(k)*time.Second))
		x.Reason = marker
		old = append(old, appendV1(t, e, x))
	}
	e.reopen() // as after an upgrade: the day switches are written once
	for _, i := range old {
		r, err := e.l.Get(i)
		if err != nil || r.Event.Reason != marker {
			t.Fatalf("v1 event %d: %v", i, err)
		}
	}
	if got := e.listAll(mustQuery(t, "actor", "carol")); len(got) != 3 {
		t.Fatalf("v1 query: %d", len(got))
	}
	if got := e.listAll(mustQuery(t, "outcome", "success")); len(got) != 3 {
		t.Fatalf("v1 outcome query: %d", len(got))
	}
	e.append("writer", ev("carol", "v2.act", "r", "success", "src", day1))
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Erase(context.Background(), old[0], "admin", "test"); err != nil {
		t.Fatal(err)
	}
	if got := e.listAll(mustQuery(t, "actor", "carol")); len(got) != 3 {
		t.Fatalf("query after erasing a v1 event: %d", len(got))
	}
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(3 * 24 * time.Hour)
	e.append("writer", ev("dave", "later", "", "", "", e.clock.Now()))
	e.l.retention = 48 * time.Hour
	days, err := e.l.Retain(context.Background())
	if err != nil || len(days) != 1 {
		t.Fatalf("Retain: %v %v", days, err)
	}
	var se *ShreddedError
	if _, err := e.l.Get(old[1]); !errors.As(err, &se) {
		t.Fatalf("v1 event of a shredded day: %v", err)
	}
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}
	notInStoreFiles(t, e.dir, map[string][]byte{"marker": []byte(marker)})
}
