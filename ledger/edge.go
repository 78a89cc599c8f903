package ledger

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/ledger/kv"
	itlog "indelible.dev/tlog"
)

// edge is the right edge of the tree, kept in memory by the sequencer: the
// compact range of [0, size), the current (partial) hash tile at each tile
// level, and the current (partial) entry bundle. Everything left of the edge
// is immutable and lives in pebble as full tiles and bundles.
//
// The right edge is persisted so that a commit writes about as much as it
// appends, whatever the batch size: the new entries of the partial bundle go
// into one 'e' record per commit (deleted once the bundle is full and written
// whole), the partial level-0 tile is not stored at all (Open recomputes it
// from the partial bundle), and partial tiles at levels >= 1, which change
// only when a tile below them fills, are rewritten only then. Rewriting the
// whole partial bundle and tile at every commit made small commits write over
// a hundred times their payload.
//
// The buffers are append-only: a full tile or bundle gets a fresh buffer, and
// bytes once appended never change. So a snapshot (slice headers taken at
// the end of a commit) stays valid while the sequencer goes on appending, and
// serves the published right edge to readers without touching pebble.
type edge struct {
	size   int64
	rng    *compact.Range
	tiles  []edgeTile // index = tile level L
	bundle edgeTile   // data is the bundle bytes, w the entry count
}

type edgeTile struct {
	n     int64  // tile index
	w     int    // hashes (or entries) in data
	data  []byte // hashes (32 bytes each) or bundle bytes
	dirty bool   // changed since the last commit

	// The inner nodes of tile innerN collected so far (see innerKey),
	// written when the tile's last inner node is: proofs then read them
	// instead of recomputing up to 255 hashes per tile.
	inner  []byte
	innerN int64
}

// edgeSnapshot is the right edge at one tree size, immutable.
type edgeSnapshot struct {
	tiles  []edgeTile
	bundle edgeTile
}

func (e *edge) snapshot() *edgeSnapshot {
	s := &edgeSnapshot{tiles: make([]edgeTile, len(e.tiles)), bundle: e.bundle}
	copy(s.tiles, e.tiles)
	for i := range s.tiles {
		s.tiles[i].data = s.tiles[i].data[:len(s.tiles[i].data):len(s.tiles[i].data)]
	}
	s.bundle.data = s.bundle.data[:len(s.bundle.data):len(s.bundle.data)]
	return s
}

// partialTile returns the snapshot's partial hash tile at level l if its
// index is n.
func (s *edgeSnapshot) partialTile(l int, n int64) ([]byte, bool) {
	if l < 0 || l >= len(s.tiles) || s.tiles[l].n != n || s.tiles[l].w == 0 {
		return nil, false
	}
	return s.tiles[l].data, true
}

// partialBundle returns the snapshot's partial bundle if its index is n.
func (s *edgeSnapshot) partialBundle(n int64) ([]byte, bool) {
	if s.bundle.n != n || s.bundle.w == 0 {
		return nil, false
	}
	return s.bundle.data, true
}

// visit records one node of the tree that a compact range append completed
// (the callback of compact.Range.Append), adding what it fills to b.
func (e *edge) visit(b kv.Batch, id compact.NodeID, hash []byte) {
	lvl := int(id.Level / itlog.TileHeight)
	if k := int(id.Level % itlog.TileHeight); k != 0 {
		e.tile(lvl).visitInner(b, lvl, k, id.Index, hash)
		return
	}
	e.tile(lvl).visitHash(b, lvl, id, hash)
}

// visitInner keeps an inner node (level k within the tile, k in 1..7) of the
// tile at level lvl for the tile's inner record, written once the tile's
// last inner node arrives.
func (t *edgeTile) visitInner(b kv.Batch, lvl, k int, index uint64, hash []byte) {
	n := int64(index >> (itlog.TileHeight - k))
	off := int(int64(index) - n<<(itlog.TileHeight-k))
	if t.inner == nil || t.innerN != n {
		t.inner, t.innerN = make([]byte, innerHashes*tlog.HashSize), n
	}
	copy(t.inner[(innerStart(k)+off)*tlog.HashSize:], hash)
	if k == itlog.TileHeight-1 && off == 1 {
		b.Set(innerKey(lvl, n), t.inner)
		t.inner = nil
	}
}

