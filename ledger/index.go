package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/ledger/kv"
	itlog "indelible.dev/tlog"
)

// The leaf-hash index ('H' keys; 'h' in format 1) maps a leaf hash to the
// entries that have it. It is derived data: everything in it can be
// recomputed from the bundles. So it is not written by the sequencer in the
// commit batch (inserting tens of thousands of random keys per second into
// the memtable would halve the sequencer's throughput) but by the indexer
// goroutine, right after each commit, in its own batch together with the
// index watermark 'mindexed' (the size up to which the index is complete).
// Open re-indexes from the watermark to the tree size, so a crash between a
// commit and its index batch loses nothing.

var keyIndexed = []byte("mindexed")

// indexJob is the leaf hashes of entries [first, first+len(hashes)).
type indexJob struct {
	first  int64
	hashes []tlog.Hash
}

// maxIndexWait bounds how long a lookup by hash waits for the indexer to
// catch up with the published size.
const maxIndexWait = 10 * time.Second

func (l *Log) readIndexed() (int64, error) {
	v, err := l.get(keyIndexed)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: index watermark of %d bytes", ErrCorrupt, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// reindex indexes entries [from, n) from the stored bundles, durably.
func (l *Log) reindex(from, n int64) error {
	if from >= n {
		return nil
	}
	l.log.Info("re-indexing leaf hashes", "from", from, "to", n)
	for start := from; start < n; {
		end := min(n, (start/itlog.TileWidth+8)*itlog.TileWidth)
		job := indexJob{first: start}
		for bn := start / itlog.TileWidth; bn*itlog.TileWidth < end; bn++ {
			data, err := l.readBundle(l.edge.snapshot(), bn)
			if err != nil {
				return fmt.Errorf("%w: re-indexing bundle %d: %w", ErrCorrupt, bn, err)
			}
			k := bn * itlog.TileWidth
			err = itlog.WalkBundle(data, func(e []byte) bool {
				if k >= start && k < end {
					job.hashes = append(job.hashes, tlog.RecordHash(e))
				}
				k++
				return k < end
			})
			if err != nil {
				return fmt.Errorf("%w: re-indexing bundle %d: %w", ErrCorrupt, bn, err)
			}
		}
		if int64(len(job.hashes)) != end-start {
			return fmt.Errorf("%w: bundles hold %d entries in [%d, %d)", ErrCorrupt, len(job.hashes), start, end)
		}
		b := l.db.NewBatch(0)
		writeIndex(b, []indexJob{job})
		err := b.Commit(true)
		b.Close()
		if err != nil {
			return fmt.Errorf("ledger: re-indexing: %w", err)
		}
		start = end
	}
	l.indexed.Store(n)
	return nil
}

// writeIndex adds the jobs' leaf keys, sorted (sorted keys are cheaper to
// insert into the memtable), and the new watermark to b.
func writeIndex(b kv.Batch, jobs []indexJob) {
	var keys [][]byte
	var end int64
	for _, j := range jobs {
		for i, h := range j.hashes {
			keys = append(keys, appendLeafKey(make([]byte, 0, 1+leafPrefixLen+8), h, j.first+int64(i)))
		}
		end = j.first + int64(len(j.hashes))
	}
	slices.SortFunc(keys, bytes.Compare)
	for _, k := range keys {
		// New keys (the hash and the index), except when Open re-indexes
		// entries the index already had: Insert has Set's result then.
		b.Insert(k, nil)
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(end))
	b.Set(keyIndexed, v[:])
}

// Retry pauses of the indexer after a failed index batch.
const (
	indexRetryMin = 10 * time.Millisecond
	indexRetryMax = 5 * time.Second
)

// indexLoop writes the leaf-hash index for committed entries. Its batches are
// not synced: the index is rebuilt from the watermark on Open.
//
// A failed batch is retried, with the same jobs, until it succeeds: the
// watermark covers a contiguous prefix of the log, so it may never move past
// a job that is not written (a later job's success must not hide an earlier
// one's failure). If the log closes while a batch keeps failing, the loop
// gives up; the watermark stays below the unwritten jobs and Open re-indexes
// them.
func (l *Log) indexLoop() {
	defer close(l.indexDone)
	commit := l.opts.indexCommit
	if commit == nil {
		commit = func(b kv.Batch) error { return b.Commit(false) }
	}
	for job := range l.indexq {
		jobs := []indexJob{job}
	drain:
		for len(jobs) < 64 {
			select {
			case j, ok := <-l.indexq:
				if !ok {
					break drain
				}
				jobs = append(jobs, j)
			default:
				break drain
			}
		}
		if !l.writeIndexJobs(jobs, commit) {
			// Closing with a batch that keeps failing: drain the queue
			// without writing, so the publisher is never blocked.
			for range l.indexq {
			}
			return
		}
		last := jobs[len(jobs)-1]
		l.indexed.Store(last.first + int64(len(last.hashes)))
		l.indexChanged.broadcast()
	}
}

// writeIndexJobs writes jobs in one batch, retrying with backoff until it
// succeeds (true) or the log has closed and a last attempt failed (false).
func (l *Log) writeIndexJobs(jobs []indexJob, commit func(kv.Batch) error) bool {
	pause := indexRetryMin
	for {
		b := l.db.NewBatch(0)
		writeIndex(b, jobs)
		err := commit(b)
		b.Close()
		if err == nil {
			return true
		}
		if l.fatal(err) != nil && kv.Fatal(err) {
			// Fenced off the store: nothing more may be written.
			return false
		}
		// Not fatal for the log: lookups by hash beyond the watermark wait
		// for the retry (and fail after maxIndexWait).
		l.log.Error("writing leaf-hash index; retrying", "first", jobs[0].first, "err", err, "retry_in", pause)
		select {
		case <-l.done:
			// The publisher has exited: one more attempt, then leave the
			// rest to the re-indexing of the next Open.
			b := l.db.NewBatch(0)
			writeIndex(b, jobs)
			err := commit(b)
			b.Close()
			return err == nil
		case <-time.After(pause):
		}
		pause = min(2*pause, indexRetryMax)
	}
}

// waitIndexed waits until the index covers entries below n.
func (l *Log) waitIndexed(n int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), maxIndexWait)
	defer cancel()
	for {
		ch := l.indexChanged.wait()
		if l.indexed.Load() >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("ledger: leaf-hash index is behind (at %d, want %d)", l.indexed.Load(), n)
		case <-l.indexDone:
			return ErrClosed
		}
	}
}

