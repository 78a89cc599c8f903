package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/ledger/kv"
	itlog "indelible.dev/tlog"
)

// Entry is one log entry to append.
type Entry struct {
	// Data is the entry's bytes (the leaf data), at most tlog.MaxEntrySize.
	Data []byte
}

// Writer adds key/value pairs to the batch being committed, inside the
// extension namespace (keys are private to the layer above and read back with
// Log.GetExt and Log.ScanExt).
type Writer interface {
	Set(key, value []byte) error
	// Insert is Set for a key the caller knows is not stored (an event's
	// keys, which hold its index): the same result either way, cheaper on
	// a PostgreSQL store when the key is new (kv.Batch.Insert).
	Insert(key, value []byte) error
	// Delete removes key; DeleteRange removes every key in [lo, hi).
	Delete(key []byte) error
	DeleteRange(lo, hi []byte) error
}

type request struct {
	entries []Entry
	sidecar func(indexes []int64, w Writer) error // AppendBatch's, or nil
	hint    int                                   // bytes sidecar writes, about
	bytes   int                                   // sum of the entries' lengths
	indexes []int64
	err     error
	done    chan struct{}
}

// commit is a batch applied to the store whose fsync may still be in flight.
type commit struct {
	batch   kv.Batch
	reqs    []*request
	tree    tlog.Tree
	entries int
	leaves  indexJob // for the indexer, unless the batch indexed them itself
	snap    *edgeSnapshot
	start   time.Time
	err     error
}

// Append appends one entry and returns its index once the entry is durably
// committed (its checkpoint may be published a moment later: see WaitSize).
// It returns ErrPushback if the queue is full. If ctx is done first, Append
// returns ctx.Err() but the entry may still be appended.
func (l *Log) Append(ctx context.Context, data []byte) (int64, error) {
	idx, err := l.AppendEntries(ctx, []Entry{{Data: data}})
	if err != nil {
		return 0, err
	}
	return idx[0], nil
}

// AppendEntries appends entries in order, atomically with respect to
// durability (all in one batch), and returns their (consecutive) indexes
// once durable.
func (l *Log) AppendEntries(ctx context.Context, entries []Entry) ([]int64, error) {
	return l.appendEntries(ctx, entries, nil, 0)
}

// AppendBatch is AppendEntries with a sidecar: the sequencer calls it once
// every entry of the call has its index (indexes[j] is entries[j]'s), to
// add the layer above's own writes (encrypted payloads, secondary indexes)
// to the very same pebble batch: the entries and the sidecar's writes
// become durable together or not at all. It must be fast and must not call
// back into the Log. Validate everything before appending: a sidecar error
// is treated as a broken invariant, the batch is abandoned and the log
// stops with ErrFailed (reopen to recover). Sets written in key order are
// cheaper to apply (pebble's memtable insert starts from where the previous
// key went), so a caller that sorts its keys before appending saves the
// sequencer most of that cost. hint is about how many bytes the sidecar
// writes (it sizes the batch).
func (l *Log) AppendBatch(ctx context.Context, entries []Entry, sidecar func(indexes []int64, w Writer) error, hint int) ([]int64, error) {
	return l.appendEntries(ctx, entries, sidecar, hint)
}

