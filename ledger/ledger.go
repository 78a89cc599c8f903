// Package ledger is the log's state: a C2SP tlog-tiles transparency log
// stored in pebble (or, through the same key-value seam, ledger/kv, in
// PostgreSQL: Options.Store), with a durable group-commit sequencer,
// checkpoint signing, and the reads and proofs the HTTP layer serves.
//
// The append path has three stages, never confused:
//
//   - sequencing: Append puts entries on a bounded queue and returns
//     ErrPushback when it is full;
//   - integration: one goroutine takes whatever is queued, assigns
//     consecutive indexes, extends the Merkle tree (a compact range kept in
//     memory), and writes the entries' bundles, the changed hash tiles (full
//     and partial), the leaf-hash index, any extension writes of the layer
//     above, and the new tree state in ONE pebble batch committed with Sync.
//     While that batch's fsync is in flight the next batch is being built
//     (group commit without a timer);
//   - publishing: only after the fsync returns is a checkpoint for the new
//     size signed and made visible, and only then are the writers answered.
//
// Open recomputes the root of the stored tree from the stored right-edge tiles
// and refuses to open a store whose tiles disagree with its state. The batch
// is atomic, so recovery after a crash is just Open.
package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pebblekv"
	itlog "indelible.dev/tlog"
)

// Defaults for Options.
const (
	// DefaultQueueSize is the number of entries that may wait to be
	// sequenced before Append returns ErrPushback.
	DefaultQueueSize = 1 << 17
	// DefaultMaxBatch is the most entries committed in one pebble batch.
	DefaultMaxBatch = 1 << 14
	// DefaultQueueBytes is the most entry bytes that may wait to be
	// sequenced before Append returns ErrPushback. Without it the entry
	// bound alone allows DefaultQueueSize x 64 KiB = 8 GiB.
	DefaultQueueBytes = 256 << 20
	// DefaultMaxBatchBytes is the most entry bytes committed in one pebble
	// batch (a single AppendEntries call may not exceed it either).
	DefaultMaxBatchBytes = 32 << 20
)

// pebbleFormat is the on-disk format of the pebble store, pinned (see
// pebblekv.Format and docs/STORAGE-FORMAT.md).
const pebbleFormat = pebblekv.Format

// Errors callers branch on.
var (
	// ErrPushback means the sequencing queue is full: retry later (HTTP 503
	// with Retry-After).
	ErrPushback = errors.New("ledger: too many pending entries, retry later")
	// ErrNotFound means a tile, bundle or entry does not exist, or lies beyond
	// the published checkpoint.
	ErrNotFound = errors.New("ledger: not found")
	// ErrClosed means the log was closed.
	ErrClosed = errors.New("ledger: closed")
	// ErrEntryTooLarge means an entry exceeds tlog.MaxEntrySize bytes.
	ErrEntryTooLarge = fmt.Errorf("ledger: entry larger than %d bytes", itlog.MaxEntrySize)
	// ErrFailed means a commit to storage failed (disk full, failing fsync).
	// The log stops accepting writes; what was acknowledged is safe, and
	// reopening the store recovers the last durable state.
	ErrFailed = errors.New("ledger: storage failure, log stopped accepting writes")
	// ErrCorrupt means the store's tiles disagree with its recorded state.
	ErrCorrupt = errors.New("ledger: store is corrupt")
	// ErrNotWitnessed means witnessing is configured and no checkpoint has
	// met the quorum yet (or not within a caller's deadline): retry later.
	ErrNotWitnessed = errors.New("ledger: no witnessed checkpoint yet, retry later")
	// ErrWitnessAhead means a witness reported a tree larger than any this
	// log has signed: the log has lost data or its key signed another
	// history. The log stays up for reads but is not ready (see WitnessAlarm).
	ErrWitnessAhead = errors.New("ledger: a witness knows a larger tree than this log")
	// ErrRange means a proof was asked for an index or size outside the
	// published tree.
	ErrRange = itlog.ErrProofRange
	// ErrFenced means a shared store (PostgreSQL) refused a commit: another
	// node took the store over (a newer epoch), or the log's head in the
	// store is not this node's. The log stops (a commit fails with an error
	// wrapping ErrFailed and ErrFenced) and signs nothing more: restart the
	// node to reload from the store.
	ErrFenced = kv.ErrFenced
	// ErrAmbiguous means the connection to a shared store was lost while a
	// commit was in flight: the log stops as for ErrFenced.
	ErrAmbiguous = kv.ErrAmbiguous
)

