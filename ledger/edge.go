package ledger

import (
	"bytes"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

// edge is the right edge of the tree, kept in memory by the sequencer: the
// compact range of [0, size), the current (partial) hash tile at each tile
// level, and the current (partial) entry bundle. Everything left of the edge
// is immutable and lives only in pebble.
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
}

func (e *edge) tile(l int) *edgeTile {
	for len(e.tiles) <= l {
		e.tiles = append(e.tiles, edgeTile{data: make([]byte, 0, itlog.TileWidth*tlog.HashSize)})
	}
	return &e.tiles[l]
}

// loadEdge reads the right-edge tiles and bundle of tree from the store,
// rebuilds the compact range from them, and checks that its root equals the
// recorded root and that the partial level-0 tile holds the leaf hashes of
// the partial bundle.
func (l *Log) loadEdge(tree tlog.Tree) (*edge, error) {
	e := &edge{size: tree.N}
	for lvl := 0; ; lvl++ {
		count := tree.N >> (uint(lvl) * itlog.TileHeight)
		if count == 0 && lvl > 0 {
			break
		}
		t := e.tile(lvl)
		t.n = count / itlog.TileWidth
		t.w = int(count % itlog.TileWidth)
		if t.w > 0 {
			data, err := l.get(tileKey(lvl, t.n))
			if err != nil {
				return nil, fmt.Errorf("%w: reading right-edge tile %d/%d: %v", ErrCorrupt, lvl, t.n, err)
			}
			if len(data) != t.w*tlog.HashSize {
				return nil, fmt.Errorf("%w: right-edge tile %d/%d is %d bytes, want %d", ErrCorrupt, lvl, t.n, len(data), t.w*tlog.HashSize)
			}
			t.data = append(t.data, data...)
		}
		if count == 0 {
			break
		}
	}
	e.bundle.n = tree.N / itlog.TileWidth
	e.bundle.w = int(tree.N % itlog.TileWidth)
	if e.bundle.w > 0 {
		data, err := l.get(bundleKey(e.bundle.n))
		if err != nil {
			return nil, fmt.Errorf("%w: reading right-edge bundle %d: %v", ErrCorrupt, e.bundle.n, err)
		}
		entries, err := itlog.ParseBundle(data, e.bundle.w)
		if err != nil {
			return nil, fmt.Errorf("%w: right-edge bundle %d: %v", ErrCorrupt, e.bundle.n, err)
		}
		t0 := e.tile(0)
		for i, entry := range entries {
			h := tlog.RecordHash(entry)
			if !bytes.Equal(h[:], t0.data[i*tlog.HashSize:(i+1)*tlog.HashSize]) {
				return nil, fmt.Errorf("%w: entry %d does not hash to its leaf in tile 0/%d", ErrCorrupt, e.bundle.n*itlog.TileWidth+int64(i), t0.n)
			}
		}
		e.bundle.data = data
	}

	// Rebuild the compact range from the stored hashes of its nodes.
	ids := compact.RangeNodes(0, uint64(tree.N), nil)
	indexes := make([]int64, len(ids))
	for i, id := range ids {
		indexes[i] = tlog.StoredHashIndex(int(id.Level), int64(id.Index))
	}
	hashes, err := itlog.StoredHashReader(l.readTilesForEdge(e)).ReadHashes(indexes)
	if err != nil {
		return nil, fmt.Errorf("%w: reading compact range: %v", ErrCorrupt, err)
	}
	hs := make([][]byte, len(hashes))
	for i := range hashes {
		hs[i] = hashes[i][:]
	}
	rng, err := rangeFactory.NewRange(0, uint64(tree.N), hs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	root, err := rootOf(rng)
	if err != nil {
		return nil, err
	}
	if root != tree.Hash {
		return nil, fmt.Errorf("%w: stored tiles give root %v for size %d, state says %v", ErrCorrupt, root, tree.N, tree.Hash)
	}
	e.rng = rng
	return e, nil
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