// visitHash appends a hash of the tile's bottom row; a tile that becomes full
// is written to b and a new one started.
func (t *edgeTile) visitHash(b kv.Batch, lvl int, id compact.NodeID, hash []byte) {
	if int64(id.Index) != t.n*itlog.TileWidth+int64(t.w) {
		panic(fmt.Sprintf("ledger: node %d/%d out of order in tile %d/%d width %d", id.Level, id.Index, lvl, t.n, t.w))
	}
	t.data = append(t.data, hash...)
	t.w++
	t.dirty = true
	if t.w == itlog.TileWidth {
		b.Set(tileKey(lvl, t.n), t.data)
		t.n++
		t.w = 0
		t.data = newTileBuf() // snapshots may still hold the old one
		t.dirty = false
	}
}

func newTileBuf() []byte { return make([]byte, 0, itlog.TileWidth*tlog.HashSize) }

func (e *edge) tile(l int) *edgeTile {
	for len(e.tiles) <= l {
		e.tiles = append(e.tiles, edgeTile{n: 0, data: newTileBuf()})
	}
	return &e.tiles[l]
}

// loadEdge reads the right edge of tree from the store: the partial bundle
// from its 'e' records, the partial level-0 tile recomputed from it, the
// partial tiles above from pebble. It rebuilds the compact range from them
// and checks that its root equals the recorded root.
func (l *Log) loadEdge(tree tlog.Tree) (*edge, error) {
	e := &edge{size: tree.N}
	e.bundle.n = tree.N / itlog.TileWidth
	e.bundle.w = int(tree.N % itlog.TileWidth)
	data, err := l.readDeltas(e.bundle.n, e.bundle.w)
	if err != nil {
		return nil, err
	}
	e.bundle.data = data
	if err := l.fillEdgeTiles(e, false, true); err != nil {
		return nil, err
	}

	rng, err := l.edgeRange(e, tree)
	if err != nil {
		return nil, err
	}
	e.rng = rng
	return e, nil
}

// fillEdgeTiles fills e's partial tiles for a tree of e.size entries:
// level 0 from the hashes of e's bundle, the levels above from the stored
// tiles, which must be exactly as wide as the partial tile (the writer's own
// right edge) or, with prefix, at least as wide (a reader's: the store may be
// ahead of the tree it serves; partial tiles are prefixes of later ones).
// With inner, the inner nodes of each partial tile are restored too.
func (l *Log) fillEdgeTiles(e *edge, prefix, inner bool) error {
	for lvl := 0; ; lvl++ {
		count := e.size >> (uint(lvl) * itlog.TileHeight)
		if count == 0 && lvl > 0 {
			break
		}
		t := e.tile(lvl)
		t.n = count / itlog.TileWidth
		t.w = int(count % itlog.TileWidth)
		want := t.w * tlog.HashSize
		switch {
		case t.w == 0:
		case lvl == 0:
			err := itlog.WalkBundle(e.bundle.data, func(entry []byte) bool {
				h := tlog.RecordHash(entry)
				t.data = append(t.data, h[:]...)
				return true
			})
			if err != nil {
				return fmt.Errorf("%w: right-edge bundle %d: %w", ErrCorrupt, e.bundle.n, err)
			}
		default:
			data, err := l.get(tileKey(lvl, t.n))
			if err != nil {
				return fmt.Errorf("%w: reading right-edge tile %d/%d: %w", ErrCorrupt, lvl, t.n, err)
			}
			if len(data) != want && (!prefix || len(data) < want) {
				return fmt.Errorf("%w: right-edge tile %d/%d is %d bytes, want %d", ErrCorrupt, lvl, t.n, len(data), want)
			}
			t.data = append(t.data, data[:want]...)
		}
		if inner && t.w > 1 {
			// Restore the inner nodes of the partial tile computed so far.
			ex := expand(t.data)
			t.inner, t.innerN = make([]byte, innerHashes*tlog.HashSize), t.n
			for k := 1; k < itlog.TileHeight; k++ {
				for i, h := range ex.levels[k] {
					copy(t.inner[(innerStart(k)+i)*tlog.HashSize:], h[:])
				}
			}
		}
		if count == 0 {
			break
		}
	}
	return nil
}