// Retryable reports whether err is a condition that passes by itself
// (pushback, a full disk, a closing log, no witnessed checkpoint yet, a
// read-only view's store not answering), so the
// same request may succeed later. ErrFailed and ErrCorrupt are fatal: the log
// stopped, and only an operator (reopening or restoring the store) helps.
func Retryable(err error) bool {
	if errors.Is(err, ErrFailed) || errors.Is(err, ErrCorrupt) {
		return false
	}
	return errors.Is(err, ErrPushback) || errors.Is(err, ErrDiskFull) ||
		errors.Is(err, ErrClosed) || errors.Is(err, ErrNotWitnessed) || errors.Is(err, ErrStoreUnavailable)
}

// Options configure Open. The zero value of every field but Signer has a
// documented default.
type Options struct {
	// Signer is the log's note key. Its name is the log's origin. Required.
	Signer note.Signer
	// Store, if set, is the store the log lives in (PostgreSQL: kv/pgkv),
	// instead of pebble in the directory given to Open; the Log closes it.
	// FS, CacheSize and MinFreeBytes then do not apply.
	Store kv.Store
	// FS is the filesystem pebble uses. Default: the operating system's.
	// Tests pass vfs.NewCrashableMem().
	FS vfs.FS
	// QueueSize bounds the entries waiting to be sequenced. Default DefaultQueueSize.
	QueueSize int
	// MaxBatch bounds the entries committed in one batch. Default DefaultMaxBatch.
	MaxBatch int
	// QueueBytes bounds the entry bytes waiting to be sequenced. Default
	// DefaultQueueBytes.
	QueueBytes int
	// MaxBatchBytes bounds the entry bytes committed in one batch. Default
	// DefaultMaxBatchBytes.
	MaxBatchBytes int
	// Logger receives operational messages. Default: slog.Default().
	Logger *slog.Logger
	// OnCommit, if set, is called after each durable commit (for metrics).
	OnCommit func(CommitInfo)
	// CacheSize is pebble's block cache in bytes, beyond what pebble
	// reserves in the cache for its memtables. Default 64 MiB.
	CacheSize int64
	// TileCacheSize is the number of expanded tiles kept in memory for
	// proofs (hashcache.go). Default DefaultTileCacheSize.
	TileCacheSize int
	// MinFreeBytes pauses appends (ErrDiskFull) while the store's
	// filesystem has less free space than this. Default DefaultMinFreeBytes;
	// negative disables the check. It is not checked when FS is set.
	MinFreeBytes int64
	// Witnessing, if it lists witnesses, has every new checkpoint cosigned
	// and makes Checkpoint return the newest one meeting the quorum (see
	// witnessing.go). Appends never wait for witnesses.
	Witnessing WitnessConfig
	// KeyGuard, if set, keeps the log key from ever signing two histories:
	// see keyguard.go. indelible serve always sets it.
	KeyGuard *KeyGuard
	// Hooks are called at the points of the publish path (hooks.go), after
	// the key guard and witnessing. At most one may be a ReleaseGate.
	Hooks []PublishHook

	// For tests: the free space of a directory, and a replacement of the
	// wait for a commit's fsync and of the leaf-hash index commit.
	freeSpace   func(dir string) (uint64, error)
	syncWait    func(c *commit) error
	indexCommit func(b kv.Batch) error
}

// CommitInfo describes one durable commit.
type CommitInfo struct {
	Entries  int           // entries appended (deduplicated ones excluded)
	Size     int64         // tree size after the commit
	Latency  time.Duration // from building the batch to the end of its fsync
	Queue    int           // entries left waiting in the queue
	Requests int           // Append calls answered by this commit
}

