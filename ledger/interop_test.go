package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"filippo.io/torchwood"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

// tesseraFetchers adapts a Log to the fetcher functions of tessera's client
// package, as a tlog-tiles HTTP server would serve it: ErrNotFound becomes
// os.ErrNotExist, and a missing partial falls back to the full tile (the
// contract of client.TileFetcherFunc). mutate, if set, may alter the bytes
// served at a path (to show that the client notices).
type tesseraFetchers struct {
	l      *Log
	mutate func(path string, data []byte) []byte
	served map[string]int // paths fetched
}

func (f *tesseraFetchers) read(t tlog.Tile) ([]byte, error) {
	data, err := f.l.ReadTile(t)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", itlog.TilePath(t), os.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	path := itlog.TilePath(t)
	if f.served != nil {
		f.served[path]++
	}
	if f.mutate != nil {
		data = f.mutate(path, bytes.Clone(data))
	}
	return data, nil
}

func (f *tesseraFetchers) fetch(l int, n uint64, p uint8) ([]byte, error) {
	t := tlog.Tile{H: itlog.TileHeight, L: l, N: int64(n), W: itlog.TileWidth}
	if p != 0 {
		t.W = int(p)
	}
	data, err := f.read(t)
	if errors.Is(err, os.ErrNotExist) && p != 0 {
		t.W = itlog.TileWidth
		return f.read(t)
	}
	return data, err
}

func (f *tesseraFetchers) checkpoint(ctx context.Context) ([]byte, error) {
	_, signed := f.l.Checkpoint()
	return signed, nil
}

func (f *tesseraFetchers) tile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return f.fetch(int(level), index, p)
}

func (f *tesseraFetchers) bundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return f.fetch(itlog.EntriesLevel, index, p)
}

