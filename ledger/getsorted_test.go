package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestGetExtSorted: the sorted multi-get finds exactly the stored keys,
// whether in the memtable or in flushed tables (which carry bloom filters),
// never a key that merely shares a prefix with a stored one, and refuses
// keys out of order; and so does GetExtNear.
func TestGetExtSorted(t *testing.T) {
	pebbleOnly(t, "flushes pebble memtables into tables")
	dir := t.TempDir()
	s, _ := testSigner(t)
	l, err := Open(dir, Options{Signer: s, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	put := func(keys ...string) {
		t.Helper()
		_, err := l.AppendBatch(context.Background(), []Entry{{Data: []byte("e")}}, func(_ []int64, w Writer) error {
			for _, k := range keys {
				if err := w.Set([]byte(k), []byte("v-"+k)); err != nil {
					return err
				}
			}
			return nil
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
	}
	var stored []string
	for i := range 200 {
		stored = append(stored, fmt.Sprintf("d%04d", 2*i))
	}
	put(stored[:100]...)
	if err := l.pdb.Flush(); err != nil { // into a table
		t.Fatal(err)
	}
	put(stored[100:]...) // in the memtable
	check := func(l *Log) {
		t.Helper()
		for _, get := range []func([][]byte, func(int, []byte)) error{l.GetExtSorted, l.GetExtNear} {
			checkGet(t, get, stored)
		}
	}
	check(l)
	// After a restart (the memtable replayed from the WAL, then flushed).
	l.Close()
	l2, err := Open(dir, Options{Signer: s, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	check(l2)
	if err := l2.pdb.Flush(); err != nil {
		t.Fatal(err)
	}
	check(l2)
}

func checkGet(t *testing.T, get func([][]byte, func(int, []byte)) error, stored []string) {
	t.Helper()
	var keys [][]byte
	for i := range 450 { // odd ones and those past 399 are absent
		keys = append(keys, fmt.Appendf(nil, "d%04d", i))
	}
	keys = append(keys, []byte("d0398x")) // a stored key's extension
	slices.SortFunc(keys, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
	var got []string
	err := get(keys, func(j int, v []byte) {
		if string(v) != "v-"+string(keys[j]) {
			t.Fatalf("key %s: value %q", keys[j], v)
		}
		got = append(got, string(keys[j]))
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, stored) {
		t.Fatalf("found %d keys %v..., want the %d stored", len(got), got[:min(5, len(got))], len(stored))
	}
	// Exactly the stored keys, the last one included (the upper bound).
	n := 0
	var exact [][]byte
	for _, k := range stored {
		exact = append(exact, []byte(k))
	}
	if err := get(exact, func(int, []byte) { n++ }); err != nil || n != len(stored) {
		t.Fatalf("the %d stored keys: found %d (%v)", len(stored), n, err)
	}
	if err := get([][]byte{[]byte("d0002"), []byte("d0001")}, func(int, []byte) {}); err == nil {
		t.Fatal("keys out of order: no error")
	}
}
