package tlog

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// MaxProofHashes bounds the hashes in any inclusion or consistency proof a
// parser accepts: RFC 6962 proofs in a tree below 2^63 are shorter.
const MaxProofHashes = 63

// ErrProofFailed is returned, possibly wrapped, by every proof check that fails.
var ErrProofFailed = errors.New("proof failed")

// ErrProofRange is returned, possibly wrapped, when a proof is requested for
// an index or size outside the tree.
var ErrProofRange = errors.New("proof out of range")

// TileReadFunc reads the given tiles (hash tiles only, never bundles) from
// trusted storage. It must return one slice per tile, each at least
// tiles[i].W*32 bytes long (a wider or full tile of the same level and index
// is fine: partial tiles are prefixes). The returned slices are only read.
type TileReadFunc func(tiles []tlog.Tile) ([][]byte, error)

// StoredHashReader returns a tlog.HashReader over tiles read from trusted
// storage. Unlike x/mod's TileHashReader it does not re-verify the tiles
// against a signed root: it is for the log's own store, whose right edge was
// checked on open. It plans the tiles for each ReadHashes call and reads each
// tile once, in one call to read.
func StoredHashReader(read TileReadFunc) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		type key struct {
			l int
			n int64
		}
		tileOf := make([]tlog.Tile, len(indexes))
		slot := make(map[key]int, 4)
		var tiles []tlog.Tile
		for i, x := range indexes {
			t := tlog.TileForIndex(TileHeight, x)
			tileOf[i] = t
			k := key{t.L, t.N}
			if j, ok := slot[k]; ok {
				if tiles[j].W < t.W {
					tiles[j].W = t.W
				}
				continue
			}
			slot[k] = len(tiles)
			tiles = append(tiles, t)
		}
		data, err := read(tiles)
		if err != nil {
			return nil, err
		}
		if len(data) != len(tiles) {
			return nil, fmt.Errorf("tlog: tile reader returned %d tiles, want %d", len(data), len(tiles))
		}
		hashes := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			t := tileOf[i]
			j := slot[key{t.L, t.N}]
			if len(data[j]) < tiles[j].W*tlog.HashSize {
				return nil, fmt.Errorf("tlog: tile %s is %d bytes, want at least %d", TilePath(tiles[j]), len(data[j]), tiles[j].W*tlog.HashSize)
			}
			h, err := tlog.HashFromTile(t, data[j], x)
			if err != nil {
				return nil, err
			}
			hashes[i] = h
		}
		return hashes, nil
	})
}

// ProveInclusion returns the RFC 6962 inclusion proof of the entry at index i
// in the tree of size n. It requires 0 <= i < n.
func ProveInclusion(i, n int64, r tlog.HashReader) (tlog.RecordProof, error) {
	if i < 0 || n <= 0 || i >= n {
		return nil, fmt.Errorf("%w: index %d not in a tree of size %d", ErrProofRange, i, n)
	}
	return tlog.ProveRecord(n, i, r)
}

// ProveConsistency returns the RFC 6962 consistency proof from the tree of
// size m to the tree of size n. It requires 0 <= m <= n; the proof is empty
// when m == 0 or m == n.
func ProveConsistency(m, n int64, r tlog.HashReader) (tlog.TreeProof, error) {
	if m < 0 || n < 0 || m > n {
		return nil, fmt.Errorf("%w: from size %d to size %d", ErrProofRange, m, n)
	}
	if m == 0 || m == n {
		return tlog.TreeProof{}, nil
	}
	return tlog.ProveTree(n, m, r)
}

// CheckInclusion verifies that leaf is the hash of entry i in the tree (n, root).
func CheckInclusion(p tlog.RecordProof, i, n int64, leaf, root tlog.Hash) error {
	if i < 0 || i >= n || len(p) > MaxProofHashes {
		return ErrProofFailed
	}
	if err := tlog.CheckRecord(p, n, root, i, leaf); err != nil {
		return fmt.Errorf("%w: %v", ErrProofFailed, err)
	}
	return nil
}

// CheckConsistency verifies that the tree (m, oldRoot) is a prefix of the tree
// (n, newRoot). With m == 0 the proof must be empty and any old root is the
// empty tree; with m == n the proof must be empty and the roots equal.
func CheckConsistency(p tlog.TreeProof, m int64, oldRoot tlog.Hash, n int64, newRoot tlog.Hash) error {
	if m < 0 || m > n || len(p) > MaxProofHashes {
		return ErrProofFailed
	}
	if m == 0 {
		if len(p) != 0 {
			return ErrProofFailed
		}
		return nil
	}
	if m == n {
		if len(p) != 0 || oldRoot != newRoot {
			return ErrProofFailed
		}
		return nil
	}
	if err := tlog.CheckTree(p, n, newRoot, m, oldRoot); err != nil {
		return fmt.Errorf("%w: %v", ErrProofFailed, err)
	}
	return nil
}