// TestTesseraClient reads the log only through tessera's client package:
// it fetches and verifies each checkpoint with the log's key, builds
// inclusion proofs for every entry and consistency proofs from every earlier
// size out of the tiles, verifies them with transparency-dev/merkle against
// the checkpoint roots, checks they equal the log's own proofs, follows the
// log with a LogStateTracker, and reads every entry bundle and checks its
// entries hash to the leaves of the level-0 tiles.
func TestTesseraClient(t *testing.T) {
	s, v := testSigner(t)
	ctx := context.Background()
	l := openMem(t, vfs.NewMem(), s)
	defer l.Close()
	f := &tesseraFetchers{l: l, served: map[string]int{}}
	origin := s.Name()

	// A tracker that starts at the size-0 checkpoint.
	tracker, err := client.NewLogStateTracker(ctx, f.tile, nil, v, origin, client.UnilateralConsensus(f.checkpoint))
	if err != nil {
		t.Fatalf("NewLogStateTracker on the empty log: %v", err)
	}
	if got := tracker.Latest(); got.Size != 0 || !bytes.Equal(got.Hash, itlog.EmptyRoot[:]) || got.Origin != origin {
		t.Fatalf("tracker on the empty log: %+v", got)
	}

	type seen struct {
		size uint64
		root []byte
	}
	var history []seen
	next := 0
	hasher := rfc6962.DefaultHasher
	for _, size := range []int{1, 2, 255, 256, 257, 300, 511, 512, 513, 700} {
		var batch []Entry
		for ; next < size; next++ {
			batch = append(batch, Entry{Data: entryData(next)})
		}
		if _, err := l.AppendEntries(ctx, batch); err != nil {
			t.Fatal(err)
		}
		cp, raw, _, err := client.FetchCheckpoint(ctx, f.checkpoint, v, origin)
		if err != nil {
			t.Fatalf("FetchCheckpoint at %d: %v", size, err)
		}
		if cp.Size != uint64(size) || cp.Origin != origin {
			t.Fatalf("tessera parsed checkpoint %+v, want size %d", cp, size)
		}
		if _, signed := l.Checkpoint(); !bytes.Equal(raw, signed) {
			t.Fatal("FetchCheckpoint returned other bytes than served")
		}
		// The tracker proves each new checkpoint consistent with the last.
		old, cproof, newer, err := tracker.Update(ctx)
		if err != nil {
			t.Fatalf("LogStateTracker.Update to %d: %v", size, err)
		}
		if !bytes.Equal(newer, raw) || (len(history) > 0 && len(cproof) == 0) || old == nil && len(history) > 0 {
			t.Fatalf("tracker update to %d: proof of %d hashes", size, len(cproof))
		}

		pb, err := client.NewProofBuilder(ctx, cp.Size, f.tile)
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(0); i < cp.Size; i++ {
			p, err := pb.InclusionProof(ctx, i)
			if err != nil {
				t.Fatalf("tessera InclusionProof(%d) in %d: %v", i, cp.Size, err)
			}
			leaf := rfc6962.DefaultHasher.HashLeaf(entryData(int(i)))
			if err := proof.VerifyInclusion(hasher, i, cp.Size, leaf, p, cp.Hash); err != nil {
				t.Fatalf("inclusion of %d in %d from tessera-built proof: %v", i, cp.Size, err)
			}
			own, err := l.InclusionProof(int64(i), int64(cp.Size))
			if err != nil || !equalBytes(hashesToBytes(own), p) {
				t.Fatalf("ledger's inclusion proof of %d in %d differs from tessera's: %v", i, cp.Size, err)
			}
		}
		for _, h := range history {
			p, err := pb.ConsistencyProof(ctx, h.size, cp.Size)
			if err != nil {
				t.Fatalf("tessera ConsistencyProof(%d, %d): %v", h.size, cp.Size, err)
			}
			if err := proof.VerifyConsistency(hasher, h.size, cp.Size, p, h.root, cp.Hash); err != nil {
				t.Fatalf("consistency %d -> %d from tessera-built proof: %v", h.size, cp.Size, err)
			}
			own, err := l.ConsistencyProof(int64(h.size), int64(cp.Size))
			if err != nil || !equalBytes(hashesToBytes(own), p) {
				t.Fatalf("ledger's consistency proof %d -> %d differs from tessera's: %v", h.size, cp.Size, err)
			}
		}
		history = append(history, seen{cp.Size, cp.Hash})

		// Every entry bundle, through GetEntryBundle, against the leaves
		// tessera reads from the level-0 tiles.
		leaves, err := client.FetchLeafHashes(ctx, f.tile, 0, cp.Size, cp.Size)
		if err != nil {
			t.Fatalf("FetchLeafHashes(%d): %v", cp.Size, err)
		}
		for b := uint64(0); b*256 < cp.Size; b++ {
			eb, err := client.GetEntryBundle(ctx, f.bundle, b, cp.Size)
			if err != nil {
				t.Fatalf("GetEntryBundle(%d) at %d: %v", b, cp.Size, err)
			}
			want := min(256, cp.Size-b*256)
			if uint64(len(eb.Entries)) != want {
				t.Fatalf("bundle %d at size %d has %d entries, want %d", b, cp.Size, len(eb.Entries), want)
			}
			for j, e := range eb.Entries {
				i := b*256 + uint64(j)
				if !bytes.Equal(e, entryData(int(i))) || !bytes.Equal(hasher.HashLeaf(e), leaves[i]) {
					t.Fatalf("bundle %d entry %d = %q does not match its leaf", b, j, e)
				}
			}
		}
		// tessera's range nodes rebuild the checkpoint root.
		nodes, err := client.FetchRangeNodes(ctx, cp.Size, f.tile)
		if err != nil {
			t.Fatal(err)
		}
		if root := rootFromRange(t, cp.Size, nodes); !bytes.Equal(root, cp.Hash) {
			t.Fatalf("root from tessera's range nodes at %d differs", cp.Size)
		}
	}
	// Every path the client fetched is a path tessera's own layout package
	// would produce for it, and parses back with ours.
	for path := range f.served {
		tile, err := itlog.ParseTilePath(path)
		if err != nil {
			t.Fatalf("served path %q: %v", path, err)
		}
		p := uint8(tile.W % 256)
		want := layout.TilePath(uint64(tile.L), uint64(tile.N), p)
		if tile.L == itlog.EntriesLevel {
			want = layout.EntriesPath(uint64(tile.N), p)
		}
		if path != want {
			t.Errorf("path %q, tessera's layout says %q", path, want)
		}
	}
	if len(f.served) < 20 {
		t.Errorf("only %d distinct paths served", len(f.served))
	}
}