// Log is an open transparency log. All methods are safe for concurrent use.
//
// Goroutines, and what each owns:
//
//   - sequence (sequencer.go) owns edge. It takes requests off the queue,
//     integrates them into the edge, applies each batch to pebble without
//     waiting for its fsync, and sends the commit to inflight.
//   - publishLoop (sequencer.go) receives commits from inflight in order,
//     waits for each fsync, publishes (pub), answers the writers, and sends
//     the leaf hashes to indexq. It sets failed on the first failed commit;
//     from then on no commit is published or acknowledged.
//   - indexLoop (index.go) writes the leaf-hash index from indexq and
//     advances indexed, never past a job it has not written.
//   - watchDisk (diskguard.go) sets diskFull.
//   - guardLoop (keyguard.go) writes the key's high-water mark after
//     publishes, coalesced.
//   - Options.Hooks own their goroutines (hooks.go).
//   - witnessing.run and its request goroutines (witnessing.go) own the
//     witnessing state, under its own mutex.
//
// Locks: qmu guards queue, queued, queuedBytes and closing. pubMu serializes
// publish (sizes only grow; one root per size). closeMu makes Close run
// once. pubChanged and indexChanged are notifiers, each with its own lock.
// Everything else is immutable after Open or atomic.
//
// Shutdown chain: Close sets closing and wakes sequence, which commits what
// is queued, refuses the rest with ErrClosed and closes inflight;
// publishLoop drains inflight (every writer is answered), then closes indexq
// and done; indexLoop drains indexq and closes indexDone; then the publish
// hooks close in reverse order (Options.Hooks, witnessing stops, guardLoop
// stops and Close writes the final high-water mark) and the store closes.
type Log struct {
	db     kv.Store
	pdb    *pebble.DB // the pebble store's, nil on another store (tests, metrics)
	dir    string
	signer note.Signer
	origin string
	opts   Options
	log    *slog.Logger

	// Sequencing queue, guarded by qmu.
	qmu         sync.Mutex
	queue       []*request
	queued      int // entries in queue
	queuedBytes int // entry bytes in queue
	wake        chan struct{}
	closing     bool

	// Integration state: owned by the sequencer goroutine.
	edge *edge
	head kv.Head // the tree state the next batch extends (the fence's)

	// Publishing. pub is the newest signed checkpoint, rel the newest
	// released one (hooks.go); without a ReleaseGate they are the same.
	pub        atomic.Pointer[published]
	rel        atomic.Pointer[published]
	hooks      []PublishHook // key guard, witnessing, Options.Hooks
	gated      bool          // a ReleaseGate is among hooks
	pubMu      sync.Mutex
	pubChanged notifier // at each publish, at a failure, at a new witnessed checkpoint
	failed     atomic.Pointer[error]

	diskFull atomic.Bool
	tiles    *tileCache // expanded tiles for proofs (hashcache.go)

	inflight chan *commit
	done     chan struct{} // closed when the publisher exits
	wit      *witnessing   // nil unless Options.Witnessing has witnesses
	guard    *guard        // nil unless Options.KeyGuard is set

	// Leaf-hash index (see index.go).
	indexq       chan indexJob
	indexed      atomic.Int64 // entries below this are in the leaf-hash index
	indexChanged notifier     // when indexed grows
	indexDone    chan struct{}

	closeMu sync.Mutex
	closed  bool

	// reader is set on a read-only view (OpenReader, reader.go): no
	// sequencer, publisher or hooks run, and every write is refused.
	reader *reader
}

// published is one signed checkpoint, made visible atomically.
type published struct {
	cp     itlog.Checkpoint
	signed []byte
	edge   *edgeSnapshot // the right edge at cp.N, for reads
}

// TestingStore, if set, opens the store for dir when Options.Store and
// Options.FS are not set, instead of pebble: the test suites set it (with
// INDELIBLE_TEST_STORE=postgres, see internal/pgtest) to run every log they
// open on PostgreSQL. Nothing else may set it.
var TestingStore func(dir string) (kv.Store, error)

