package tlog

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
)

func mustHash(t testing.TB, s string) tlog.Hash {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// tileStore holds every tile of a tree (each at its widest), the way a log
// stores them, and reads them for StoredHashReader.
type tileStore map[[2]int64][]byte

func newTileStore(t testing.TB, hashes *tlogtest.Tree, n int64) tileStore {
	t.Helper()
	ts := tileStore{}
	for _, tile := range tlog.NewTiles(TileHeight, 0, n) {
		data, err := tlog.ReadTileData(tile, hashes)
		if err != nil {
			t.Fatal(err)
		}
		ts[[2]int64{int64(tile.L), tile.N}] = data
	}
	return ts
}

func (ts tileStore) reader() tlog.HashReader {
	return StoredHashReader(func(tiles []tlog.Tile) ([][]byte, error) {
		out := make([][]byte, len(tiles))
		for i, tile := range tiles {
			d, ok := ts[[2]int64{int64(tile.L), tile.N}]
			if !ok {
				return nil, fmt.Errorf("no tile %d/%d", tile.L, tile.N)
			}
			out[i] = d
		}
		return out, nil
	})
}

// TestProofVectors checks the inclusion and consistency proofs of tessera's
// testdata log (a cross-checked vector), built by ProveInclusion and
// ProveConsistency over stored tiles, and their checks.
func TestProofVectors(t *testing.T) {
	hashes := tlogtest.TesseraTree()
	r := newTileStore(t, hashes, 15).reader()
	root := mustHash(t, tlogtest.TesseraCheckpoints[15].Root)
	incl := map[int64][]string{
		0:  {"qxq38Hx8j+Dv9LpvqlPH5EEukaWZFT6KpOAb7s5beCU=", "Fn6xZD9sPWKLwgCo+qZLMAqFlh0MMf5ytM55jhjCpmM=", "g0ZoeYWtIV8Q8i+4CmgqPnBvH2il107lyCgTQsyB7H4=", "5jLpqTgjsBDSEX6SgZiRnbTMdTuRd8bQ5tSsAOxe0Ks="},
		2:  {"9xWrP6pdBx5uKsS7mU1b9zWUPcw3mdoNCF55gM+5M2o=", "T1X2GdkhUjV3iyufF9b0kVsWFxIU0VI4EpNml2Teci4=", "g0ZoeYWtIV8Q8i+4CmgqPnBvH2il107lyCgTQsyB7H4=", "5jLpqTgjsBDSEX6SgZiRnbTMdTuRd8bQ5tSsAOxe0Ks="},
		7:  {"2Q0P5jSR+TdkwdXWyx+GbBWX0KZbNZkWzCjyTPSozsw=", "ycRkkNklus5eMVRUvkD1pK321vMrA+jjOiZKU8aOcY4=", "zY1lN35vrXYAPixXSd59LsU29xUJtuW4o2dNNg5Y2Co=", "5jLpqTgjsBDSEX6SgZiRnbTMdTuRd8bQ5tSsAOxe0Ks="},
		14: {"GiUtVP0XhIaZ/fl7ReMLgw+9YUtjFAt8kaTdfOe2u/I=", "3cFRCtyHVxAUTugFyRgo30efbl+BVxdTQDIGg5H61SA=", "bC+VwvrJbalNVjfkdI8kUgs7mJoXrqiXCE7bgnD28pY="},
	}
	for i, want := range incl {
		p, err := ProveInclusion(i, 15, r)
		if err != nil {
			t.Fatal(err)
		}
		checkHashes(t, fmt.Sprintf("inclusion %d", i), p, want)
		if err := CheckInclusion(p, i, 15, tlog.RecordHash([]byte(tlogtest.TesseraEntries[i])), root); err != nil {
			t.Errorf("CheckInclusion(%d): %v", i, err)
		}
	}
	cons := map[int64][]string{
		1:  {"qxq38Hx8j+Dv9LpvqlPH5EEukaWZFT6KpOAb7s5beCU=", "Fn6xZD9sPWKLwgCo+qZLMAqFlh0MMf5ytM55jhjCpmM=", "g0ZoeYWtIV8Q8i+4CmgqPnBvH2il107lyCgTQsyB7H4=", "5jLpqTgjsBDSEX6SgZiRnbTMdTuRd8bQ5tSsAOxe0Ks="},
		4:  {"g0ZoeYWtIV8Q8i+4CmgqPnBvH2il107lyCgTQsyB7H4=", "5jLpqTgjsBDSEX6SgZiRnbTMdTuRd8bQ5tSsAOxe0Ks="},
		7:  {"2Q0P5jSR+TdkwdXWyx+GbBWX0KZbNZkWzCjyTPSozsw=", "ThcgoV2DYcK+VCxBUDWAlNxmLy2r7dq7dK7+OlgQKWs=", "ycRkkNklus5eMVRUvkD1pK321vMrA+jjOiZKU8aOcY4=", "zY1lN35vrXYAPixXSd59LsU29xUJtuW4o2dNNg5Y2Co=", "5jLpqTgjsBDSEX6SgZiRnbTMdTuRd8bQ5tSsAOxe0Ks="},
		8:  {"5jLpqTgjsBDSEX6SgZiRnbTMdTuRd8bQ5tSsAOxe0Ks="},
		14: {"GiUtVP0XhIaZ/fl7ReMLgw+9YUtjFAt8kaTdfOe2u/I=", "N4bcGOdfRQ1JnxGcHq7iDdgpPyH8nQhxShjXKxzWDrU=", "3cFRCtyHVxAUTugFyRgo30efbl+BVxdTQDIGg5H61SA=", "bC+VwvrJbalNVjfkdI8kUgs7mJoXrqiXCE7bgnD28pY="},
	}
	for m, want := range cons {
		p, err := ProveConsistency(m, 15, r)
		if err != nil {
			t.Fatal(err)
		}
		checkHashes(t, fmt.Sprintf("consistency %d", m), p, want)
		if err := CheckConsistency(p, m, mustHash(t, tlogtest.TesseraCheckpoints[m].Root), 15, root); err != nil {
			t.Errorf("CheckConsistency(%d): %v", m, err)
		}
	}
}

// TestProofsExhaustive proves every index in, and every older size of, each
// tree size 1..70 and the sizes around the 256 and 512 tile boundaries, over
// stored tiles, and checks each proof with CheckInclusion/CheckConsistency,
// x/mod, and transparency-dev/merkle, and that it equals x/mod's proof over
// the raw hashes.
func TestProofsExhaustive(t *testing.T) {
	var entries [][]byte
	for i := 0; i < 520; i++ {
		entries = append(entries, []byte(fmt.Sprintf("entry %d", i)))
	}
	hashes := tlogtest.NewTree(entries...)
	r := newTileStore(t, hashes, int64(len(entries))).reader()
	roots := make([]tlog.Hash, len(entries)+1)
	for n := range roots {
		roots[n] = hashes.Root(int64(n))
	}
	var sizes []int64
	for n := int64(1); n <= 70; n++ {
		sizes = append(sizes, n)
	}
	sizes = append(sizes, 255, 256, 257, 511, 512, 513)
	h := rfc6962.DefaultHasher
	for _, n := range sizes {
		for i := int64(0); i < n; i++ {
			p, err := ProveInclusion(i, n, r)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := tlog.ProveRecord(n, i, hashes)
			if err != nil || !slices.Equal(p, ref) {
				t.Fatalf("inclusion %d in %d differs from x/mod's: %v", i, n, err)
			}
			leaf := hashes.LeafHash(i)
			if err := CheckInclusion(p, i, n, leaf, roots[n]); err != nil {
				t.Fatalf("CheckInclusion(%d, %d): %v", i, n, err)
			}
			if err := proof.VerifyInclusion(h, uint64(i), uint64(n), leaf[:], proofBytes(p), roots[n][:]); err != nil {
				t.Fatalf("merkle VerifyInclusion(%d, %d): %v", i, n, err)
			}
		}
		for m := int64(0); m <= n; m++ {
			p, err := ProveConsistency(m, n, r)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckConsistency(p, m, roots[m], n, roots[n]); err != nil {
				t.Fatalf("CheckConsistency(%d, %d): %v", m, n, err)
			}
			if m == 0 {
				continue
			}
			if err := proof.VerifyConsistency(h, uint64(m), uint64(n), proofBytes(p), roots[m][:], roots[n][:]); err != nil {
				t.Fatalf("merkle VerifyConsistency(%d, %d): %v", m, n, err)
			}
		}
	}
}

func proofBytes(p []tlog.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// TestProofMutations changes inclusion and consistency proofs in every way a
// forger or a bug could: every bit of every hash, every truncation, an extra
// hash, a dropped or duplicated or swapped hash, a neighbouring index, a
// neighbouring size with its own root, swapped roots, another leaf. (A
// neighbouring size with the original root can verify: an RFC 6962 proof
// does not commit to the size, the signed checkpoint binds size and root.) CheckInclusion and CheckConsistency
// must reject each, with an error wrapping ErrProofFailed.
func TestProofMutations(t *testing.T) {
	var entries [][]byte
	for i := 0; i <= 600; i++ {
		entries = append(entries, []byte(fmt.Sprintf("entry %d", i)))
	}
	hashes := tlogtest.NewTree(entries...)
	r := newTileStore(t, hashes, 600).reader()
	root := func(n int64) tlog.Hash { return hashes.Root(n) }
	leaf := func(i int64) tlog.Hash { return hashes.LeafHash(i) }

	variants := func(p []tlog.Hash) map[string][]tlog.Hash {
		out := map[string][]tlog.Hash{}
		for k := range p {
			for bit := 0; bit < 256; bit++ {
				m := append([]tlog.Hash(nil), p...)
				m[k][bit/8] ^= 1 << (bit % 8)
				out[fmt.Sprintf("hash %d bit %d", k, bit)] = m
			}
			out[fmt.Sprintf("truncated to %d", k)] = append([]tlog.Hash(nil), p[:k]...)
			out[fmt.Sprintf("hash %d dropped", k)] = append(append([]tlog.Hash(nil), p[:k]...), p[k+1:]...)
			out[fmt.Sprintf("hash %d duplicated", k)] = append(append([]tlog.Hash(nil), p[:k+1]...), p[k:]...)
			if k+1 < len(p) && p[k] != p[k+1] {
				m := append([]tlog.Hash(nil), p...)
				m[k], m[k+1] = m[k+1], m[k]
				out[fmt.Sprintf("hashes %d and %d swapped", k, k+1)] = m
			}
		}
		out["extra hash"] = append(append([]tlog.Hash(nil), p...), leaf(0))
		out["extra zero hash"] = append(append([]tlog.Hash(nil), p...), tlog.Hash{})
		return out
	}
	failed := func(err error) bool { return err != nil && errors.Is(err, ErrProofFailed) }

	for _, c := range [][2]int64{{2, 15}, {7, 15}, {0, 1}, {300, 513}, {511, 512}, {599, 600}, {256, 600}} {
		i, n := c[0], c[1]
		p, err := ProveInclusion(i, n, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckInclusion(p, i, n, leaf(i), root(n)); err != nil {
			t.Fatal(err)
		}
		for what, m := range variants(p) {
			if !failed(CheckInclusion(m, i, n, leaf(i), root(n))) {
				t.Errorf("inclusion %d in %d with %s accepted", i, n, what)
			}
		}
		for _, bad := range []struct {
			what       string
			i, n       int64
			leaf, root tlog.Hash
		}{
			{"index+1", i + 1, n, leaf(i), root(n)},
			{"index-1", i - 1, n, leaf(i), root(n)},
			{"size+1", i, n + 1, leaf(i), root(n + 1)},
			{"size-1", i, n - 1, leaf(i), root(n - 1)},
			{"other leaf", i, n, leaf((i + 1) % n), root(n)},
			{"entry hash as leaf", i, n, tlog.Hash{}, root(n)},
			{"old root", i, n, leaf(i), root(n - 1)},
			{"leaf as root", i, n, leaf(i), leaf(i)},
			{"negative index", -1, n, leaf(i), root(n)},
			{"index = size", n, n, leaf(i), root(n)},
		} {
			if n == 1 && (bad.what == "other leaf" || bad.what == "leaf as root") {
				// In a tree of one entry the root is the leaf.
				continue
			}
			if !failed(CheckInclusion(p, bad.i, bad.n, bad.leaf, bad.root)) {
				t.Errorf("inclusion %d in %d with %s accepted", i, n, bad.what)
			}
		}
	}
	for _, c := range [][2]int64{{1, 15}, {7, 15}, {8, 15}, {14, 15}, {256, 257}, {255, 513}, {300, 600}} {
		m, n := c[0], c[1]
		p, err := ProveConsistency(m, n, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckConsistency(p, m, root(m), n, root(n)); err != nil {
			t.Fatal(err)
		}
		for what, v := range variants(p) {
			if !failed(CheckConsistency(v, m, root(m), n, root(n))) {
				t.Errorf("consistency %d -> %d with %s accepted", m, n, what)
			}
		}
		for _, bad := range []struct {
			what       string
			m, n       int64
			oldR, newR tlog.Hash
		}{
			{"old size+1", m + 1, n, root(m + 1), root(n)},
			{"old size-1", m - 1, n, root(m - 1), root(n)},
			{"new size+1", m, n + 1, root(m), root(n + 1)},
			{"new size-1", m, n - 1, root(m), root(n - 1)},
			{"swapped roots", m, n, root(n), root(m)},
			{"wrong old root", m, n, root(m - 1), root(n)},
			{"wrong new root", m, n, root(m), root(n - 1)},
			{"sizes swapped", n, m, root(n), root(m)},
		} {
			if !failed(CheckConsistency(p, bad.m, bad.oldR, bad.n, bad.newR)) {
				t.Errorf("consistency %d -> %d with %s accepted", m, n, bad.what)
			}
		}
	}
	// The degenerate sizes: from 0 any non-empty proof fails; to the same
	// size the roots must match and the proof be empty.
	if !failed(CheckConsistency([]tlog.Hash{leaf(0)}, 0, EmptyRoot, 5, root(5))) {
		t.Error("consistency from 0 with a non-empty proof accepted")
	}
	if !failed(CheckConsistency(nil, 5, root(4), 5, root(5))) {
		t.Error("consistency 5 -> 5 with different roots accepted")
	}
	if !failed(CheckConsistency([]tlog.Hash{leaf(0)}, 5, root(5), 5, root(5))) {
		t.Error("consistency 5 -> 5 with a non-empty proof accepted")
	}
	if err := CheckConsistency(nil, 5, root(5), 5, root(5)); err != nil {
		t.Errorf("consistency 5 -> 5: %v", err)
	}
	long := make([]tlog.Hash, MaxProofHashes+1)
	if !failed(CheckInclusion(long, 0, 1<<62, leaf(0), root(1))) || !failed(CheckConsistency(long, 1, root(1), 1<<62, root(1))) {
		t.Error("a proof longer than MaxProofHashes was accepted")
	}
	// Proofs out of range.
	for _, c := range [][2]int64{{0, 0}, {-1, 5}, {5, 5}, {6, 5}} {
		if _, err := ProveInclusion(c[0], c[1], r); !errors.Is(err, ErrProofRange) {
			t.Errorf("ProveInclusion(%d, %d) = %v, want ErrProofRange", c[0], c[1], err)
		}
	}
	for _, c := range [][2]int64{{-1, 5}, {6, 5}, {0, -1}} {
		if _, err := ProveConsistency(c[0], c[1], r); !errors.Is(err, ErrProofRange) {
			t.Errorf("ProveConsistency(%d, %d) = %v, want ErrProofRange", c[0], c[1], err)
		}
	}
	for _, c := range [][2]int64{{0, 5}, {5, 5}, {0, 0}} {
		if p, err := ProveConsistency(c[0], c[1], r); err != nil || len(p) != 0 {
			t.Errorf("ProveConsistency(%d, %d) = %d hashes, %v; want none", c[0], c[1], len(p), err)
		}
	}
}

// checkHashes fails t unless p is the hashes want (base64), in order.
func checkHashes(t *testing.T, what string, p []tlog.Hash, want []string) {
	t.Helper()
	if len(p) != len(want) {
		t.Fatalf("%s: %d hashes, want %d", what, len(p), len(want))
	}
	for k := range p {
		if p[k] != mustHash(t, want[k]) {
			t.Errorf("%s hash %d = %v, want %s", what, k, p[k], want[k])
		}
	}
}
