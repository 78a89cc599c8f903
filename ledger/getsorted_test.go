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
// keys out of order.
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
		var keys [][]byte
		for i := range 450 { // odd ones and those past 399 are absent
			keys = append(keys, fmt.Appendf(nil, "d%04d", i))
		}
		keys = append(keys, []byte("d0398x")) // a stored key's extension
		slices.SortFunc(keys, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
		var got []string
		err := l.GetExtSorted(keys, func(j int, v []byte) {
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
		if err := l.GetExtSorted([][]byte{[]byte("d0002"), []byte("d0001")}, func(int, []byte) {}); err == nil {
			t.Fatal("keys out of order: no error")
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