// Open opens the log stored in dir, creating it if dir holds no log. A new
// log is signed at size 0 before Open returns. Opening an existing log checks
// the origin and recomputes the root from the stored right-edge tiles; a
// mismatch fails with an error wrapping ErrCorrupt.
func Open(dir string, opts Options) (*Log, error) {
	if opts.Signer == nil {
		return nil, errors.New("ledger: Options.Signer is required")
	}
	origin := opts.Signer.Name()
	if !itlog.ValidOrigin(origin) {
		return nil, fmt.Errorf("ledger: invalid origin %q", origin)
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = DefaultMaxBatchBytes
	}
	opts.MaxBatchBytes = min(opts.MaxBatchBytes, opts.QueueBytes)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 64 << 20
	}
	if opts.TileCacheSize <= 0 {
		opts.TileCacheSize = DefaultTileCacheSize
	}
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = DefaultMinFreeBytes
	}
	var guard *guard
	var hwm *highWater
	if opts.KeyGuard != nil {
		var err error
		if guard, hwm, err = openGuard(opts.KeyGuard, opts.Logger); err != nil {
			return nil, err
		}
		if _, err := os.Stat(dir); opts.Store == nil && opts.FS == nil && errors.Is(err, fs.ErrNotExist) {
			// Refuse before pebble creates an empty store that a later
			// start would take for the log's.
			if err := guard.mayCreate(hwm); err != nil {
				return nil, err
			}
		}
	}
	if opts.Store == nil && opts.FS == nil && TestingStore != nil {
		s, err := TestingStore(dir)
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		opts.Store = s
	}
	db := opts.Store
	var pdb *pebble.DB
	if db == nil {
		ps, err := pebblekv.Open(dir, pebblekv.Options{FS: opts.FS, CacheSize: opts.CacheSize, Logger: opts.Logger})
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		db, pdb = ps, ps.DB()
	}
	l := &Log{
		db:        db,
		pdb:       pdb,
		dir:       dir,
		signer:    opts.Signer,
		origin:    origin,
		opts:      opts,
		log:       opts.Logger,
		wake:      make(chan struct{}, 1),
		inflight:  make(chan *commit, 2),
		done:      make(chan struct{}),
		indexq:    make(chan indexJob, 256),
		indexDone: make(chan struct{}),
		tiles:     newTileCache(opts.TileCacheSize),
	}
	l.guard = guard
	if guard != nil {
		guard.hwm = hwm
		l.hooks = append(l.hooks, guard)
	}
	if len(opts.Witnessing.Witnesses) > 0 {
		l.hooks = append(l.hooks, &witnessHook{l: l, cfg: opts.Witnessing})
	}
	for _, h := range opts.Hooks {
		if _, ok := h.(ReleaseGate); ok {
			if l.gated {
				db.Close()
				return nil, errors.New("ledger: more than one ReleaseGate in Options.Hooks")
			}
			l.gated = true
		}
		l.hooks = append(l.hooks, h)
	}
	tree, err := l.init(hwm)
	if err == nil {
		err = l.checkFence(tree)
	}
	if err == nil {
		l.edge, err = l.loadEdge(tree)
		l.head = kv.Head{Size: tree.N, Root: bytes.Clone(tree.Hash[:])}
	}
	if err == nil {
		var from int64
		if from, err = l.readIndexed(); err == nil {
			l.indexed.Store(from)
			err = l.reindex(from, tree.N)
		}
	}
	if err == nil {
		err = l.publish(tree, l.edge.snapshot())
	}
	// The published checkpoint is not visible outside yet (Open has not
	// returned): the hooks check that this store is the history the key has
	// signed, as far as the high-water mark, the witnesses and the bucket
	// know, before any new signature can go out.
	if err == nil {
		err = l.openHooks()
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	go l.sequence()
	go l.publishLoop()
	go l.indexLoop()
	if opts.MinFreeBytes > 0 && opts.Store == nil && (opts.FS == nil || opts.freeSpace != nil) {
		go l.watchDisk(dir)
	}
	return l, nil
}

// init creates the store's metadata on first open, or checks it, and returns
// the stored tree state.
func (l *Log) init(hwm *highWater) (tlog.Tree, error) { return l.initOnce(hwm, false) }