// TestTesseraClientDetectsTampering checks that the interop test above can
// fail: a flipped byte in any served hash tile makes tessera-built proofs
// fail verification (or the fetch fail), a flipped byte in a bundle makes
// its entries not match their leaves, and a checkpoint from another key is
// refused.
func TestTesseraClientDetectsTampering(t *testing.T) {
	s, v := testSigner(t)
	ctx := context.Background()
	l := openMem(t, vfs.NewMem(), s)
	defer l.Close()
	var batch []Entry
	for i := 0; i < 600; i++ {
		batch = append(batch, Entry{Data: entryData(i)})
	}
	if _, err := l.AppendEntries(ctx, batch); err != nil {
		t.Fatal(err)
	}
	cp, _ := l.Checkpoint()
	size := uint64(cp.N)
	hasher := rfc6962.DefaultHasher
	for _, target := range []string{"tile/0/000", "tile/0/002.p/88", "tile/1/000.p/2"} {
		for _, off := range []int{0, 31, 32 * 5, -1} {
			f := &tesseraFetchers{l: l, mutate: func(path string, data []byte) []byte {
				if path == target {
					o := off % len(data)
					if o < 0 {
						o = len(data) - 1
					}
					data[o] ^= 0x01
				}
				return data
			}}
			pb, err := client.NewProofBuilder(ctx, size, f.tile)
			if err != nil {
				t.Fatal(err)
			}
			failed := 0
			for i := uint64(0); i < size; i++ {
				p, err := pb.InclusionProof(ctx, i)
				if err != nil || proof.VerifyInclusion(hasher, i, size, hasher.HashLeaf(entryData(int(i))), p, cp.Hash[:]) != nil {
					failed++
				}
			}
			if failed == 0 {
				t.Errorf("flipping byte %d of %s: every inclusion proof still verifies", off, target)
			}
		}
	}
	f := &tesseraFetchers{l: l, mutate: func(path string, data []byte) []byte {
		if path == "tile/entries/001" {
			data[len(data)-1] ^= 0x01
		}
		return data
	}}
	eb, err := client.GetEntryBundle(ctx, f.bundle, 1, size)
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := client.FetchLeafHashes(ctx, f.tile, 256, 256, size)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(hasher.HashLeaf(eb.Entries[255]), leaves[255]) {
		t.Error("a flipped byte in a bundle entry still matches its leaf")
	}
	other, _ := testSigner(t)
	otherLog := openMem(t, vfs.NewMem(), other)
	defer otherLog.Close()
	if _, _, _, err := client.FetchCheckpoint(ctx, (&tesseraFetchers{l: otherLog}).checkpoint, v, s.Name()); err == nil {
		t.Error("tessera accepted a checkpoint signed by another key with the same origin")
	}
}

func equalBytes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// rootFromRange computes the root of [0, size) from its compact range nodes.
func rootFromRange(t *testing.T, size uint64, nodes [][]byte) []byte {
	t.Helper()
	r, err := rangeFactory.NewRange(0, size, nodes)
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// torchwoodReader is a torchwood.TileReader over Log.ReadTile, serving the
// signed checkpoint at the "checkpoint" endpoint.
type torchwoodReader struct{ l *Log }

func (r torchwoodReader) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	return verifiedTiles(r).ReadTiles(tiles)
}

func (r torchwoodReader) SaveTiles([]tlog.Tile, [][]byte) {}

func (r torchwoodReader) ReadEndpoint(ctx context.Context, path string) ([]byte, error) {
	if path != "checkpoint" {
		return nil, os.ErrNotExist
	}
	_, signed := r.l.Checkpoint()
	return signed, nil
}

