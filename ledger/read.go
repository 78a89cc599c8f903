package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
	"indelible.dev/ledger/kv"

	itlog "indelible.dev/tlog"
)

// Reads never go beyond the published checkpoint: the store may already hold
// a batch whose fsync is in flight, and nothing about it may be served until
// it is durable and signed.

// ReadTile returns the bytes of hash tile t (0 <= t.L <= 63) or of entry
// bundle t (t.L == tlog.EntriesLevel), full or partial, as served at
// c2sp.org/tlog-tiles paths. It returns ErrNotFound if the published tree
// does not imply the tile. t.H must be tlog.TileHeight.
func (l *Log) ReadTile(t tlog.Tile) ([]byte, error) {
	var out []byte
	err := l.ReadTileFunc(t, func(data []byte) error {
		out = bytes.Clone(data)
		return nil
	})
	return out, err
}

// ReadTileFunc is ReadTile without a copy: it calls f with the tile's bytes,
// which are valid only during the call and must not be modified, and
// returns f's error. Serving bundles during a full audit copied every entry
// of the log once more for nothing (BENCHMARKS.md, issue 13).
func (l *Log) ReadTileFunc(t tlog.Tile, f func(data []byte) error) error {
	pub := l.pub.Load()
	if t.H != itlog.TileHeight || !itlog.TileExists(t, pub.cp.N) {
		return ErrNotFound
	}
	if t.L == itlog.EntriesLevel {
		data, done, err := l.borrow(pub.edge.partialBundle, bundleKey, t.N)
		if err != nil {
			return err
		}
		defer done()
		p, err := itlog.BundlePrefix(data, t.W)
		if err != nil {
			return fmt.Errorf("%w: bundle %d: %w", ErrCorrupt, t.N, err)
		}
		return f(p)
	}
	partial := func(n int64) ([]byte, bool) { return pub.edge.partialTile(t.L, n) }
	data, done, err := l.borrow(partial, func(n int64) []byte { return tileKey(t.L, n) }, t.N)
	if err != nil {
		return err
	}
	defer done()
	if len(data) < t.W*tlog.HashSize {
		return fmt.Errorf("%w: tile %d/%d is %d bytes, want at least %d", ErrCorrupt, t.L, t.N, len(data), t.W*tlog.HashSize)
	}
	return f(data[:t.W*tlog.HashSize])
}

// borrow returns record n: from the published right edge if partial has it,
// else from the store without a copy, valid until done is called.
func (l *Log) borrow(partial func(n int64) ([]byte, bool), key func(n int64) []byte, n int64) (data []byte, done func(), err error) {
	if data, ok := partial(n); ok {
		return data, func() {}, nil
	}
	k := key(n)
	v, closer, err := l.db.Get(k)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: reading %q: %w", k, err)
	}
	return v, func() { closer.Close() }, nil
}

