package ledger

import (
	"errors"
	"time"
)

// ErrDiskFull means the store's filesystem has less free space than
// Options.MinFreeBytes: appends are refused (HTTP 503 with Retry-After) until
// space comes back, so the store never reaches ENOSPC in the middle of a
// commit. Reads go on.
var ErrDiskFull = errors.New("ledger: disk almost full, appends paused")

// DefaultMinFreeBytes is the default of Options.MinFreeBytes.
const DefaultMinFreeBytes = 256 << 20

// diskCheckInterval is how often the free space is sampled.
const diskCheckInterval = time.Second

// A failing fsync is not handled here: pebble treats a failed WAL write or
// sync as fatal (its commit pipeline cannot continue), and so do we: the
// process stops, and on restart Open recovers exactly what was acknowledged
// (after a failed fsync the page cache can no longer be trusted, so retrying
// in-process would be unsafe).

// watchDisk samples free space until the log closes, and sets l.diskFull.
func (l *Log) watchDisk(dir string) {
	free := l.opts.freeSpace
	if free == nil {
		free = statfsFree
	}
	check := func() {
		n, err := free(dir)
		if err != nil {
			return
		}
		full := n < uint64(l.opts.MinFreeBytes)
		if l.diskFull.Swap(full) != full {
			if full {
				l.log.Error("free disk space below the minimum: appends paused", "free_bytes", n, "min_free_bytes", l.opts.MinFreeBytes)
			} else {
				l.log.Info("free disk space recovered: appends resumed", "free_bytes", n)
			}
		}
	}
	check()
	t := time.NewTicker(diskCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			check()
		case <-l.done:
			return
		}
	}
}