// edgeRange rebuilds the compact range of e from the hashes of its nodes:
// the partial tiles (and so the entries of the partial bundle) must hash up
// to tree's root.
func (l *Log) edgeRange(e *edge, tree tlog.Tree) (*compact.Range, error) {
	ids := compact.RangeNodes(0, uint64(tree.N), nil)
	indexes := make([]int64, len(ids))
	for i, id := range ids {
		indexes[i] = tlog.StoredHashIndex(int(id.Level), int64(id.Index))
	}
	hashes, err := itlog.StoredHashReader(l.readTilesForEdge(e)).ReadHashes(indexes)
	if err != nil {
		return nil, fmt.Errorf("%w: reading compact range: %w", ErrCorrupt, err)
	}
	hs := make([][]byte, len(hashes))
	for i := range hashes {
		hs[i] = hashes[i][:]
	}
	rng, err := rangeFactory.NewRange(0, uint64(tree.N), hs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	root, err := rootOf(rng)
	if err != nil {
		return nil, err
	}
	if root != tree.Hash {
		return nil, fmt.Errorf("%w: stored tiles give root %v for size %d, state says %v", ErrCorrupt, root, tree.N, tree.Hash)
	}
	return rng, nil
}

// readDeltas reassembles the partial bundle n of w entries from its 'e'
// records, which must be contiguous and hold exactly w entries.
func (l *Log) readDeltas(n int64, w int) ([]byte, error) {
	start := n * itlog.TileWidth
	data := make([]byte, 0, 64<<10)
	next := start
	var bad error
	err := l.db.Scan(deltaKey(start), deltaKey(start+itlog.TileWidth), false, func(k, v []byte) bool {
		first := int64(0)
		for _, c := range k[1:] {
			first = first<<8 | int64(c)
		}
		if first != next {
			bad = fmt.Errorf("%w: partial bundle %d: record for entry %d, want %d", ErrCorrupt, n, first, next)
			return false
		}
		k0 := 0
		if err := itlog.WalkBundle(v, func([]byte) bool { k0++; return true }); err != nil || k0 == 0 {
			bad = fmt.Errorf("%w: partial bundle %d: record at entry %d is malformed", ErrCorrupt, n, first)
			return false
		}
		data = append(data, v...)
		next += int64(k0)
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	if next != start+int64(w) {
		return nil, fmt.Errorf("%w: partial bundle %d holds %d entries, the tree needs %d", ErrCorrupt, n, next-start, w)
	}
	return data, nil
}

// readTilesForEdge reads tiles from the store, using the in-memory right edge
// for partial tiles.
func (l *Log) readTilesForEdge(e *edge) itlog.TileReadFunc {
	return func(tiles []tlog.Tile) ([][]byte, error) {
		out := make([][]byte, len(tiles))
		for i, t := range tiles {
			if t.L < len(e.tiles) && e.tiles[t.L].n == t.N && e.tiles[t.L].w > 0 {
				out[i] = e.tiles[t.L].data
				continue
			}
			data, err := l.get(tileKey(t.L, t.N))
			if err != nil {
				return nil, fmt.Errorf("tile %d/%d: %w", t.L, t.N, err)
			}
			out[i] = data
		}
		return out, nil
	}
}

func rootOf(rng *compact.Range) (tlog.Hash, error) {
	if rng.End() == 0 {
		return itlog.EmptyRoot, nil
	}
	r, err := rng.GetRootHash(nil)
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("ledger: computing root: %w", err)
	}
	var h tlog.Hash
	copy(h[:], r)
	return h, nil
}