// Entry returns the bytes of entry i, which must be below the published size.
func (l *Log) Entry(i int64) ([]byte, error) {
	pub := l.pub.Load()
	if i < 0 || i >= pub.cp.N {
		return nil, ErrNotFound
	}
	n := i / itlog.TileWidth
	data, done, err := l.borrow(pub.edge.partialBundle, bundleKey, n)
	if err != nil {
		return nil, err
	}
	defer done()
	var out []byte
	if err := walkEntries(n, data, []int64{i}, func(_ int, e []byte) error {
		out = bytes.Clone(e)
		return nil
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// EntriesFunc calls f(j, entry) for each indexes[j], which must be
// published and in increasing order (repeats allowed), in that order, with
// entry valid only during the call; f's error stops the walk and is
// returned. An index not published, or out of order, is an error before
// any call (ErrNotFound for the former); a full bundle missing from the
// store (a damaged store) is ErrNotFound naming it, after the calls for
// the bundles before it.
//
// The entry bundles are read in one pass over the store in key order (one
// iterator, as GetExtSorted reads payloads), each once, without a copy,
// and each only as far as its last entry wanted: a listing's candidates
// are each in a different 8 KiB bundle, and reading those one point
// lookup and one copy apiece was a third of a listing's CPU
// (BENCHMARKS.md, issue 21).
func (l *Log) EntriesFunc(indexes []int64, f func(j int, entry []byte) error) error {
	if len(indexes) == 0 {
		return nil
	}
	pub := l.pub.Load()
	for j, i := range indexes {
		if i < 0 || i >= pub.cp.N {
			return fmt.Errorf("%w: index %d", ErrNotFound, i)
		}
		if j > 0 && i < indexes[j-1] {
			return fmt.Errorf("ledger: EntriesFunc: index %d (%d) is below the one before it (%d)", j, i, indexes[j-1])
		}
	}
	// runs[r] is the bundle number of indexes[starts[r]:starts[r+1]].
	var runs []int64
	var starts []int
	for j, i := range indexes {
		if b := i / itlog.TileWidth; len(runs) == 0 || runs[len(runs)-1] != b {
			runs = append(runs, b)
			starts = append(starts, j)
		}
	}
	starts = append(starts, len(indexes))
	walkRun := func(r int, data []byte) error {
		lo, hi := starts[r], starts[r+1]
		return walkEntries(runs[r], data, indexes[lo:hi], func(k int, e []byte) error { return f(lo+k, e) })
	}
	// Only the last run can be the published partial bundle; the others
	// are full bundles in the store.
	full := len(runs)
	partial, isPartial := pub.edge.partialBundle(runs[len(runs)-1])
	if isPartial {
		full--
	}
	if full > 0 {
		keys := make([][]byte, full)
		buf := make([]byte, 0, full*9) // prefix and n(8)
		for r := range full {
			at := len(buf)
			buf = append(buf, bundleKey(runs[r])...)
			keys[r] = buf[at:len(buf):len(buf)]
		}
		next := 0 // the run expected next
		var ferr error
		read := l.db.GetSorted
		if runs[full-1]-runs[0] < int64(2*full) {
			// Mostly consecutive bundles (a stream, an export): plain
			// forward seeks step on from the previous one.
			read = l.db.GetNear
		}
		err := read(keys, func(r int, v []byte) {
			if ferr != nil {
				return
			}
			if r != next {
				ferr = fmt.Errorf("%w: bundle %d", ErrNotFound, runs[next])
				return
			}
			next++
			ferr = walkRun(r, v)
		})
		if err != nil {
			return fmt.Errorf("ledger: reading entry bundles %d to %d: %w", runs[0], runs[full-1], err)
		}
		if ferr != nil {
			return ferr
		}
		if next != full {
			return fmt.Errorf("%w: bundle %d", ErrNotFound, runs[next])
		}
	}
	if isPartial {
		return walkRun(len(runs)-1, partial)
	}
	return nil
}

// walkEntries calls f(k, entry) for each want[k] (increasing log indexes
// in bundle n, repeats allowed), walking bundle data only as far as the
// last one; f's error stops the walk and is returned. Entries before a
// wanted one are skipped by their length prefixes alone (a scattered read
// wants one entry of a bundle, on average past half of it).
func walkEntries(n int64, data []byte, want []int64, f func(k int, entry []byte) error) error {
	at, off := n*itlog.TileWidth, 0
	for k := 0; k < len(want); {
		if len(data)-off < 2 {
			return fmt.Errorf("%w: bundle %d: entry %d missing", ErrCorrupt, n, want[k])
		}
		m := int(data[off])<<8 | int(data[off+1])
		if len(data)-off-2 < m {
			return fmt.Errorf("%w: bundle %d: %w: entry of %d bytes truncated to %d", ErrCorrupt, n, itlog.ErrMalformedBundle, m, len(data)-off-2)
		}
		for k < len(want) && want[k] == at {
			if err := f(k, data[off+2:off+2+m]); err != nil {
				return err
			}
			k++
		}
		off += 2 + m
		at++
	}
	return nil
}

// readBundle returns bundle n: the partial one from the published right
// edge, a full one from the store. The result must not be modified.
func (l *Log) readBundle(snap *edgeSnapshot, n int64) ([]byte, error) {
	if data, ok := snap.partialBundle(n); ok {
		return data, nil
	}
	return l.get(bundleKey(n))
}

// readTile returns hash tile (lvl, n): the partial one from the published
// right edge, a full one from the store. The result must not be modified.
func (l *Log) readTile(snap *edgeSnapshot, lvl int, n int64) ([]byte, error) {
	if data, ok := snap.partialTile(lvl, n); ok {
		return data, nil
	}
	return l.get(tileKey(lvl, n))
}

// readTilePre is readTile reading a stored tile from pre first (see
// hashReaderAt).
func (l *Log) readTilePre(snap *edgeSnapshot, pre map[string][]byte, lvl int, n int64) ([]byte, error) {
	if pre != nil {
		if _, ok := snap.partialTile(lvl, n); !ok {
			if v, ok := pre[string(tileKey(lvl, n))]; ok {
				if v == nil {
					return nil, ErrNotFound
				}
				return v, nil
			}
		}
	}
	return l.readTile(snap, lvl, n)
}

// checkSize checks that n is a size the log has published.
func (l *Log) checkSize(n int64) error {
	pub := l.pub.Load().cp.N
	if n < 0 || n > pub {
		return fmt.Errorf("%w: tree size %d is beyond the published size %d", ErrRange, n, pub)
	}
	return nil
}

// InclusionProof returns the proof that entry i is in the tree of size n,
// which must be at most the published size.
func (l *Log) InclusionProof(i, n int64) (tlog.RecordProof, error) {
	if err := l.checkSize(n); err != nil {
		return nil, err
	}
	return itlog.ProveInclusion(i, n, l.hashReader())
}

// InclusionProofs returns InclusionProof(i, n) for each of indexes, in
// that order (repeats allowed). The stored tiles the proofs need and the
// expanded-tile cache does not hold are read in one sorted multi-get (with
// their inner records), each once: the proofs of neighbouring entries share
// most of their tiles, and on PostgreSQL each point read is a round trip
// (a POST with wait=checkpoint proving each of its events one by one was
// capped by them; BENCHMARKS.md, issue 20).
func (l *Log) InclusionProofs(indexes []int64, n int64) ([]tlog.RecordProof, error) {
	if err := l.checkSize(n); err != nil {
		return nil, err
	}
	out := make([]tlog.RecordProof, len(indexes))
	if len(indexes) == 0 {
		return out, nil
	}
	snap := l.pub.Load().edge
	// First pass: which stored hashes the proofs read (the proof code asks
	// for them in one call each; the hashes it is given are not checked).
	type need struct {
		key  tileKeyLN
		minW int
	}
	var needs []need
	at := map[tileKeyLN]int{}
	record := tlog.HashReaderFunc(func(xs []int64) ([]tlog.Hash, error) {
		for _, x := range xs {
			level, m := tlog.SplitStoredHashIndex(x)
			L, k := level/itlog.TileHeight, level%itlog.TileHeight
			span := uint(itlog.TileHeight - k)
			key := tileKeyLN{L, m >> span}
			minW := (int(m-key.n<<span) + 1) << k
			if j, ok := at[key]; ok {
				needs[j].minW = max(needs[j].minW, minW)
				continue
			}
			at[key] = len(needs)
			needs = append(needs, need{key, minW})
		}
		return make([]tlog.Hash, len(xs)), nil
	})
	for _, i := range indexes {
		if _, err := itlog.ProveInclusion(i, n, record); err != nil {
			return nil, fmt.Errorf("ledger: proving entry %d in tree size %d: %w", i, n, err)
		}
	}
	// The stored tiles among them that the cache does not hold: the tile
	// and its inner record (which expanding it, or reading one hash of it
	// when the cache is full, uses).
	var keys [][]byte
	for _, nd := range needs {
		if _, partial := snap.partialTile(nd.key.l, nd.key.n); partial {
			continue
		}
		if l.tiles.get(nd.key, nd.minW) != nil {
			continue
		}
		keys = append(keys, tileKey(nd.key.l, nd.key.n), innerKey(nd.key.l, nd.key.n))
	}
	var pre map[string][]byte
	if len(keys) > 0 {
		slices.SortFunc(keys, bytes.Compare)
		pre = make(map[string][]byte, len(keys))
		for _, k := range keys {
			pre[string(k)] = nil // not stored, unless read below
		}
		if err := l.db.GetSorted(keys, func(j int, v []byte) { pre[string(keys[j])] = bytes.Clone(v) }); err != nil {
			return nil, fmt.Errorf("ledger: reading the tiles of %d proofs: %w", len(indexes), err)
		}
	}
	r := l.hashReaderAt(snap, pre)
	for j, i := range indexes {
		p, err := itlog.ProveInclusion(i, n, r)
		if err != nil {
			return nil, err
		}
		out[j] = p
	}
	return out, nil
}

// InclusionProofByHash finds the first entry with leaf hash h below size n
// and returns its index and inclusion proof. It returns ErrNotFound if no
// entry below n has that leaf hash.
func (l *Log) InclusionProofByHash(h tlog.Hash, n int64) (int64, tlog.RecordProof, error) {
	if err := l.checkSize(n); err != nil {
		return 0, nil, err
	}
	if err := l.waitIndexed(n); err != nil {
		return 0, nil, err
	}
	i, ok, err := l.lookupLeaf(h, n)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, ErrNotFound
	}
	p, err := itlog.ProveInclusion(i, n, l.hashReader())
	return i, p, err
}

// ConsistencyProof returns the proof that the tree of size m is a prefix of
// the tree of size n, with m <= n <= the published size.
func (l *Log) ConsistencyProof(m, n int64) (tlog.TreeProof, error) {
	if err := l.checkSize(n); err != nil {
		return nil, err
	}
	return itlog.ProveConsistency(m, n, l.hashReader())
}

// TreeHash returns the root hash of the tree of size n <= the published size.
func (l *Log) TreeHash(n int64) (tlog.Hash, error) {
	if err := l.checkSize(n); err != nil {
		return tlog.Hash{}, err
	}
	if n == 0 {
		return itlog.EmptyRoot, nil
	}
	return tlog.TreeHash(n, l.hashReader())
}

// GetExt returns a copy of the value the layer above stored at key with a
// sidecar (AppendBatch, WriteExt), or ErrNotFound. Values written by a batch whose fsync is still in
// flight may be visible; callers bound their reads by the published size.
func (l *Log) GetExt(key []byte) ([]byte, error) {
	return l.get(extKey(key))
}

// ScanExt calls f for each extension key in [lo, hi) in key order (or in
// reverse order if reverse is set), with borrowed key and value slices valid
// only during the call, until f returns false.
func (l *Log) ScanExt(lo, hi []byte, reverse bool, f func(key, value []byte) bool) error {
	upper := extKey(hi)
	if hi == nil {
		upper = []byte{prefixExt + 1}
	}
	return l.db.Scan(extKey(lo), upper, reverse, func(k, v []byte) bool { return f(k[1:], v) })
}