// TestTorchwoodClient reads the log with filippo.io/torchwood's client,
// which authenticates every tile against the checkpoint: the checkpoint
// parses with torchwood's strict parser, Client.Entries yields every entry
// (resuming across its partial-bundle stop), Client.Entry returns every
// entry with a proof equal to the log's own, and torchwood's tile paths are
// ours, both ways.
func TestTorchwoodClient(t *testing.T) {
	s, v := testSigner(t)
	ctx := context.Background()
	l := openMem(t, vfs.NewMem(), s)
	defer l.Close()
	r := torchwoodReader{l}
	c, err := torchwood.NewClient(r)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	for _, size := range []int{1, 255, 256, 257, 513, 700} {
		var batch []Entry
		for ; next < size; next++ {
			batch = append(batch, Entry{Data: entryData(next)})
		}
		if _, err := l.AppendEntries(ctx, batch); err != nil {
			t.Fatal(err)
		}
		raw, err := r.ReadEndpoint(ctx, "checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(raw, note.VerifierList(v))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := torchwood.ParseCheckpoint(n.Text)
		if err != nil {
			t.Fatalf("torchwood.ParseCheckpoint at %d: %v", size, err)
		}
		if cp.Origin != s.Name() || cp.N != int64(size) || cp.String() != n.Text {
			t.Fatalf("torchwood parsed %+v", cp)
		}
		got := map[int64][]byte{}
		for start := int64(0); start < cp.N; {
			before := len(got)
			for i, e := range c.Entries(ctx, cp.Tree, start) {
				got[i] = e
				start = i + 1
			}
			if err := c.Err(); err != nil {
				t.Fatalf("torchwood Entries at %d: %v", size, err)
			}
			if len(got) == before {
				t.Fatalf("torchwood Entries made no progress at %d of %d", start, cp.N)
			}
		}
		for i := int64(0); i < cp.N; i++ {
			if !bytes.Equal(got[i], entryData(int(i))) {
				t.Fatalf("torchwood entry %d = %q", i, got[i])
			}
		}
		for i := int64(0); i < cp.N; i += 7 {
			e, p, err := c.Entry(ctx, cp.Tree, i)
			if err != nil || !bytes.Equal(e, entryData(int(i))) {
				t.Fatalf("torchwood Entry(%d) in %d: %q, %v", i, size, e, err)
			}
			own, err := l.InclusionProof(i, cp.N)
			if err != nil || !slices.Equal(own, p) {
				t.Fatalf("ledger's inclusion proof of %d in %d differs from torchwood's: %v", i, cp.N, err)
			}
		}
	}
	// Tile paths: torchwood's and ours agree both ways.
	for _, tile := range tilesUpTo(700) {
		p := itlog.TilePath(tile)
		if tp := torchwood.TilePath(tile); tp != p {
			t.Fatalf("TilePath(%+v) = %q, torchwood says %q", tile, p, tp)
		}
		if tt, err := torchwood.ParseTilePath(p); err != nil || tt != tile {
			t.Fatalf("torchwood.ParseTilePath(%q) = %+v, %v", p, tt, err)
		}
	}
	// A flipped byte in a served tile is caught by torchwood's
	// authentication.
	bad := torchwoodReader{l}
	c2, _ := torchwood.NewClient(flipReader{bad, "tile/0/001"})
	cp, _ := l.Checkpoint()
	if _, _, err := c2.Entry(ctx, cp.Tree, 300); err == nil {
		t.Error("torchwood accepted an entry under a tampered tile")
	}
}

// flipReader serves path with its first byte flipped.
type flipReader struct {
	torchwoodReader
	path string
}

func (f flipReader) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	out, err := f.torchwoodReader.ReadTiles(ctx, tiles)
	for i := range out {
		if torchwood.TilePath(tiles[i]) == f.path {
			out[i] = bytes.Clone(out[i])
			out[i][0] ^= 1
		}
	}
	return out, err
}
