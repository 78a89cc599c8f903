package eventstore

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"indelible.dev/event"
	"indelible.dev/internal/tlogtest"
)

// TestNoPlaintext appends events carrying a unique marker in every field a
// writer controls and greps every file of the data directory (the WAL
// included) for it, raw; then reopens the store with pebble, reads every
// key and value back uncompressed, flushes and compacts everything into
// SSTables, and greps again.
func TestNoPlaintext(t *testing.T) {
	pebbleOnly(t, "greps the pebble files and opens them with pebble")
	e := newEnv(t, nil)
	var r [12]byte
	rand.Read(r[:])
	m := "MRK" + hex.EncodeToString(r[:])
	var evs []event.Event
	for i := range 300 {
		evs = append(evs, event.Event{
			ID:       m + "-id-" + string(rune('a'+i%26)) + hex.EncodeToString([]byte{byte(i), byte(i >> 8)}),
			Time:     time.Date(2026, 11, 25, 9, 0, i, 0, time.UTC),
			Actor:    &event.Actor{ID: m + "@example.com", Type: m, IP: "10.0.0.7"},
			Action:   m + ".exec",
			Resource: &event.Resource{Type: m, ID: m + "/pod"},
			Outcome:  event.OutcomeDenied,
			Source:   m + "-source",
			Reason:   m + " reason",
			Metadata: []byte(`{"k":"` + m + `","` + m + `":1}`),
		})
	}
	e.append(m+"-writer", evs...)
	// Queries and receipts still work on the marker (they are exact).
	if p, err := e.l.List(mustQuery(t, "actor", m+"@example.com", "resource", m+"/pod")); err != nil || len(p.Records) != 100 {
		t.Fatalf("%d records, %v", len(p.Records), err)
	}
	dir := e.dir
	e.close()
	grep := func(stage string) {
		t.Helper()
		tlogtest.CheckNotInFiles(t, dir, map[string][]byte{stage + ": the marker": []byte(m), stage + ": the marker's tail": []byte(m[3:])})
	}
	grep("after close")
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	kvs := 0
	for ok := it.First(); ok; ok = it.Next() {
		kvs++
		if bytes.Contains(it.Key(), []byte(m[3:])) || bytes.Contains(it.Value(), []byte(m[3:])) {
			t.Errorf("key %x holds the marker", it.Key())
		}
	}
	it.Close()
	if kvs < 300*7 {
		t.Fatalf("only %d keys", kvs)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(t.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	grep("after flush and compaction")
}
