package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// exhaustiveSize is the largest tree the exhaustive tests check every index
// and every pair of sizes of. It crosses the level-0 tile boundaries at 256
// and 512 and the first level-1 partial tile widths 1 and 2.
const exhaustiveSize = 600

// tilesUpTo returns every hash tile and entry bundle, full or partial at any
// width, that a tree of size n implies: the union of x/mod's NewTiles over
// every size step, plus the bundle of each level-0 tile.
func tilesUpTo(n int64) []tlog.Tile {
	var out []tlog.Tile
	for k := int64(1); k <= n; k++ {
		for _, t := range tlog.NewTiles(itlog.TileHeight, k-1, k) {
			out = append(out, t)
			if t.L == 0 {
				b := t
				b.L = itlog.EntriesLevel
				out = append(out, b)
			}
		}
	}
	return out
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openMem opens a log on fs (an in-memory pebble filesystem) in directory "log".
func openMem(t testing.TB, fs vfs.FS, s note.Signer) *Log {
	t.Helper()
	l, err := Open("log", Options{Signer: s, FS: fs, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func entryData(i int) []byte { return []byte(fmt.Sprintf("entry %d", i)) }

func hashesToBytes(p []tlog.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// compareTiles checks every tile implied by size n, read from l, against the
// reference, and that the tile just past the right edge is not served.
func compareTiles(t *testing.T, name string, l *Log, ref *tlogtest.Tree, n int64) {
	t.Helper()
	for _, tile := range tilesUpTo(n) {
		got, err := l.ReadTile(tile)
		if err != nil {
			t.Fatalf("%s: ReadTile(%s): %v", name, itlog.TilePath(tile), err)
		}
		if want := ref.Tile(tile); !bytes.Equal(got, want) {
			t.Fatalf("%s: tile %s differs from x/mod (%d bytes, want %d)", name, itlog.TilePath(tile), len(got), len(want))
		}
	}
	// Tiles beyond the published tree are not found.
	for l2 := itlog.EntriesLevel; l2 <= 3; l2++ {
		w := itlog.PartialWidth(l2, n)
		count := n
		if l2 > 0 {
			count = n >> (uint(l2) * itlog.TileHeight)
		}
		beyond := []tlog.Tile{
			{H: 8, L: l2, N: count / 256, W: w + 1},
			{H: 8, L: l2, N: count/256 + 1, W: 1},
			{H: 8, L: l2, N: count / 256, W: 256},
		}
		for _, b := range beyond {
			if b.W > 256 || (b.W == 256 && w == 0) {
				continue
			}
			if _, err := l.ReadTile(b); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: ReadTile(%s) at size %d = %v, want ErrNotFound", name, itlog.TilePath(b), n, err)
			}
		}
	}
	if _, err := l.ReadTile(tlog.Tile{H: 10, L: 0, N: 0, W: 1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("%s: ReadTile of a height-10 tile = %v, want ErrNotFound", name, err)
	}
}

// TestExhaustive grows a log to exhaustiveSize entries, one Append at a time
// and, in a second log, in batches of irregular sizes with reopens in
// between, and then checks, from the final logs (which serve proofs and tiles
// for every size up to the published one):
//   - every size's root against x/mod's TreeHash;
//   - every index's inclusion proof in every size, with x/mod CheckRecord and
//     transparency-dev/merkle VerifyInclusion;
//   - every pair of sizes' consistency proof, with x/mod CheckTree and
//     merkle VerifyConsistency;
//   - every tile and bundle, full and partial at every width, byte-identical
//     to x/mod's NewTiles/ReadTileData and to the uint16-prefixed encoding,
//     and identical between the two logs.
func TestExhaustive(t *testing.T) {
	s, v := testSigner(t)
	ctx := context.Background()
	ref := &tlogtest.Tree{}
	for i := 0; i < exhaustiveSize; i++ {
		ref.Add(entryData(i))
	}
	roots := make([]tlog.Hash, exhaustiveSize+1)
	for n := range roots {
		roots[n] = ref.Root(int64(n))
	}

	// Log A: one entry per Append; after each, the published checkpoint is
	// for exactly that size and root, signed by the log's key.
	fsA := vfs.NewMem()
	a := openMem(t, fsA, s)
	defer a.Close()
	if cp, signed := a.Checkpoint(); cp.N != 0 || cp.Hash != itlog.EmptyRoot {
		t.Fatalf("new log checkpoint = %d %v, want the empty tree", cp.N, cp.Hash)
	} else if _, _, err := itlog.OpenCheckpoint(signed, v); err != nil {
		t.Fatalf("size-0 checkpoint does not verify: %v", err)
	}
	for i := 0; i < exhaustiveSize; i++ {
		idx, err := a.Append(ctx, entryData(i))
		if err != nil || idx != int64(i) {
			t.Fatalf("Append(%d) = %d, %v", i, idx, err)
		}
		cp, signed := a.Checkpoint()
		if cp.N != int64(i+1) || cp.Hash != roots[i+1] {
			t.Fatalf("after Append(%d): checkpoint %d %v, want %d %v", i, cp.N, cp.Hash, i+1, roots[i+1])
		}
		if c, _, err := itlog.OpenCheckpoint(signed, v); err != nil || c.N != cp.N || c.Hash != cp.Hash {
			t.Fatalf("signed checkpoint %d: %v (%d)", i+1, err, c.N)
		}
	}

	// Log B: batches of irregular sizes, closing and reopening in between,
	// so that Open's right-edge recomputation runs at many sizes.
	fsB := vfs.NewMem()
	b := openMem(t, fsB, s)
	rng := rand.New(rand.NewPCG(1, 2))
	batchSizes := []int{1, 2, 3, 250, 1, 255, 256, 257}
	for next, k := 0, 0; next < exhaustiveSize; k++ {
		sz := rng.IntN(40) + 1
		if k < len(batchSizes) {
			sz = batchSizes[k]
		}
		sz = min(sz, exhaustiveSize-next)
		batch := make([]Entry, sz)
		for j := range batch {
			batch[j].Data = entryData(next + j)
		}
		idx, err := b.AppendEntries(ctx, batch)
		if err != nil {
			t.Fatalf("AppendEntries(%d..%d): %v", next, next+sz, err)
		}
		for j := range idx {
			if idx[j] != int64(next+j) {
				t.Fatalf("batch entry %d got index %d", next+j, idx[j])
			}
		}
		next += sz
		if cp, _ := b.Checkpoint(); cp.N != int64(next) || cp.Hash != roots[next] {
			t.Fatalf("log B after %d: checkpoint %d %v", next, cp.N, cp.Hash)
		}
		if k%3 == 0 {
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			b = openMem(t, fsB, s)
			if cp, _ := b.Checkpoint(); cp.N != int64(next) || cp.Hash != roots[next] {
				t.Fatalf("log B reopened at %d: checkpoint %d %v", next, cp.N, cp.Hash)
			}
		}
	}
	defer b.Close()

	n := int64(exhaustiveSize)
	compareTiles(t, "one-by-one", a, ref, n)
	compareTiles(t, "batched", b, ref, n)

	// Every size's root, from both logs.
	for m := int64(0); m <= n; m++ {
		for _, l := range []*Log{a, b} {
			h, err := l.TreeHash(m)
			if err != nil || h != roots[m] {
				t.Fatalf("TreeHash(%d) = %v, %v; want %v", m, h, err, roots[m])
			}
		}
	}
	// Every index and every older size of each size in the proof domain,
	// checked by parallel workers (concurrent readers of one log).
	sizes := proofSizes(n)
	t.Logf("checking every inclusion and consistency proof of %d tree sizes", len(sizes))
	work := make(chan int64)
	errc := make(chan error, runtime.GOMAXPROCS(0))
	for w := 0; w < cap(errc); w++ {
		go func() {
			var err error
			for m := range work {
				if err == nil {
					err = checkAllProofs(a, ref, roots, m)
				}
			}
			errc <- err
		}()
	}
	for _, m := range sizes {
		work <- m
	}
	close(work)
	for w := 0; w < cap(errc); w++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// Log B serves the same proofs as log A (spot-checked: every index and
	// every older size of a few tree sizes around the tile boundaries).
	for _, m := range []int64{1, 255, 256, 257, 511, 512, 513, n} {
		for i := int64(0); i < m; i++ {
			pa, errA := a.InclusionProof(i, m)
			pb, errB := b.InclusionProof(i, m)
			if errA != nil || errB != nil || !slices.Equal(pa, pb) {
				t.Fatalf("InclusionProof(%d, %d) differs between logs: %v %v", i, m, errA, errB)
			}
			pa2, errA := a.ConsistencyProof(i, m)
			pb2, errB := b.ConsistencyProof(i, m)
			if errA != nil || errB != nil || !slices.Equal(pa2, pb2) {
				t.Fatalf("ConsistencyProof(%d, %d) differs between logs: %v %v", i, m, errA, errB)
			}
		}
	}

	// Out of range requests.
	for _, c := range [][2]int64{{0, n + 1}, {-1, n}, {n, n}, {5, 5}, {0, 0}} {
		if _, err := a.InclusionProof(c[0], c[1]); !errors.Is(err, ErrRange) {
			t.Errorf("InclusionProof(%d, %d) = %v, want ErrRange", c[0], c[1], err)
		}
	}
	for _, c := range [][2]int64{{0, n + 1}, {-1, n}, {n, n - 1}, {n + 1, n + 1}} {
		if _, err := a.ConsistencyProof(c[0], c[1]); !errors.Is(err, ErrRange) {
			t.Errorf("ConsistencyProof(%d, %d) = %v, want ErrRange", c[0], c[1], err)
		}
	}
	if _, err := a.TreeHash(n + 1); !errors.Is(err, ErrRange) {
		t.Errorf("TreeHash(n+1) = %v, want ErrRange", err)
	}
	for _, i := range []int64{-1, n, n + 1} {
		if _, err := a.Entry(i); !errors.Is(err, ErrNotFound) {
			t.Errorf("Entry(%d) = %v, want ErrNotFound", i, err)
		}
	}
	for i := int64(0); i < n; i++ {
		e, err := b.Entry(i)
		if err != nil || !bytes.Equal(e, ref.Entry(i)) {
			t.Fatalf("Entry(%d) = %q, %v", i, e, err)
		}
	}
}

// proofSizes returns the tree sizes whose every inclusion and consistency
// proof TestExhaustive checks: every size 1..n. (It once skipped sizes under
// the race detector; since proofs read through the expanded-tile cache the
// whole domain takes about 10 s with -race.)
func proofSizes(n int64) []int64 {
	sizes := make([]int64, 0, n)
	for m := int64(1); m <= n; m++ {
		sizes = append(sizes, m)
	}
	return sizes
}

// checkAllProofs checks, for the tree of size m, every index's inclusion
// proof from l with x/mod CheckRecord and merkle VerifyInclusion, and every
// consistency proof from an older size k <= m with x/mod CheckTree and merkle
// VerifyConsistency.
func checkAllProofs(l *Log, ref *tlogtest.Tree, roots []tlog.Hash, m int64) error {
	hasher := rfc6962.DefaultHasher
	for i := int64(0); i < m; i++ {
		p, err := l.InclusionProof(i, m)
		if err != nil {
			return fmt.Errorf("InclusionProof(%d, %d): %v", i, m, err)
		}
		leaf := ref.LeafHash(i)
		if err := tlog.CheckRecord(p, m, roots[m], i, leaf); err != nil {
			return fmt.Errorf("x/mod CheckRecord(%d, %d): %v", i, m, err)
		}
		if err := proof.VerifyInclusion(hasher, uint64(i), uint64(m), leaf[:], hashesToBytes(p), roots[m][:]); err != nil {
			return fmt.Errorf("merkle VerifyInclusion(%d, %d): %v", i, m, err)
		}
	}
	for k := int64(0); k <= m; k++ {
		p, err := l.ConsistencyProof(k, m)
		if err != nil {
			return fmt.Errorf("ConsistencyProof(%d, %d): %v", k, m, err)
		}
		if k > 0 && k < m {
			if err := tlog.CheckTree(p, m, roots[m], k, roots[k]); err != nil {
				return fmt.Errorf("x/mod CheckTree(%d, %d): %v", k, m, err)
			}
		} else if len(p) != 0 {
			return fmt.Errorf("ConsistencyProof(%d, %d) has %d hashes, want none", k, m, len(p))
		}
		if k > 0 {
			if err := proof.VerifyConsistency(hasher, uint64(k), uint64(m), hashesToBytes(p), roots[k][:], roots[m][:]); err != nil {
				return fmt.Errorf("merkle VerifyConsistency(%d, %d): %v", k, m, err)
			}
		}
	}
	return nil
}

// TestVectorsSize1000 checks the tiles and bundles of the log of entries
// "entry 0".."entry 999" against the SHA-256 values in
// cross-checked test vectors (cross-verified with tessera's
// posix-oneshot output), and the roots listed there.
func TestVectorsSize1000(t *testing.T) {
	s, _ := testSigner(t)
	l := openMem(t, vfs.NewMem(), s)
	defer l.Close()
	ctx := context.Background()
	roots := map[int64]string{
		1:    "dziFphNIniTOLPdhmdakI/BC5LvxLX7s7pEu8nbGVwE=",
		2:    "WkdmL9ijF9lgSaP59HxV3GfKZgUbqjaD27GbL+CaB7A=",
		3:    "lPvQ3YNvUDAWkubQ6t5yjuGexSv/8WBu2AfIV11aqhk=",
		255:  "z2Z5PmMp3/JC6zzuCm82rT46GW3MVzoex3XhAr6GPxw=",
		256:  "2mWW2VNp9f7zIquOTg2jsLUCNqqcijsdJG90Ecni4y4=",
		257:  "XB/f6DU1gCLyOS3keNvgU/wTDP4dOggoeakM9r8Uv34=",
		511:  "uiTGt6wKXP4z1jM1r8HnaLsgypMfJxLzM+YIbyIp5KE=",
		512:  "xtuUnnbP1dYUB8c6SBkhJlqwJOphMdAtxrcN79/U+to=",
		1000: "NGxrnLicS3b6ydyyDNqG46AcCldBfBOQKOrNRTj96Vs=",
	}
	var batch []Entry
	for i := 0; i < 1000; i++ {
		batch = append(batch, Entry{Data: entryData(i)})
		if _, ok := roots[int64(i+1)]; ok || len(batch) == 97 {
			if _, err := l.AppendEntries(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	for n, want := range roots {
		h, err := l.TreeHash(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.StdEncoding.EncodeToString(h[:]); got != want {
			t.Errorf("root of size %d = %s, want %s", n, got, want)
		}
	}
	vectors := []struct {
		path string
		size int
		sum  string
	}{
		{"tile/0/000", 8192, "b0f6ca2ff42508faf8c6bb4ea8bb9c74243b19d4174fdc4fd17bdad9099e605e"},
		{"tile/entries/000", 2706, "c378282cb2167eb29f7e0c483ef2ce284728c12286469737cf8c3dc71e412ff1"},
		{"tile/0/001", 8192, "5b4af7f8c276af63acf25814d12ef3d04d3ed33d10431e9f8535876604e53acf"},
		{"tile/entries/001", 2816, "763577dddb4ea347cde84a890db17d3f534baf4de625a511bba7985b3c4217bc"},
		{"tile/0/002", 8192, "5537abfd2ac6858fe31ad8cd046bcb350686e4d68995c5f8b81eb9e171602b36"},
		{"tile/entries/002", 2816, "a50f510c2b030a6e30fabb010d79f567ce702c8cbdc38663d566891863720a88"},
		{"tile/0/003.p/232", 7424, "ecb4d7eaef85710847beb61832ba6c535c3be8e743ad561e3d8e6a562e6cafef"},
		{"tile/entries/003.p/232", 2552, "1d60f786927687a6b4c15c4996d949ee96b7e28e6ae612bdfb70c02d6513ca4d"},
		{"tile/1/000.p/3", 96, "31061400c75f919581c1452a7e0f75ca257bc256f0031aa36bf0cbfaadb1e85a"},
	}
	for _, vec := range vectors {
		tile, err := itlog.ParseTilePath(vec.path)
		if err != nil {
			t.Fatal(err)
		}
		data, err := l.ReadTile(tile)
		if err != nil {
			t.Fatalf("ReadTile(%s): %v", vec.path, err)
		}
		sum := sha256.Sum256(data)
		if len(data) != vec.size || hex.EncodeToString(sum[:]) != vec.sum {
			t.Errorf("%s: %d bytes sha256 %x, want %d bytes %s", vec.path, len(data), sum, vec.size, vec.sum)
		}
	}
	first, err := l.ReadTile(tlog.Tile{H: 8, L: itlog.EntriesLevel, N: 0, W: 1})
	if err != nil || hex.EncodeToString(first) != "0007656e7472792030" {
		t.Errorf("first bundle entry = %x, %v", first, err)
	}
	// The size-256 vector: tile/1/000.p/1 as of size 256 is the root of the
	// first full tile.
	p1, err := l.ReadTile(tlog.Tile{H: 8, L: 1, N: 0, W: 1})
	if sum := sha256.Sum256(p1); err != nil || hex.EncodeToString(sum[:]) != "f01c757ba6dc86839ede8e694a0e86f97ea9ffca04a34404236c7f8cb374794a" {
		t.Errorf("tile/1/000.p/1 sha256 %x, %v", sum, err)
	}
}

// TestInclusionProofByHash checks lookups by leaf hash: every entry is found
// at its index with a valid proof in every size that contains it, entries
// beyond the size and unknown hashes are ErrNotFound, and a duplicated
// entry is appended again and found at its first index.
func TestInclusionProofByHash(t *testing.T) {
	s, _ := testSigner(t)
	l := openMem(t, vfs.NewMem(), s)
	defer l.Close()
	ctx := context.Background()
	ref := &tlogtest.Tree{}
	const n = 300
	var batch []Entry
	for i := 0; i < n; i++ {
		d := entryData(i % 280) // entries 280..299 repeat 0..19
		ref.Add(d)
		batch = append(batch, Entry{Data: d})
	}
	idx, err := l.AppendEntries(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range idx {
		if idx[i] != int64(i) {
			t.Fatalf("entry %d got index %d", i, idx[i])
		}
	}
	for _, m := range []int64{1, 20, 255, 256, 257, 281, n} {
		root := ref.Root(m)
		for i := int64(0); i < n; i++ {
			leaf := tlog.RecordHash(entryData(int(i % 280)))
			got, p, err := l.InclusionProofByHash(leaf, m)
			first := i % 280
			if first >= m {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("InclusionProofByHash(entry %d, size %d) = %d, %v; want ErrNotFound", i, m, got, err)
				}
				continue
			}
			if err != nil || got != first {
				t.Fatalf("InclusionProofByHash(entry %d, size %d) = %d, %v; want index %d", i, m, got, err, first)
			}
			if err := tlog.CheckRecord(p, m, root, got, leaf); err != nil {
				t.Fatalf("proof by hash of %d in %d: %v", got, m, err)
			}
		}
	}
	if _, _, err := l.InclusionProofByHash(tlog.RecordHash([]byte("absent")), n); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown hash: %v, want ErrNotFound", err)
	}
	// The entry hash (not the leaf hash) is not a leaf hash.
	if _, _, err := l.InclusionProofByHash(tlog.Hash(sha256.Sum256(entryData(0))), n); !errors.Is(err, ErrNotFound) {
		t.Errorf("plain SHA-256 of an entry: %v, want ErrNotFound", err)
	}
	if _, _, err := l.InclusionProofByHash(tlog.RecordHash(entryData(0)), n+1); !errors.Is(err, ErrRange) {
		t.Errorf("size beyond published: %v, want ErrRange", err)
	}
}
