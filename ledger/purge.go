package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// noRecycleCleaner deletes obsolete files, as pebble's default cleaner does,
// and turns off WAL recycling. A recycled WAL file is renamed and written
// over from its start, so whatever it held past the new records (deleted
// data included) would stay on disk for as long as the file is reused.
// Pebble recycles WAL files unless its cleaner needs the files' contents,
// which it tells by a marker method of ArchiveCleaner: the embedded
// archiveMark supplies that marker one level down, and DeleteCleaner's Clean
// and String, one level up, win over ArchiveCleaner's (Go promotes the
// shallowest method), so files are deleted, never archived.
// TestWALNotRecycled checks both.
type noRecycleCleaner struct {
	pebble.DeleteCleaner
	archiveMark
}

type archiveMark struct{ pebble.ArchiveCleaner }

// WriteExt commits, with fsync, a batch of writes to the extension namespace
// made by f, outside any log entry (for cleanups of the layer above).
func (l *Log) WriteExt(f func(w Writer) error) error {
	b := l.db.NewBatch()
	defer b.Close()
	if err := f(batchWriter{b}); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("ledger: committing extension writes: %w", err)
	}
	return nil
}

// ErrPurgeTimeout means PurgeExt compacted the ranges but pebble had not
// deleted every obsolete file before the deadline (an open iterator can
// hold one): the old bytes are gone once the file is released.
var ErrPurgeTimeout = errors.New("ledger: obsolete files still present")

// purgeWait bounds how long PurgeExt waits for pebble to delete the files
// it made obsolete.
const purgeWait = 30 * time.Second

// PurgeExt makes deleted extension keys in the given [lo, hi) ranges gone
// from the store's files, not just hidden: it flushes the memtables (so
// every WAL file written so far becomes obsolete), compacts each range down
// to the last level (which drops deleted values and their tombstones), and
// waits until pebble has deleted every obsolete WAL and table file. WAL
// files are never recycled (noRecycleCleaner). Value separation is off, so
// no blob file holds values. It returns ErrPurgeTimeout if files were still
// pending after purgeWait (or ctx's deadline, if earlier).
func (l *Log) PurgeExt(ctx context.Context, ranges [][2][]byte) error {
	l.closeMu.Lock()
	closed := l.closed
	l.closeMu.Unlock()
	if closed {
		return ErrClosed
	}
	fs := l.opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	wals, err := walFiles(fs, l.dir)
	if err != nil {
		return err
	}
	if err := l.db.Flush(); err != nil {
		return fmt.Errorf("ledger: flushing for a purge: %w", err)
	}
	for _, r := range ranges {
		hi := extKey(r[1])
		if r[1] == nil {
			hi = []byte{prefixExt + 1}
		}
		if err := l.db.Compact(ctx, extKey(r[0]), hi, false); err != nil {
			return fmt.Errorf("ledger: compacting for a purge: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, purgeWait)
	defer cancel()
	for {
		m := l.db.Metrics()
		left := 0
		if m.Table.ObsoleteCount == 0 && m.Table.ZombieCount == 0 && m.WAL.ObsoleteFiles == 0 {
			now, err := walFiles(fs, l.dir)
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
		return nil, fmt.Errorf("ledger: listing %s: %w", dir, err)
	}
	out := map[string]bool{}
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			out[n] = true
		}
	}
	return out, nil
}
