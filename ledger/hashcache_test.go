package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

// TestProofCacheLookups: a proof looks each tile it touches up in the shared
// cache once, not once per hash it reads from it (the cache's lock was the
// largest cost of proofs served in parallel), and the proofs still verify.
func TestProofCacheLookups(t *testing.T) {
	l, _ := openTempLog(t)
	const n = 70_000 // three tile levels
	appendBatches(t, l, n)
	cp, _ := l.Checkpoint()
	for _, i := range []int64{0, 1, 255, 256, 12345, 65535, 65536, n - 1} {
		// Warm the cache, then count the lookups of a second proof.
		if _, err := l.InclusionProof(i, cp.N); err != nil {
			t.Fatal(err)
		}
		l.tiles.mu.Lock()
		before := l.tiles.gets
		l.tiles.mu.Unlock()
		p, err := l.InclusionProof(i, cp.N)
		if err != nil {
			t.Fatal(err)
		}
		l.tiles.mu.Lock()
		gets := l.tiles.gets - before
		l.tiles.mu.Unlock()
		// Tiles touched: at most one per tile level, plus the neighbours
		// of the partial right edge (one more per level).
		if max := int64(2 * numTileLevels(cp.N)); gets > max {
			t.Errorf("proof of %d: %d cache lookups for %d hashes, want at most %d", i, gets, len(p), max)
		}
		leaf := tlog.RecordHash(fmt.Appendf(nil, "entry %d", i))
		if err := itlog.CheckInclusion(p, i, cp.N, leaf, cp.Hash); err != nil {
			t.Errorf("proof of %d: %v", i, err)
		}
	}
}

func numTileLevels(n int64) int {
	k := 0
	for ; n > 1; n >>= itlog.TileHeight {
		k++
	}
	return k
}

// TestHashChildren: the sequencer's node hash equals RFC 6962's, for hashes
// and for inputs of other lengths (which take the library's path).
func TestHashChildren(t *testing.T) {
	for _, n := range [][2]int{{32, 32}, {0, 0}, {1, 31}, {32, 33}, {100, 5}} {
		l, r := make([]byte, n[0]), make([]byte, n[1])
		rand.Read(l)
		rand.Read(r)
		if got, want := hashChildren(l, r), rfc6962.DefaultHasher.HashChildren(l, r); !bytes.Equal(got, want) {
			t.Errorf("lengths %v: %x, want %x", n, got, want)
		}
	}
}

// TestProofFullCache checks that once the expanded-tile cache is full,
// proofs read the hashes of uncached full level-0 tiles straight from the
// store (no expansion, no insertion: on a 10M-entry log most proofs miss
// there), that they still verify, and that a tile without its inner record
// is still expanded.
func TestProofFullCache(t *testing.T) {
	pebbleOnly(t, "deletes a key directly in pebble")
	s, _ := testSigner(t)
	const cacheSize = 8
	l, err := Open(t.TempDir(), Options{Signer: s, TileCacheSize: cacheSize})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 70_000 // 273 full level-0 tiles, three tile levels
	appendBatches(t, l, n)
	cp, _ := l.Checkpoint()
	// Tile 0/100 has no inner record: it must be expanded from its hashes.
	if err := l.pdb.Delete(innerKey(0, 100), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	prove := func(i int64) {
		t.Helper()
		p, err := l.InclusionProof(i, cp.N)
		if err != nil {
			t.Fatal(err)
		}
		leaf := tlog.RecordHash(fmt.Appendf(nil, "entry %d", i))
		if err := itlog.CheckInclusion(p, i, cp.N, leaf, cp.Hash); err != nil {
			t.Errorf("proof of %d: %v", i, err)
		}
	}
	for i := int64(0); i < cacheSize*itlog.TileWidth; i += itlog.TileWidth {
		prove(i) // fills the cache
	}
	l.tiles.mu.Lock()
	full, before := l.tiles.ll.Len() == cacheSize, l.tiles.puts
	l.tiles.mu.Unlock()
	if !full {
		t.Fatalf("cache not full after proofs in %d tiles", cacheSize)
	}
	for i := int64(cacheSize * itlog.TileWidth); i < n; i += 97 {
		prove(i)
	}
	prove(100*itlog.TileWidth + 5)
	prove(n - 1)
	l.tiles.mu.Lock()
	puts := l.tiles.puts - before
	l.tiles.mu.Unlock()
	// Insertions left: the tiles of the levels above (a few), the partial
	// level-0 tile, and tile 0/100 (no inner record): not one per level-0
	// tile touched (~265).
	if puts > 12 {
		t.Errorf("%d cache insertions for proofs over %d level-0 tiles, want the upper levels' and the edge's only", puts, n/itlog.TileWidth-cacheSize)
	}
	for i := int64(0); i < 3; i++ { // consistency proofs read the same way
		m := 1000 + i*20_001
		p, err := l.ConsistencyProof(m, cp.N)
		if err != nil {
			t.Fatal(err)
		}
		old, err := l.TreeHash(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, cp.N, cp.Hash, m, old); err != nil {
			t.Errorf("consistency %d -> %d: %v", m, cp.N, err)
		}
	}
}

// TestReadTileFunc: ReadTileFunc hands out the stored tile or bundle
// without copying it (serving every bundle of a log during an audit copied
// each once more), with the same bytes as ReadTile, full and partial.
func TestReadTileFunc(t *testing.T) {
	pebbleOnly(t, "zero-copy reads borrowed from pebble")
	l, _ := openTempLog(t)
	batch := make([]Entry, 600)
	for j := range batch {
		batch[j] = Entry{Data: bytes.Repeat([]byte{byte(j)}, 1000)}
	}
	if _, err := l.AppendEntries(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	for _, tile := range []tlog.Tile{
		{H: 8, L: itlog.EntriesLevel, N: 1, W: 256}, {H: 8, L: itlog.EntriesLevel, N: 2, W: 88},
		{H: 8, L: 0, N: 0, W: 256}, {H: 8, L: 0, N: 2, W: 80}, {H: 8, L: 1, N: 0, W: 2},
	} {
		want, err := l.ReadTile(tile)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		if err := l.ReadTileFunc(tile, func(d []byte) error { got = bytes.Clone(d); return nil }); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%v: ReadTileFunc gave %d bytes (%v), ReadTile %d", tile, len(got), err, len(want))
		}
	}
	full := tlog.Tile{H: 8, L: itlog.EntriesLevel, N: 1, W: 256}
	allocs := testing.AllocsPerRun(50, func() {
		l.ReadTileFunc(full, func([]byte) error { return nil })
	})
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range 50 {
		l.ReadTileFunc(full, func([]byte) error { return nil })
	}
	runtime.ReadMemStats(&m1)
	if perCall := (m1.TotalAlloc - m0.TotalAlloc) / 50; perCall > 16<<10 {
		t.Errorf("ReadTileFunc of a 256 KB bundle allocates %d bytes a call (%v allocations): it copies", perCall, allocs)
	}
	if err := l.ReadTileFunc(tlog.Tile{H: 8, L: itlog.EntriesLevel, N: 3, W: 1}, func([]byte) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("bundle beyond the log: %v, want ErrNotFound", err)
	}
}

// appendBatches appends entries "entry 0" to "entry n-1" (n a multiple of
// 1,000) in batches of 1,000.
func appendBatches(t *testing.T, l *Log, n int) {
	t.Helper()
	batch := make([]Entry, 1000)
	for i := 0; i < n; i += len(batch) {
		for j := range batch {
			batch[j] = Entry{Data: fmt.Appendf(nil, "entry %d", i+j)}
		}
		if _, err := l.AppendEntries(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
}
