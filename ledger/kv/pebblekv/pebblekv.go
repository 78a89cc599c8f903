// Package pebblekv is the pebble backend of the kv seam: the store in a
// directory of the local disk, exactly as the ledger has always kept it (the
// same options and on-disk format: an existing data directory opens as
// before).
package pebblekv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"indelible.dev/ledger/kv"
)

// Format is the on-disk format of the store, pinned: it is the FormatNewest
// of the pebble release in go.mod when it was chosen (FormatValueSeparation,
// pebble v2.1). Opening with FormatNewest would let a dependency bump
// silently ratchet every existing store to a format older releases cannot
// read. Raising it is a deliberate change: see docs/STORAGE-FORMAT.md.
const Format = pebble.FormatValueSeparation

// memTableSize is pebble's memtable size; memTableReserve is what its
// memtables hold of the block cache at most: the mutable one, one being
// flushed (MemTableStopWritesThreshold, 2, stops writes beyond) and one
// kept for reuse.
const (
	memTableSize    = 64 << 20
	memTableReserve = 3 * memTableSize
)

// l0CompactionThreshold is how many sublevels L0 holds before pebble
// compacts it into the level below (pebble's default: 4), and
// l0StopWritesThreshold where writes stop until compactions catch up
// (default 12, kept 16 above the threshold). An L0 compaction rewrites the
// tables of the level below that its tables overlap, which with random keys
// (blind index and idempotency keys) is nearly all of them: merging twice
// as much L0 data per rewrite cut the bytes compacted per event by more
// than half and ingest CPU by about 10% (issue 21, BENCHMARKS.md), with no
// cost visible in the queries (a point lookup skips each table after a
// bloom filter probe).
const (
	l0CompactionThreshold = 8
	l0StopWritesThreshold = 24
)

// Options configure Open.
type Options struct {
	// FS is the filesystem pebble uses. Default: the operating system's.
	FS vfs.FS
	// CacheSize is pebble's block cache in bytes. Default 64 MiB.
	CacheSize int64
	// Logger receives pebble's errors. Default: slog.Default().
	Logger *slog.Logger
	// ReadOnly opens an existing store without writing to it (indelible
	// migrate reads its source so): batches fail.
	ReadOnly bool
}

// Store is a pebble store.
type Store struct {
	db  *pebble.DB
	dir string
	fs  vfs.FS
}

var _ kv.Store = (*Store)(nil)

// Open opens (creating if need be) the pebble store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.CacheSize <= 0 {
		opts.CacheSize = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// Pebble charges every memtable it allocates against the block cache
	// (Cache.Reserve): the mutable one, one being flushed, and one kept for
	// reuse, 64 MiB each. A cache of CacheSize alone was therefore empty
	// once the memtables had grown: every filter, index and data block was
	// read from the file again on every use (issue 21: the id lookups'
	// bloom filters, a query's candidate blocks). The memtables' share is
	// added, so that CacheSize is what blocks really get.
	cache := pebble.NewCache(opts.CacheSize + memTableReserve)
	defer cache.Unref()
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	popts := &pebble.Options{
		FS:                    sstBufferFS{fs},
		Cache:                 cache,
		Logger:                Logger{opts.Logger},
		FormatMajorVersion:    Format,
		MemTableSize:          memTableSize,
		L0CompactionThreshold: l0CompactionThreshold,
		L0StopWritesThreshold: l0StopWritesThreshold,
		Cleaner:               noRecycleCleaner{},
		ReadOnly:              opts.ReadOnly,
	}
	// A bloom filter per table (10 bits a key, about 1% false positives):
	// a point lookup of a key that is absent, which is what an idempotency
	// check almost always is, then skips the table without reading its
	// index and data blocks. Without it, every id looked up read a data
	// block of every level (issue 21). Tables written before it have no
	// filter until compacted, which is harmless.
	popts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	// Level 0 uncompressed: its tables are the memtables' flushes, which
	// compactions soon read and rewrite into the levels below, compressed.
	// Compressing them cost ~0.4 us of snappy per event (at the flush, and
	// decoding in the compaction), mostly on sealed payloads, which it
	// cannot shrink (a block it shrinks by less than 12% is stored as it
	// is). The store is bigger by what snappy would have saved on L0 and on
	// the L0 tables pebble moves down without rewriting (a flushed range no
	// table below overlaps, such as new payloads): +4% at 1M events (issue
	// 21, BENCHMARKS.md "Ingest CPU, session 6"). A block records its
	// compression, so stores written either way open the same.
	popts.Levels[0].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	for i := 1; i < len(popts.Levels); i++ {
		popts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.SnappyCompression }
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", dir, err)
	}
	return &Store{db: db, dir: dir, fs: fs}, nil
}

