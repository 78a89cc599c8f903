package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/tlog"
	"indelible.dev/ledger/kv"
)

// The checkpoint archive: every checkpoint the log served, as served (the
// log's signature and, with witnessing, the cosignatures that met the
// quorum), kept by size so that an evidence bundle (docs/evidence.md) can be
// built later against exactly the checkpoint a client saw, byte for byte.
//
//	'c' N(8)   the signed note served for tree size N
//
// An entry is created once and never replaced: when witnessing serves the
// same size again with more cosignatures, the first note stays, so two
// bundles built against size N are identical. Archive writes are not synced
// on their own: the next commit's Sync makes them durable (pebble's WAL is
// sequential), and a crash can lose only the notes of the last sizes, which
// a bundle then cannot name (ErrNotFound). Each entry is a few hundred bytes:
// a log serving 100 checkpoints per second archives about 2.5 MB a minute of
// them at most; a quiet log, one per commit.
const prefixArchive = 'c'

func archiveKey(n int64) []byte { return seqKey(prefixArchive, n) }

// archiveMu makes the check-then-set of archive atomic across the two
// goroutines that may serve a checkpoint (the publisher, the witnessing
// loop).
var archiveMu sync.Mutex

// archive keeps p's note as the one served for its size, unless a note is
// already kept for that size. Failures are logged, never fatal: the archive
// serves evidence bundles, not the log.
func (l *Log) archive(p *published) {
	archiveMu.Lock()
	defer archiveMu.Unlock()
	k := archiveKey(p.cp.N)
	if _, closer, err := l.db.Get(k); err == nil {
		closer.Close()
		return
	} else if !errors.Is(err, kv.ErrNotFound) {
		l.log.Warn("ledger: reading the checkpoint archive", "size", p.cp.N, "err", err)
		return
	}
	if err := l.set(k, p.signed, false); err != nil {
		l.log.Warn("ledger: archiving a served checkpoint", "size", p.cp.N, "err", err)
	}
}

// ArchivedCheckpoint returns the signed note the log served for tree size n
// (the first one, with the cosignatures it carried then), or ErrNotFound if
// none is kept: a size never served, or served before this store kept an
// archive.
func (l *Log) ArchivedCheckpoint(n int64) ([]byte, error) {
	if n < 0 {
		return nil, ErrNotFound
	}
	return l.get(archiveKey(n))
}

// ServedCheckpoint returns the newest served checkpoint's note as archived,
// so that it is byte-identical to what ArchivedCheckpoint returns for its
// size later, and its size. With witnessing and no checkpoint witnessed yet,
// it returns ErrNotWitnessed.
func (l *Log) ServedCheckpoint() (int64, []byte, error) {
	cp, signed := l.Checkpoint()
	if signed == nil {
		return 0, nil, ErrNotWitnessed
	}
	if a, err := l.ArchivedCheckpoint(cp.N); err == nil {
		return cp.N, a, nil
	}
	return cp.N, bytes.Clone(signed), nil
}

// RangeHashes returns the hashes of the compact range [lo, hi) in the tree
// of size n (transparency-dev/merkle's compact ranges: the roots of the
// perfect subtrees that cover [lo, hi), left to right), read from the tiles
// in one planned read. 0 <= lo <= hi <= n <= the published size.
func (l *Log) RangeHashes(lo, hi, n int64) ([][]byte, error) {
	if err := l.checkSize(n); err != nil {
		return nil, err
	}
	if lo < 0 || lo > hi || hi > n {
		return nil, fmt.Errorf("%w: range [%d, %d) in tree size %d", ErrRange, lo, hi, n)
	}
	ids := compact.RangeNodes(uint64(lo), uint64(hi), nil)
	if len(ids) == 0 {
		return [][]byte{}, nil
	}
	idx := make([]int64, len(ids))
	for k, id := range ids {
		idx[k] = tlog.StoredHashIndex(int(id.Level), int64(id.Index))
	}
	hs, err := l.hashReader().ReadHashes(idx)
	if err != nil {
		return nil, fmt.Errorf("ledger: reading the compact range [%d, %d): %w", lo, hi, err)
	}
	if len(hs) != len(idx) {
		return nil, fmt.Errorf("%w: read %d hashes of the compact range, want %d", ErrCorrupt, len(hs), len(idx))
	}
	out := make([][]byte, len(hs))
	for k := range hs {
		out[k] = bytes.Clone(hs[k][:])
	}
	return out, nil
}

// GetExtSorted calls f(k, value) for each keys[k] that the layer above
// stored (see GetExt), in key order, with a value valid only during the
// call; absent keys are skipped. The keys must be sorted and distinct (an
// error otherwise). One iterator serves the whole batch, so a bundle's
// per-event point reads cost a forward seek each instead of a full lookup;
// each seek is a prefix seek, so every table's bloom filter answers for the
// keys it does not hold (the idempotency check looks up ids that are
// almost never stored).
func (l *Log) GetExtSorted(keys [][]byte, f func(k int, value []byte)) error {
	if len(keys) == 0 {
		return nil
	}
	n := 0
	for k, key := range keys {
		if k > 0 && bytes.Compare(keys[k-1], key) >= 0 {
			return fmt.Errorf("ledger: GetExtSorted: key %d is not above key %d", k, k-1)
		}
		n += 1 + len(key)
	}
	// The store's keys, in one allocation.
	buf := make([]byte, 0, n)
	eks := make([][]byte, len(keys))
	for k, key := range keys {
		at := len(buf)
		buf = append(append(buf, prefixExt), key...)
		eks[k] = buf[at:len(buf):len(buf)]
	}
	return l.db.GetSorted(eks, f)
}

// GetExtNear is GetExtSorted for keys that are mostly stored and close
// together in key order (a bundle's event keys, in index order): each read
// is a plain forward seek, which steps on from where the previous one
// stopped, where GetExtSorted's prefix seeks consult every table's bloom
// filter for every key (on a large store, most of a bundle's reading).
// The same contract as GetExtSorted.
func (l *Log) GetExtNear(keys [][]byte, f func(k int, value []byte)) error {
	if len(keys) == 0 {
		return nil
	}
	for k := 1; k < len(keys); k++ {
		if bytes.Compare(keys[k-1], keys[k]) >= 0 {
			return fmt.Errorf("ledger: GetExtNear: key %d is not above key %d", k, k-1)
		}
	}
	if l.pdb == nil {
		// Another store (PostgreSQL): its sorted read is the same answer.
		return l.GetExtSorted(keys, f)
	}
	// The bounds: the first key, and just past the last.
	upper := append(extKey(keys[len(keys)-1]), 0)
	it, err := l.pdb.NewIter(&pebble.IterOptions{LowerBound: extKey(keys[0]), UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	var ek []byte
	for k, key := range keys {
		ek = append(append(ek[:0], prefixExt), key...)
		if it.SeekGE(ek) && bytes.Equal(it.Key(), ek) {
			v, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			f(k, v)
		}
	}
	return it.Error()
}
