package ledger

import (
	"context"
	"fmt"

	"indelible.dev/ledger/kv/pebblekv"
)

// WriteExt commits, with fsync, a batch of writes to the extension namespace
// made by f, outside any log entry (for cleanups of the layer above).
func (l *Log) WriteExt(f func(w Writer) error) error {
	b := l.db.NewBatch(0)
	defer b.Close()
	if err := f(batchWriter{b}); err != nil {
		return err
	}
	if err := l.fatal(b.Commit(true)); err != nil {
		return fmt.Errorf("ledger: committing extension writes: %w", err)
	}
	return nil
}

// ErrPurgeTimeout means PurgeExt compacted the ranges but pebble had not
// deleted every obsolete file before the deadline (an open iterator can
// hold one): the old bytes are gone once the file is released.
var ErrPurgeTimeout = pebblekv.ErrPurgeTimeout

// PurgeExt makes deleted extension keys in the given [lo, hi) ranges gone
// from the store's files, not just hidden (hi nil: to the end of the
// namespace). On pebble it flushes the memtables (so every WAL file written
// so far becomes obsolete), compacts each range down to the last level
// (which drops deleted values and their tombstones), and waits until pebble
// has deleted every obsolete WAL and table file (WAL files are never
// recycled; value separation is off, so no blob file holds values); it
// returns an error wrapping ErrPurgeTimeout if files were still pending
// after 30 s (or ctx's deadline, if earlier). On PostgreSQL it vacuums the
// table (docs/ha.md says what WAL and backups keep).
func (l *Log) PurgeExt(ctx context.Context, ranges [][2][]byte) error {
	l.closeMu.Lock()
	closed := l.closed
	l.closeMu.Unlock()
	if closed {
		return ErrClosed
	}
	rs := make([][2][]byte, len(ranges))
	for i, r := range ranges {
		rs[i][0] = extKey(r[0])
		rs[i][1] = []byte{prefixExt + 1}
		if r[1] != nil {
			rs[i][1] = extKey(r[1])
		}
	}
	if err := l.db.Purge(ctx, rs); err != nil {
		return fmt.Errorf("ledger: purging: %w", err)
	}
	return nil
}