// DB returns the pebble database, for what only pebble has (tests, metrics).
func (s *Store) DB() *pebble.DB { return s.db }

// Get implements kv.Store.
func (s *Store) Get(key []byte) ([]byte, io.Closer, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil, kv.ErrNotFound
	}
	return v, closer, err
}

// GetSorted implements kv.Store: one iterator serves the whole batch, so
// each key costs a forward seek instead of a full lookup, and each seek is a
// prefix seek, so every table's bloom filter answers for the keys it does
// not hold.
func (s *Store) GetSorted(keys [][]byte, f func(i int, value []byte)) error {
	if len(keys) == 0 {
		return nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: keys[0]})
	if err != nil {
		return err
	}
	defer it.Close()
	for i, key := range keys {
		if i > 0 && bytes.Compare(keys[i-1], key) >= 0 {
			return fmt.Errorf("kv: GetSorted: key %d is not above key %d", i, i-1)
		}
		if it.SeekPrefixGE(key) && bytes.Equal(it.Key(), key) {
			v, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			f(i, v)
		}
	}
	return it.Error()
}

// GetNear implements kv.Store: each read is a plain forward seek, which
// steps on from where the previous one stopped.
func (s *Store) GetNear(keys [][]byte, f func(i int, value []byte)) error {
	if len(keys) == 0 {
		return nil
	}
	for i := 1; i < len(keys); i++ {
		if bytes.Compare(keys[i-1], keys[i]) >= 0 {
			return fmt.Errorf("kv: GetNear: key %d is not above key %d", i, i-1)
		}
	}
	// The bounds: the first key, and just past the last.
	upper := append(bytes.Clone(keys[len(keys)-1]), 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: keys[0], UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	for i, key := range keys {
		if it.SeekGE(key) && bytes.Equal(it.Key(), key) {
			v, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			f(i, v)
		}
	}
	return it.Error()
}

// Scan implements kv.Store.
func (s *Store) Scan(lo, hi []byte, reverse bool, f func(key, value []byte) bool) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	var ok bool
	if reverse {
		ok = it.Last()
	} else {
		ok = it.First()
	}
	for ok {
		if !f(it.Key(), it.Value()) {
			break
		}
		if reverse {
			ok = it.Prev()
		} else {
			ok = it.Next()
		}
	}
	return it.Error()
}

// NewBatch implements kv.Store.
func (s *Store) NewBatch(sizeHint int) kv.Batch {
	if sizeHint > 0 {
		return &Batch{s: s, b: s.db.NewBatchWithSize(sizeHint)}
	}
	return &Batch{s: s, b: s.db.NewBatch()}
}

// Close implements kv.Store.
func (s *Store) Close() error { return s.db.Close() }

// Batch is a pebble batch.
type Batch struct {
	s *Store
	b *pebble.Batch
}

// Pebble returns the pebble batch (for tests).
func (b *Batch) Pebble() *pebble.Batch { return b.b }

func (b *Batch) Set(key, value []byte) error { return b.b.Set(key, value, nil) }

// SetPrefixed writes prefix+key in the batch's own bytes: no allocation.
func (b *Batch) SetPrefixed(prefix byte, key, value []byte) error {
	op := b.b.SetDeferred(1+len(key), len(value))
	op.Key[0] = prefix
	copy(op.Key[1:], key)
	copy(op.Value, value)
	return op.Finish()
}

// Insert is Set: pebble writes a key the same way whether it is new or not.
func (b *Batch) Insert(key, value []byte) error { return b.Set(key, value) }

// InsertPrefixed is SetPrefixed.
func (b *Batch) InsertPrefixed(prefix byte, key, value []byte) error {
	return b.SetPrefixed(prefix, key, value)
}

func (b *Batch) Delete(key []byte) error         { return b.b.Delete(key, nil) }
func (b *Batch) DeleteRange(lo, hi []byte) error { return b.b.DeleteRange(lo, hi, nil) }

