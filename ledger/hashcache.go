package ledger

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/ledger/kv"
	itlog "indelible.dev/tlog"
)

// Proofs need hashes at every tree level, but tiles store only every eighth
// level; the hashes in between are recomputed from a tile's 256 hashes (up
// to 255 SHA-256 operations per tile touched, which dominated proof time).
// The expanded-tile cache keeps, for recently used tiles, every level of the
// subtree a tile spans, computed once. Full tiles never change; a partial
// tile's expansion is a prefix of its later ones, so an entry expanded at
// width w serves every width up to w.

// DefaultTileCacheSize is the default of Options.TileCacheSize: 4096 expanded
// tiles of about 16 KiB each (at most 64 MiB), which holds every level-0 tile
// of a million-entry log. Measured with BenchmarkInclusionProof (random
// entries of a 1M log, BENCHMARKS.md): 225 us a proof with no cache, 13 us
// with every tile cached.
const DefaultTileCacheSize = 4096

type tileKeyLN struct {
	l int
	n int64
}

// expanded holds levels 0..8 of the subtree spanned by one tile: level k
// has w>>k hashes (complete nodes only).
type expanded struct {
	w      int
	levels [itlog.TileHeight + 1][]tlog.Hash
}

func expand(data []byte) *expanded {
	w := len(data) / tlog.HashSize
	e := &expanded{w: w}
	all := make([]tlog.Hash, 0, 2*w)
	for i := 0; i < w; i++ {
		all = append(all, tlog.Hash(data[i*tlog.HashSize:(i+1)*tlog.HashSize]))
	}
	e.levels[0] = all[:w]
	var buf [1 + 2*tlog.HashSize]byte
	buf[0] = 1
	for k := 1; k <= itlog.TileHeight; k++ {
		prev := e.levels[k-1]
		start := len(all)
		for i := 0; i+1 < len(prev); i += 2 {
			copy(buf[1:], prev[i][:])
			copy(buf[1+tlog.HashSize:], prev[i+1][:])
			all = append(all, sha256.Sum256(buf[:]))
		}
		e.levels[k] = all[start:]
	}
	return e
}

type tileCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front = most recent; values are *cacheEntry
	items map[tileKeyLN]*list.Element
	gets  int64 // lookups so far (tests count them)
	puts  int64 // insertions so far (tests count them)
}

type cacheEntry struct {
	key tileKeyLN
	e   *expanded
}

func newTileCache(max int) *tileCache {
	return &tileCache{max: max, ll: list.New(), items: make(map[tileKeyLN]*list.Element)}
}

func (c *tileCache) get(k tileKeyLN, minW int) *expanded {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	el, ok := c.items[k]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry).e
	if e.w < minW {
		return nil
	}
	c.ll.MoveToFront(el)
	return e
}

// hasRoom reports whether the cache holds fewer tiles than its maximum.
func (c *tileCache) hasRoom() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len() < c.max
}

func (c *tileCache) put(k tileKeyLN, e *expanded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts++
	if el, ok := c.items[k]; ok {
		if old := el.Value.(*cacheEntry); old.e.w < e.w {
			old.e = e
		}
		c.ll.MoveToFront(el)
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{key: k, e: e})
	for c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

// hashReader returns a HashReader over the stored tiles, through the
// expanded-tile cache. Any tree size up to the published one can be read.
//
// A full level-0 tile that is not cached is not expanded: the hashes a
// proof needs from it (one per level, levels 0 to 7) are copied straight
// from the stored tile and its inner record, borrowed from pebble without a
// copy of the 8 KiB values. A log of 10M entries has ~39,000 level-0 tiles,
// ten times what the cache holds, so most proofs miss there, and expanding
// (two 8 KiB copies, a 16 KiB allocation, an eviction) was most of a proof's
// CPU (BENCHMARKS.md, issue 13). Level-0 tiles enter the cache only while it
// has room; tiles of the levels above (few, and on every proof's path)
// always do.
func (l *Log) hashReader() tlog.HashReader { return l.hashReaderAt(l.pub.Load().edge, nil) }

// hashReaderAt is hashReader over the right edge snap, reading stored
// tiles and inner records from pre first (keyed by their store keys; see
// InclusionProofs), then from the store.
func (l *Log) hashReaderAt(snap *edgeSnapshot, pre map[string][]byte) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		// A proof reads several hashes from each tile it touches (up to
		// eight levels each): look each tile up in the shared cache once per
		// call, not once per hash (the cache's lock dominated proofs served
		// in parallel; BENCHMARKS.md, issue 13).
		type seenTile struct {
			key tileKeyLN
			e   *expanded
		}
		var seenBuf [8]seenTile
		seen := seenBuf[:0]
		raws := storedReads{pre: pre}
		defer raws.close()
		for i, x := range indexes {
			level, n := tlog.SplitStoredHashIndex(x)
			L, k := level/itlog.TileHeight, level%itlog.TileHeight
			span := uint(itlog.TileHeight - k) // this level's nodes per tile = 1<<span
			key := tileKeyLN{L, n >> span}
			off := int(n - key.n<<span)
			minW := (off + 1) << k // tile hashes needed for node off at level k
			var e *expanded
			for _, t := range seen {
				if t.key == key && t.e.w >= minW {
					e = t.e
					break
				}
			}
			if e == nil {
				e = l.tiles.get(key, minW)
				if e != nil {
					seen = append(seen, seenTile{key, e})
				}
			}
			if e == nil && L == 0 && !l.tiles.hasRoom() {
				if _, partial := snap.partialTile(0, key.n); !partial {
					h, ok, err := l.storedHash(&raws, key.n, k, off)
					if err != nil {
						return nil, err
					}
					if ok {
						out[i] = h
						continue
					}
					// No inner record (a store written before they were):
					// expand the tile.
				}
			}
			if e == nil {
				data, err := l.readTilePre(snap, pre, L, key.n)
				if err != nil {
					return nil, fmt.Errorf("ledger: reading tile %d/%d: %w", L, key.n, err)
				}
				if len(data)%tlog.HashSize != 0 || len(data)/tlog.HashSize < minW {
					return nil, fmt.Errorf("%w: tile %d/%d is %d bytes, need %d hashes", ErrCorrupt, L, key.n, len(data), minW)
				}
				e = l.expandStored(L, key.n, data, pre)
				l.tiles.put(key, e)
				seen = append(seen, seenTile{key, e})
			}
			out[i] = e.levels[k][off]
		}
		return out, nil
	})
}