// lookupLeaf returns the first index below n whose entry has leaf hash h.
// A format-1 key holds the whole hash; a key of today's format only its
// first leafPrefixLen bytes (24 bytes less per entry to write, flush and
// compact: issue 21), so each candidate's hash is read from its level-0
// tile and compared.
func (l *Log) lookupLeaf(h tlog.Hash, n int64) (int64, bool, error) {
	// Format-1 keys, in a store written before format 2: they index a
	// prefix of the log (Open indexes what is beyond it with today's keys),
	// so a match among them is the first.
	idx, found := int64(0), false
	err := l.db.Scan(appendLeafKey1(nil, h, 0), appendLeafKey1(nil, h, n), false, func(k, _ []byte) bool {
		idx, found = int64(binary.BigEndian.Uint64(k[len(k)-8:])), true
		return false
	})
	if err != nil || found {
		return idx, found, err
	}
	// Candidates a few at a time (a hash is not read inside a scan: a
	// store may serve one query at a time per connection).
	const chunk = 16
	for from := int64(0); from < n; {
		var cands []int64
		err := l.db.Scan(appendLeafKey(nil, h, from), appendLeafKey(nil, h, n), false, func(k, _ []byte) bool {
			cands = append(cands, int64(binary.BigEndian.Uint64(k[len(k)-8:])))
			return len(cands) < chunk
		})
		if err != nil || len(cands) == 0 {
			return 0, false, err
		}
		at := make([]int64, len(cands))
		for j, i := range cands {
			at[j] = tlog.StoredHashIndex(0, i)
		}
		hs, err := l.hashReader().ReadHashes(at)
		if err != nil {
			return 0, false, err
		}
		for j, i := range cands {
			if hs[j] == h {
				return i, true, nil
			}
		}
		if len(cands) < chunk {
			return 0, false, nil
		}
		from = cands[len(cands)-1] + 1
	}
	return 0, false, nil
}
