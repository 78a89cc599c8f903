package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestInclusionProofsMatch: InclusionProofs returns, for any set of
// indexes (unsorted, repeated) and tree size, the proofs InclusionProof
// returns one at a time, with the tiles from the cache, from its one
// multi-get, and (a cache of one tile) from the stored level-0 tiles and
// inner records; a log past one full level-1 tile.
func TestInclusionProofsMatch(t *testing.T) {
	for _, cache := range []int{0, 1} {
		t.Run(fmt.Sprintf("tilecache=%d", cache), func(t *testing.T) {
			s, _ := testSigner(t)
			l, err := Open(t.TempDir(), Options{Signer: s, TileCacheSize: cache, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			const total = 66_000
			batch := make([]Entry, 11_000)
			for i := 0; i < total; i += len(batch) {
				for j := range batch {
					e := make([]byte, 16)
					binary.BigEndian.PutUint64(e, uint64(i+j))
					batch[j] = Entry{Data: e}
				}
				if _, err := l.AppendEntries(context.Background(), batch); err != nil {
					t.Fatal(err)
				}
			}
			cp, _ := l.Checkpoint()
			rng := rand.New(rand.NewPCG(1, uint64(cache)))
			for _, n := range []int64{cp.N, 65536, 65537, 4097, 256, 1} {
				idx := []int64{0, n - 1, n / 2, n / 2}
				for range 60 {
					idx = append(idx, rng.Int64N(n))
				}
				got, err := l.InclusionProofs(idx, n)
				if err != nil {
					t.Fatal(err)
				}
				for k, i := range idx {
					want, err := l.InclusionProof(i, n)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(got[k], want) {
						t.Fatalf("size %d, index %d: InclusionProofs differs from InclusionProof", n, i)
					}
					if len(want) == 0 && n > 1 {
						t.Fatalf("size %d, index %d: empty proof", n, i)
					}
				}
			}
			if _, err := l.InclusionProofs([]int64{1}, cp.N+1); !errors.Is(err, ErrRange) {
				t.Fatalf("a size past the published one: %v", err)
			}
			if _, err := l.InclusionProofs([]int64{5}, 5); err == nil {
				t.Fatal("an index at the tree size: no error")
			}
			if p, err := l.InclusionProofs(nil, 0); err != nil || len(p) != 0 {
				t.Fatalf("no indexes: %v, %v", p, err)
			}
		})
	}
}