// storedReads holds the stored values one HashReader call borrowed from
// pebble (valid until close), so that each is read once per call.
type storedReads struct {
	pre map[string][]byte // values read ahead (nil value: not stored)
	buf [4]storedRead
	n   int
}

type storedRead struct {
	key    []byte
	value  []byte // nil: not stored
	closer io.Closer
}

func (r *storedReads) close() {
	for i := range r.n {
		if c := r.buf[i].closer; c != nil {
			c.Close()
		}
	}
	r.n = 0
}

// get returns the value stored at key, borrowed until close, or nil if there
// is none.
func (r *storedReads) get(db kv.Store, key []byte) ([]byte, error) {
	if v, ok := r.pre[string(key)]; ok {
		return v, nil
	}
	for i := range r.n {
		if bytes.Equal(r.buf[i].key, key) {
			return r.buf[i].value, nil
		}
	}
	v, closer, err := db.Get(key)
	if errors.Is(err, kv.ErrNotFound) {
		v, closer, err = nil, nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: reading %q: %w", key, err)
	}
	if r.n == len(r.buf) {
		r.close()
	}
	r.buf[r.n] = storedRead{key: key, value: v, closer: closer}
	r.n++
	return v, nil
}

// storedHash returns the hash of node off at level k (0 <= k < 8) of the
// full level-0 tile n from the store: from the tile itself for k == 0, from
// its inner record above. ok is false if the tile has no inner record.
func (l *Log) storedHash(r *storedReads, n int64, k, off int) (h tlog.Hash, ok bool, err error) {
	var v []byte
	var at int
	if k == 0 {
		if v, err = r.get(l.db, tileKey(0, n)); err != nil {
			return h, false, err
		}
		if len(v) != itlog.TileWidth*tlog.HashSize {
			return h, false, fmt.Errorf("%w: tile 0/%d is %d bytes, want a full tile", ErrCorrupt, n, len(v))
		}
		at = off
	} else {
		if v, err = r.get(l.db, innerKey(0, n)); err != nil {
			return h, false, err
		}
		if v == nil {
			return h, false, nil
		}
		if len(v) != innerHashes*tlog.HashSize {
			return h, false, fmt.Errorf("%w: inner record of tile 0/%d is %d bytes, want %d", ErrCorrupt, n, len(v), innerHashes*tlog.HashSize)
		}
		at = innerStart(k) + off
	}
	copy(h[:], v[at*tlog.HashSize:])
	return h, true, nil
}

// expandStored returns the expansion of tile (lvl, n) whose hashes are data:
// for a full tile, from its stored inner record if there is one (no hashing;
// read from pre if it holds it, see hashReaderAt); otherwise computed.
func (l *Log) expandStored(lvl int, n int64, data []byte, pre map[string][]byte) *expanded {
	if len(data) != itlog.TileWidth*tlog.HashSize {
		return expand(data)
	}
	ik := innerKey(lvl, n)
	inner, ok := pre[string(ik)]
	var err error
	if !ok {
		inner, err = l.get(ik)
	}
	if err != nil || len(inner) != innerHashes*tlog.HashSize {
		return expand(data)
	}
	e := &expanded{w: itlog.TileWidth}
	all := make([]tlog.Hash, 0, itlog.TileWidth+innerHashes)
	for i := 0; i < itlog.TileWidth; i++ {
		all = append(all, tlog.Hash(data[i*tlog.HashSize:(i+1)*tlog.HashSize]))
	}
	for i := 0; i < innerHashes; i++ {
		all = append(all, tlog.Hash(inner[i*tlog.HashSize:(i+1)*tlog.HashSize]))
	}
	e.levels[0] = all[:itlog.TileWidth]
	for k := 1; k < itlog.TileHeight; k++ {
		start := itlog.TileWidth + innerStart(k)
		e.levels[k] = all[start : start+itlog.TileWidth>>k]
	}
	// levels[8], the tile's own root, is never read by hashReader (k < 8).
	return e
}
