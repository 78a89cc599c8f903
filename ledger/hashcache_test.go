package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

// TestProofCacheLookups: a proof looks each tile it touches up in the shared
// cache once, not once per hash it reads from it (the cache's lock was the
// largest cost of proofs served in parallel), and the proofs still verify.
func TestProofCacheLookups(t *testing.T) {
	s, _ := testSigner(t)
	l, err := Open(t.TempDir(), Options{Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 70_000 // three tile levels
	batch := make([]Entry, 1000)
	for i := 0; i < n; i += len(batch) {
		for j := range batch {
			batch[j] = Entry{Data: fmt.Appendf(nil, "entry %d", i+j)}
		}
		if _, err := l.AppendEntries(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
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