func (l *Log) appendEntries(ctx context.Context, entries []Entry, sidecar func([]int64, Writer) error, hint int) ([]int64, error) {
	if l.reader != nil {
		return nil, ErrReadOnly
	}
	if len(entries) == 0 {
		return nil, nil
	}
	if len(entries) > l.opts.MaxBatch {
		return nil, fmt.Errorf("ledger: %d entries in one call, at most %d", len(entries), l.opts.MaxBatch)
	}
	size := 0
	for _, e := range entries {
		if len(e.Data) > itlog.MaxEntrySize {
			return nil, ErrEntryTooLarge
		}
		size += len(e.Data)
	}
	if size > l.opts.MaxBatchBytes {
		return nil, fmt.Errorf("ledger: %d bytes of entries in one call, at most %d", size, l.opts.MaxBatchBytes)
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	if l.diskFull.Load() {
		return nil, ErrDiskFull
	}
	r := &request{entries: entries, sidecar: sidecar, hint: hint, bytes: size, done: make(chan struct{})}
	l.qmu.Lock()
	if l.closing {
		l.qmu.Unlock()
		return nil, ErrClosed
	}
	if l.queued+len(entries) > l.opts.QueueSize || l.queuedBytes+size > l.opts.QueueBytes {
		l.qmu.Unlock()
		return nil, ErrPushback
	}
	l.queue = append(l.queue, r)
	l.queued += len(entries)
	l.queuedBytes += size
	l.qmu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
		return r.indexes, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// QueueLen returns the number of entries waiting to be sequenced.
func (l *Log) QueueLen() int {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return l.queued
}

// take removes up to MaxBatch entries' and MaxBatchBytes bytes' worth of
// requests from the queue. Whole requests are taken; the first is always
// taken (AppendEntries keeps each request within both limits).
func (l *Log) take() (reqs []*request, closing bool) {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	n, size, k := 0, 0, 0
	for k < len(l.queue) && (k == 0 || (n+len(l.queue[k].entries) <= l.opts.MaxBatch &&
		size+l.queue[k].bytes <= l.opts.MaxBatchBytes)) {
		n += len(l.queue[k].entries)
		size += l.queue[k].bytes
		k++
	}
	reqs = make([]*request, k)
	copy(reqs, l.queue[:k])
	rest := copy(l.queue, l.queue[k:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	l.queued -= n
	l.queuedBytes -= size
	if len(l.queue) > 0 {
		// More is waiting: make sure the loop comes back for it.
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return reqs, l.closing
}

// sequence is the single sequencer goroutine: it integrates whatever is
// queued into one batch, applies it, and hands it to publishLoop to wait for
// the fsync, while it goes on building the next batch.
func (l *Log) sequence() {
	defer close(l.inflight)
	for range l.wake {
		for {
			reqs, closing := l.take()
			if len(reqs) == 0 {
				if closing {
					l.failQueued(ErrClosed)
					return
				}
				break
			}
			if err := l.Err(); err != nil {
				finish(reqs, err)
				continue
			}
			c := l.integrate(reqs)
			err := c.err // c belongs to publishLoop once sent
			l.inflight <- c
			if err != nil {
				// The in-memory edge may be ahead of the store: stop for good.
				l.failQueued(err)
				return
			}
		}
	}
}

func (l *Log) failQueued(err error) {
	l.qmu.Lock()
	q := l.queue
	l.queue, l.queued, l.queuedBytes = nil, 0, 0
	l.closing = true
	l.qmu.Unlock()
	finish(q, err)
}

func finish(reqs []*request, err error) {
	for _, r := range reqs {
		r.err = err
		close(r.done)
	}
}

// batchWriter confines the layer above's writes to the extension namespace.
type batchWriter struct{ b kv.Batch }

func (w batchWriter) Set(key, value []byte) error {
	// extKey without the allocation (pebble writes the batch's own bytes).
	return w.b.SetPrefixed(prefixExt, key, value)
}

func (w batchWriter) Insert(key, value []byte) error {
	return w.b.InsertPrefixed(prefixExt, key, value)
}

func (w batchWriter) Delete(key []byte) error { return w.b.Delete(extKey(key)) }

func (w batchWriter) DeleteRange(lo, hi []byte) error {
	return w.b.DeleteRange(extKey(lo), extKey(hi))
}

// integrate assigns indexes to reqs, extends the right edge, builds the batch
// and applies it with ApplyNoSyncWait: visible to pebble readers, durable only
// after SyncWait. Nothing is published before that.
// batchFixedBytes and batchEntryBytes size a commit's batch: what it writes
// per commit and per entry besides the entries' and the sidecars' bytes
// (pebble's record headers included).
const (
	batchFixedBytes = 4096 + 4*2*tileBytes
	batchEntryBytes = 2*2 + 2*tlog.HashSize + 8
	tileBytes       = itlog.TileWidth * tlog.HashSize
)

// batchBuilt, if set (tests only), sees each commit's batch, complete, and
// the size it was given up front.
var batchBuilt func(b kv.Batch, sized int)

func (l *Log) integrate(reqs []*request) *commit {
	start := time.Now()
	e := l.edge
	// The batch's size up front: a batch that outgrows its buffer is copied
	// into one twice as big (issue 21: 1.8 KB allocated and copied per
	// event). Each entry is written twice (its 'e' record, then its full
	// bundle) with a 2-byte length, and adds a hash to a level-0 tile and to
	// an inner record (32 bytes each); each commit rewrites the partial
	// tiles and inner records of the levels above (8 KiB each at most),
	// plus the state and the fence.
	size := batchFixedBytes
	for _, r := range reqs {
		size += r.hint + 2*r.bytes + batchEntryBytes*len(r.entries)
	}
	b := l.db.NewBatch(size)
	c := &commit{batch: b, reqs: reqs, start: start}
	c.leaves.first = e.size
	// The new entries of the partial bundle start at deltaStart, at byte
	// deltaOff of its buffer: one 'e' record per commit (see edge.go).
	deltaStart, deltaOff := e.size, len(e.bundle.data)
	visit := func(id compact.NodeID, hash []byte) { e.visit(b, id, hash) }
	for _, r := range reqs {
		r.indexes = make([]int64, len(r.entries))
		for i, ent := range r.entries {
			h := tlog.RecordHash(ent.Data)
			idx := e.size
			r.indexes[i] = idx
			e.bundle.data = itlog.AppendBundleEntry(e.bundle.data, ent.Data)
			e.bundle.w++
			if err := e.rng.Append(h[:], visit); err != nil {
				panic(fmt.Sprintf("ledger: compact range append: %v", err))
			}
			c.leaves.hashes = append(c.leaves.hashes, h)
			e.size++
			c.entries++
			if e.bundle.w == itlog.TileWidth {
				// The bundle is full: write it whole, drop its 'e' records.
				start := e.bundle.n * itlog.TileWidth
				b.Set(bundleKey(e.bundle.n), e.bundle.data)
				b.DeleteRange(deltaKey(start), deltaKey(start+itlog.TileWidth))
				e.bundle.n++
				e.bundle.w = 0
				e.bundle.data = make([]byte, 0, cap(e.bundle.data))
				deltaStart, deltaOff = e.size, 0
			}
		}
		if c.err == nil && r.sidecar != nil {
			if err := r.sidecar(r.indexes, batchWriter{b}); err != nil {
				c.err = fmt.Errorf("%w: sidecar for entries %d..%d: %w", ErrFailed, r.indexes[0], e.size-1, err)
			}
		}
		if c.err != nil {
			break
		}
	}
	if c.err == nil {
		if e.size > deltaStart {
			b.Set(deltaKey(deltaStart), e.bundle.data[deltaOff:])
		}
		for lvl := range e.tiles {
			if t := &e.tiles[lvl]; t.dirty {
				// The partial level-0 tile is not stored: Open recomputes
				// it from the partial bundle.
				if lvl > 0 {
					b.Set(tileKey(lvl, t.n), t.data)
				}
				t.dirty = false
			}
		}
		root, err := rootOf(e.rng)
		if err != nil {
			panic(err.Error())
		}
		c.tree = tlog.Tree{N: e.size, Hash: root}
		c.snap = e.snapshot()
		b.Set(keyState, encodeState(c.tree))
		// The fence (a shared store): the batch commits only if the store's
		// head is still the one this batch extends.
		b.Advance(l.head, kv.Head{Size: c.tree.N, Root: c.tree.Hash[:]})
		l.head = kv.Head{Size: c.tree.N, Root: c.tree.Hash[:]}
		// Durability point: the batch goes to the WAL with Sync; publishLoop
		// waits for the fsync before anything attests to it, and publishes
		// nothing more once a commit has failed.
		if batchBuilt != nil {
			batchBuilt(b, size)
		}
		if err := b.Apply(); err != nil {
			c.err = fmt.Errorf("%w: %w", ErrFailed, err)
		}
	}
	if c.err != nil {
		// Nothing of this batch may be used: the edge is now ahead of the
		// store, so the log must stop (see sequence).
		b.Close()
		c.batch = nil
	}
	return c
}

// publishLoop waits for each applied batch's fsync, then publishes its
// checkpoint and answers its writers, in commit order.
func (l *Log) publishLoop() {
	defer close(l.done)
	defer close(l.indexq)
	syncWait := l.opts.syncWait
	if syncWait == nil {
		syncWait = func(c *commit) error { return c.batch.Wait() }
	}
	for c := range l.inflight {
		err := c.err
		if err == nil {
			err = syncWait(c)
			c.batch.Close()
			if err != nil {
				err = fmt.Errorf("%w: %w", ErrFailed, err)
			}
		}
		if err == nil {
			// A batch built while an earlier one's fsync was in flight
			// extends a tree that failed to become durable: even if its own
			// fsync succeeded, nothing of it may be published or
			// acknowledged.
			err = l.Err()
		}
		if err != nil {
			if l.failed.CompareAndSwap(nil, &err) {
				l.log.Error("commit failed; the log stops accepting writes", "err", err)
			}
			finish(c.reqs, l.Err())
			l.pubChanged.broadcast()
			continue
		}
		// c.tree is durable now: sign and publish it, then answer.
		if err := l.publish(c.tree, c.snap); err != nil {
			l.log.Error("publishing checkpoint", "err", err)
		}
		finish(c.reqs, nil)
		if len(c.leaves.hashes) > 0 {
			l.indexq <- c.leaves
		}
		if l.opts.OnCommit != nil {
			l.opts.OnCommit(CommitInfo{
				Entries:  c.entries,
				Size:     c.tree.N,
				Latency:  time.Since(c.start),
				Queue:    l.QueueLen(),
				Requests: len(c.reqs),
			})
		}
	}
}