func (l *Log) initOnce(hwm *highWater, retried bool) (tlog.Tree, error) {
	origin, err := l.get(keyOrigin)
	if errors.Is(err, ErrNotFound) {
		if _, serr := l.get(keyState); !errors.Is(serr, ErrNotFound) {
			// A shared store: another node may have created the log
			// between the two reads (the origin and the tree state are
			// one commit). Read the origin again.
			if origin, err = l.get(keyOrigin); errors.Is(err, ErrNotFound) {
				return tlog.Tree{}, fmt.Errorf("%w: tree state without origin", ErrCorrupt)
			}
		}
	}
	if errors.Is(err, ErrNotFound) {
		if l.guard != nil {
			if err := l.guard.mayCreate(hwm); err != nil {
				return tlog.Tree{}, err
			}
		}
		// A new log: the empty tree. Durable before the size-0 checkpoint is signed.
		// On a shared store the fence makes the creation conditional on
		// no log existing yet: of two nodes creating one at once, one wins
		// and the other is fenced (ErrFenced).
		b := l.db.NewBatch(0)
		defer b.Close()
		b.Set(keyFormat, []byte(formatVersion))
		b.Set(keyOrigin, []byte(l.origin))
		b.Set(keyKey, keyID(l.signer))
		b.Set(keyStoreID, newStoreID())
		empty := tlog.Tree{N: 0, Hash: itlog.EmptyRoot}
		b.Set(keyState, encodeState(empty))
		b.Advance(kv.Head{Size: -1}, kv.Head{Size: 0, Root: empty.Hash[:]})
		if err := b.Commit(true); err != nil {
			if errors.Is(err, ErrFenced) && !retried {
				// Another node created the log first: open that one.
				l.log.Info("another node created the log first; opening it")
				return l.initOnce(hwm, true)
			}
			return tlog.Tree{}, fmt.Errorf("ledger: creating log: %w", err)
		}
		l.log.Info("created new log", "origin", l.origin)
		return empty, nil
	}
	if err != nil {
		return tlog.Tree{}, err
	}
	if string(origin) != l.origin {
		return tlog.Tree{}, fmt.Errorf("ledger: store holds log %q, but the key is for %q", origin, l.origin)
	}
	if err := l.checkKey(); err != nil {
		return tlog.Tree{}, err
	}
	if l.guard != nil && l.guard.cfg.Init {
		return tlog.Tree{}, fmt.Errorf("%w: --init asks for a new log, but the store already holds one: start without --init", ErrKeyGuard)
	}
	f, err := l.get(keyFormat)
	switch {
	case err == nil && string(f) == formatVersion:
	case err == nil && (string(f) == formatVersion1 || string(f) == formatVersion2):
		// Format 1 differs only in the leaf-hash index's keys: its keys
		// stay readable (lookupLeaf), new ones are today's. Format 2 only
		// in the payloads the events layer may write from now on. Marking
		// the store 3 keeps a binary that knows only 1 or 2 from opening it
		// and missing the entries indexed, or failing on the events
		// written, from now on.
		b := l.db.NewBatch(0)
		b.Set(keyFormat, []byte(formatVersion))
		err := b.Commit(true)
		b.Close()
		if err != nil {
			return tlog.Tree{}, fmt.Errorf("ledger: moving the store to format %s: %w", formatVersion, err)
		}
		l.log.Info("store moved to format "+formatVersion, "from", string(f))
	default:
		return tlog.Tree{}, fmt.Errorf("ledger: unsupported store format %q", f)
	}
	v, err := l.get(keyState)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("%w: reading tree state: %w", ErrCorrupt, err)
	}
	tree, ok := decodeState(v)
	if !ok {
		return tlog.Tree{}, fmt.Errorf("%w: tree state of %d bytes", ErrCorrupt, len(v))
	}
	return tree, nil
}

// checkFence refuses a shared store whose fence does not record the stored
// tree as the log's head: the first commit would be fenced off anyway.
func (l *Log) checkFence(tree tlog.Tree) error {
	ep, ok := l.db.(kv.Epocher)
	if !ok {
		return nil
	}
	h, ok, err := ep.FenceHead(context.Background())
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if !ok || h.Size != tree.N || !bytes.Equal(h.Root, tree.Hash[:]) {
		return fmt.Errorf("%w: the store holds a tree of size %d, but its fence records size %d (a store written without the fence, or moved by another node)", ErrFenced, tree.N, h.Size)
	}
	return nil
}

// get returns a copy of the value at key, or ErrNotFound.
func (l *Log) get(key []byte) ([]byte, error) {
	v, closer, err := l.db.Get(key)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: reading %q: %w", key, err)
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

// Origin returns the log's origin line.
func (l *Log) Origin() string { return l.origin }

// Err reports the storage failure that stopped the log, or nil.
func (l *Log) Err() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops accepting appends (they get ErrClosed), commits what is
// already queued, waits for every in-flight commit to become durable and its
// writers to be answered, and closes the store.
func (l *Log) Close() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.reader != nil {
		return l.closeReader()
	}
	l.qmu.Lock()
	l.closing = true
	l.qmu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.done
	<-l.indexDone
	l.closeHooks()
	return l.db.Close()
}

// pebbleLogger routes pebble's messages to slog, dropping its chatty info.
type pebbleLogger = pebblekv.Logger

// set writes one key outside any log entry, synced or not.
func (l *Log) set(key, value []byte, sync bool) error {
	b := l.db.NewBatch(0)
	defer b.Close()
	if err := b.Set(key, value); err != nil {
		return err
	}
	return l.fatal(b.Commit(sync))
}

