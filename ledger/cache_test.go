package ledger

import (
	"context"
	"fmt"
	"testing"
)

// TestBlockCacheBeyondMemtables: pebble charges its memtables against the
// block cache, so a cache of CacheSize alone held nothing once they had
// grown (issue 21: every id lookup read each table's bloom filter from
// the file). Once the memtables have grown past CacheSize, a second pass
// over the same keys reads every block from the cache.
func TestBlockCacheBeyondMemtables(t *testing.T) {
	pebbleOnly(t, "pebble's block cache")
	s, _ := testSigner(t)
	l, err := Open(t.TempDir(), Options{Signer: s, Logger: quietLogger(), CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var keys [][]byte
	for i := range 2000 {
		keys = append(keys, fmt.Appendf(nil, "d%06d", i))
	}
	put := func(keys [][]byte) {
		t.Helper()
		_, err := l.AppendBatch(context.Background(), []Entry{{Data: []byte("e")}}, func(_ []int64, w Writer) error {
			for _, k := range keys {
				if err := w.Set(k, make([]byte, 100)); err != nil {
					return err
				}
			}
			return nil
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
	}
	put(keys)
	// Each flush makes the next memtable twice as large (from 256 KiB):
	// after eight, they hold more than 1 MiB of the cache.
	for i := range 8 {
		if err := l.pdb.Flush(); err != nil {
			t.Fatal(err)
		}
		put([][]byte{fmt.Appendf(nil, "e%d", i)})
	}
	// Compact everything now, so that no compaction replaces the tables
	// (and their cached blocks) between the two passes below.
	if err := l.pdb.Compact(context.Background(), []byte{0}, []byte{0xff, 0xff}, true); err != nil {
		t.Fatal(err)
	}
	pass := func() (hits, misses int64) {
		m0 := l.pdb.Metrics().BlockCache
		n := 0
		if err := l.GetExtSorted(keys, func(int, []byte) { n++ }); err != nil {
			t.Fatal(err)
		}
		if n != len(keys) {
			t.Fatalf("found %d of %d keys", n, len(keys))
		}
		m1 := l.pdb.Metrics().BlockCache
		return m1.Hits - m0.Hits, m1.Misses - m0.Misses
	}
	pass()
	if hits, misses := pass(); misses != 0 || hits == 0 {
		t.Fatalf("second pass: %d block cache hits, %d misses; want every block from the cache", hits, misses)
	}
}