// Advance is a no-op: one process holds a pebble store (its directory
// lock), so nothing else can move the log's head.
func (b *Batch) Advance(from, to kv.Head) {}

func (b *Batch) Commit(sync bool) error {
	if sync {
		return b.b.Commit(pebble.Sync)
	}
	return b.b.Commit(pebble.NoSync)
}

// Apply applies the batch with ApplyNoSyncWait: visible to readers at once,
// durable after Wait.
func (b *Batch) Apply() error { return b.s.db.ApplyNoSyncWait(b.b, pebble.Sync) }

func (b *Batch) Wait() error { return b.b.SyncWait() }

func (b *Batch) Close() { b.b.Close() }

// ErrPurgeTimeout means Purge compacted the ranges but pebble had not
// deleted every obsolete file before the deadline (an open iterator can
// hold one): the old bytes are gone once the file is released.
var ErrPurgeTimeout = errors.New("obsolete files still present")

// purgeWait bounds how long Purge waits for pebble to delete the files it
// made obsolete.
const purgeWait = 30 * time.Second

// Purge makes deleted keys in the given ranges gone from the store's files,
// not just hidden: it flushes the memtables (so every WAL file written so
// far becomes obsolete), compacts each range down to the last level (which
// drops deleted values and their tombstones), and waits until pebble has
// deleted every obsolete WAL and table file. WAL files are never recycled
// (noRecycleCleaner). Value separation is off, so no blob file holds
// values. It returns an error wrapping ErrPurgeTimeout if files were still
// pending after purgeWait (or ctx's deadline, if earlier).
func (s *Store) Purge(ctx context.Context, ranges [][2][]byte) error {
	wals, err := walFiles(s.fs, s.dir)
	if err != nil {
		return err
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("flushing for a purge: %w", err)
	}
	for _, r := range ranges {
		hi := r[1]
		if hi == nil {
			hi = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		}
		if err := s.db.Compact(ctx, r[0], hi, false); err != nil {
			return fmt.Errorf("compacting for a purge: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, purgeWait)
	defer cancel()
	for {
		m := s.db.Metrics()
		left := 0
		if m.Table.ObsoleteCount == 0 && m.Table.ZombieCount == 0 && m.WAL.ObsoleteFiles == 0 {
			now, err := walFiles(s.fs, s.dir)
			if err != nil {
				return err
			}
			for name := range now {
				if wals[name] {
					left++
				}
			}
			if left == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %d tables, %d zombie tables, %d WAL files", ErrPurgeTimeout,
				m.Table.ObsoleteCount, m.Table.ZombieCount, m.WAL.ObsoleteFiles+int64(left))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// walFiles returns the names of the WAL files in dir.
func walFiles(fs vfs.FS, dir string) (map[string]bool, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	out := map[string]bool{}
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			out[n] = true
		}
	}
	return out, nil
}

// noRecycleCleaner deletes obsolete files, as pebble's default cleaner does,
// and turns off WAL recycling. A recycled WAL file is renamed and written
// over from its start, so whatever it held past the new records (deleted
// data included) would stay on disk for as long as the file is reused.
// Pebble recycles WAL files unless its cleaner needs the files' contents,
// which it tells by a marker method of ArchiveCleaner: the embedded
// archiveMark supplies that marker one level down, and DeleteCleaner's Clean
// and String, one level up, win over ArchiveCleaner's (Go promotes the
// shallowest method), so files are deleted, never archived.
// The ledger's TestWALNotRecycled checks both.
type noRecycleCleaner struct {
	pebble.DeleteCleaner
	archiveMark
}

type archiveMark struct{ pebble.ArchiveCleaner }

// Logger routes pebble's messages to slog, dropping its chatty info.
type Logger struct{ L *slog.Logger }

func (p Logger) Infof(format string, args ...any) {}
func (p Logger) Errorf(format string, args ...any) {
	p.L.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (p Logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.L.Error("pebble fatal: " + msg)
	panic("pebble: " + msg)
}

// Cleaner returns the cleaner the store uses (for the ledger's tests).
func Cleaner() pebble.Cleaner { return noRecycleCleaner{} }

// WALFiles returns the names of the WAL files in dir (for the ledger's tests).
func WALFiles(fs vfs.FS, dir string) (map[string]bool, error) { return walFiles(fs, dir) }