// fatal stops the log if err means this node may no longer write to the
// store (kv.Fatal: fenced, or a commit of unknown outcome), and returns err.
func (l *Log) fatal(err error) error {
	if err != nil && kv.Fatal(err) {
		ferr := fmt.Errorf("%w: %w", ErrFailed, err)
		if l.failed.CompareAndSwap(nil, &ferr) {
			msg := "the store fenced this node off; the log stops"
			if errors.Is(err, kv.ErrAmbiguous) {
				msg = "the store's connection was lost during a commit (its outcome is unknown); the log stops"
			}
			l.log.Error(msg, "err", err)
			l.pubChanged.broadcast()
		}
	}
	return err
}

var _ io.Closer = (*Log)(nil)

var rangeFactory = &compact.RangeFactory{Hash: hashChildren}

// hashChildren is the RFC 6962 interior node hash, SHA-256(0x01 || l || r),
// as rfc6962.DefaultHasher.HashChildren computes it, with one allocation
// instead of three (the sequencer hashes about one node per entry).
func hashChildren(l, r []byte) []byte {
	var buf [1 + 2*tlog.HashSize]byte
	if len(l)+len(r) > 2*tlog.HashSize {
		return rfc6962.DefaultHasher.HashChildren(l, r)
	}
	buf[0] = rfc6962.RFC6962NodeHashPrefix
	n := 1 + copy(buf[1:], l)
	n += copy(buf[n:], r)
	h := sha256.Sum256(buf[:n])
	return h[:]
}

// WaitSize blocks until a checkpoint covering at least n entries is
// published, and returns it, or until ctx is done. With witnessing it waits
// for a checkpoint that met the witness quorum (carrying the cosignatures),
// never returning a merely log-signed one.
func (l *Log) WaitSize(ctx context.Context, n int64) (itlog.Checkpoint, []byte, error) {
	for {
		ch := l.pubChanged.wait()
		p := l.rel.Load()
		if l.wit != nil {
			p = l.witnessedCheckpoint()
		}
		if p != nil && p.cp.N >= n {
			return p.cp, p.signed, nil
		}
		if err := l.Err(); err != nil {
			return itlog.Checkpoint{}, nil, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return itlog.Checkpoint{}, nil, ctx.Err()
		case <-l.done:
			return itlog.Checkpoint{}, nil, ErrClosed
		}
	}
}

// Checkpoint returns the checkpoint to serve and its signed note: the newest
// released one (hooks.go), or, with witnessing, the newest one that met the
// witness quorum, carrying the cosignatures. Until a first checkpoint is
// released (with a ReleaseGate) or meets the quorum (with witnessing) it
// returns the zero Checkpoint and a nil note: a log-signed checkpoint is
// never served in place of a witnessed one. The note is shared: callers must
// not modify it.
func (l *Log) Checkpoint() (itlog.Checkpoint, []byte) {
	if l.wit != nil {
		if w := l.witnessedCheckpoint(); w != nil {
			return w.cp, w.signed
		}
		return itlog.Checkpoint{}, nil
	}
	if p := l.rel.Load(); p != nil {
		return p.cp, p.signed
	}
	return itlog.Checkpoint{}, nil
}

// Published returns the newest checkpoint signed by the log, witnessed or
// not, released or not. Reads (tiles, proofs) are bounded by it; its note
// must not leave the process before it is released (hooks.go).
func (l *Log) Published() (itlog.Checkpoint, []byte) {
	p := l.pub.Load()
	return p.cp, p.signed
}

// publish signs a checkpoint for tree, which must be durable, and makes it
// visible. Sizes only grow: publishing an older tree is a no-op.
func (l *Log) publish(tree tlog.Tree, snap *edgeSnapshot) error {
	cp := itlog.Checkpoint{Origin: l.origin, Tree: tree}
	signed, err := itlog.SignCheckpoint(cp, l.signer)
	if err != nil {
		return fmt.Errorf("ledger: signing checkpoint: %w", err)
	}
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	if old := l.pub.Load(); old != nil {
		if old.cp.N > tree.N {
			return nil
		}
		if old.cp.N == tree.N && old.cp.Hash != tree.Hash {
			// Two roots for one size: a broken invariant of the sequencer.
			panic(fmt.Sprintf("ledger: two roots for size %d", tree.N))
		}
	}
	p := &published{cp: cp, signed: signed, edge: snap}
	l.pub.Store(p)
	for _, h := range l.hooks {
		h.Signed(cp)
	}
	if !l.gated {
		l.releaseLocked(p)
		return nil
	}
	l.pubChanged.broadcast()
	return nil
}
