package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/ledger/kv"
	itlog "indelible.dev/tlog"
)

// A read-only view (OpenReader) serves the reads of a log that another
// process writes to a shared store: a cluster's standby over the active
// node's PostgreSQL store (docs/ha.md, "Standby").
//
// It serves exactly what the active node released: the newest checkpoint in
// the checkpoint archive (archive.go), which the active node writes only
// after the checkpoint was released (after the bucket has it, with a
// bucket; with witnessing, the cosigned checkpoint it served, cosignatures
// included). Every read is bounded by that checkpoint's size, as on the
// active node: the store may hold later entries, whose checkpoint has not
// been released, and nothing of them is served. The view polls the archive
// (ReaderOptions.Refresh) and moves on when a newer checkpoint appears,
// after checking that the stored tiles hash up to its root; sizes only
// grow.
//
// It writes nothing: no sequencer, publisher, index writer, key guard,
// witnessing or hook runs, the store's batches are refused (ErrReadOnly),
// and appends fail with ErrReadOnly.

// ErrReadOnly means a write was asked of a read-only view (OpenReader): the
// active node takes writes.
var ErrReadOnly = errors.New("ledger: a read-only view of the log: writes go to the active node")

// ErrNothingServed means the store holds no released checkpoint for a view
// to serve: no log yet, or none released yet.
var ErrNothingServed = errors.New("ledger: the store holds no released checkpoint yet")

// DefaultReaderRefresh is ReaderOptions.Refresh's default.
const DefaultReaderRefresh = 250 * time.Millisecond

// ReaderOptions configure OpenReader.
type ReaderOptions struct {
	// Verifier is the log's note verifier key; its name is the log's
	// origin. Every checkpoint served is checked against it. Required.
	Verifier note.Verifier
	// Refresh is how often the view looks for a newer released checkpoint.
	// Default DefaultReaderRefresh.
	Refresh time.Duration
	// TileCacheSize is as in Options.
	TileCacheSize int
	// Logger. Default: slog.Default().
	Logger *slog.Logger
}

// reader is the state of a read-only view.
type reader struct {
	verifier note.Verifier
	stop     chan struct{} // closed by Close
	stopped  chan struct{} // closed when follow returns
	lastErr  string        // follow's last logged error (follow's own)
}

// OpenReader opens a read-only view of the log in store (which it then owns
// and closes), serving the newest released checkpoint and following the
// writer's progress until Close. It fails with an error wrapping
// ErrNothingServed if no checkpoint was released yet, and refuses a store
// holding another log or written with another key.
func OpenReader(store kv.Store, opts ReaderOptions) (*Log, error) {
	if opts.Verifier == nil {
		store.Close()
		return nil, errors.New("ledger: ReaderOptions.Verifier is required")
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultReaderRefresh
	}
	if opts.TileCacheSize <= 0 {
		opts.TileCacheSize = DefaultTileCacheSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &Log{
		db:        readOnlyStore{store},
		origin:    opts.Verifier.Name(),
		opts:      Options{Logger: opts.Logger, TileCacheSize: opts.TileCacheSize},
		log:       opts.Logger,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		indexDone: make(chan struct{}),
		tiles:     newTileCache(opts.TileCacheSize),
		reader: &reader{verifier: opts.Verifier,
			stop: make(chan struct{}), stopped: make(chan struct{})},
	}
	if err := l.checkReaderStore(); err != nil {
		store.Close()
		return nil, err
	}
	if err := l.refresh(); err != nil {
		store.Close()
		return nil, err
	}
	go l.follow(opts.Refresh)
	return l, nil
}

// checkReaderStore checks that the store holds this log, written with this
// key, in a format this version reads.
func (l *Log) checkReaderStore() error {
	origin, err := l.get(keyOrigin)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: no log in the store", ErrNothingServed)
	}
	if err != nil {
		return err
	}
	if string(origin) != l.origin {
		return fmt.Errorf("ledger: store holds log %q, but the key is for %q", origin, l.origin)
	}
	v := l.reader.verifier
	want := fmt.Appendf(nil, "%s %08x", v.Name(), v.KeyHash())
	if got, err := l.get(keyKey); err != nil || !bytes.Equal(got, want) {
		return fmt.Errorf("%w: the store was created with key %q, this is key %q", ErrWrongKey, got, want)
	}
	if f, err := l.get(keyFormat); err != nil || (string(f) != formatVersion && string(f) != formatVersion2 && string(f) != formatVersion1) {
		return fmt.Errorf("ledger: unsupported store format %q", f)
	}
	return nil
}

// refresh moves the view to the newest released checkpoint, if it is newer
// than the one served, and reads the leaf-hash index's progress.
func (l *Log) refresh() error {
	var (
		n      int64 = -1
		signed []byte
	)
	err := l.db.Scan(archiveKey(0), []byte{prefixArchive + 1}, true, func(k, v []byte) bool {
		if len(k) == 9 {
			n, signed = int64(binary.BigEndian.Uint64(k[1:])), bytes.Clone(v)
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("ledger: reading the checkpoint archive: %w", err)
	}
	cur := l.pub.Load()
	switch {
	case n < 0 && cur == nil:
		return ErrNothingServed
	case n >= 0 && (cur == nil || n > cur.cp.N):
		cp, _, err := itlog.OpenCheckpoint(signed, l.reader.verifier)
		if err != nil {
			return fmt.Errorf("%w: the checkpoint archived for size %d: %w", ErrCorrupt, n, err)
		}
		if cp.N != n {
			return fmt.Errorf("%w: the checkpoint archived for size %d is for size %d", ErrCorrupt, n, cp.N)
		}
		snap, err := l.snapshotAt(cp.Tree)
		if err != nil {
			return err
		}
		p := &published{cp: cp, signed: signed, edge: snap}
		l.pubMu.Lock()
		l.pub.Store(p)
		l.rel.Store(p)
		l.pubMu.Unlock()
		l.pubChanged.broadcast()
	case n >= 0 && n < cur.cp.N:
		// Never back: a store restored from an older backup is the
		// active node's to refuse (the key guard); keep what was served.
		return fmt.Errorf("%w: the store's newest released checkpoint is for size %d, but size %d was served", ErrCorrupt, n, cur.cp.N)
	}
	if from, err := l.readIndexed(); err == nil && from > l.indexed.Load() {
		l.indexed.Store(from)
		l.indexChanged.broadcast()
	}
	return nil
}

// follow refreshes the view every interval until Close.
func (l *Log) follow(every time.Duration) {
	defer close(l.reader.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.reader.stop:
			return
		case <-t.C:
		}
		err := l.refresh()
		switch {
		case err != nil && err.Error() != l.reader.lastErr:
			l.log.Warn("ledger: refreshing the read-only view (serving the last checkpoint read)", "err", err)
			l.reader.lastErr = err.Error()
		case err == nil && l.reader.lastErr != "":
			l.log.Info("ledger: the read-only view is refreshing again")
			l.reader.lastErr = ""
		}
	}
}

// closeReader stops following and closes the store (closeMu held).
func (l *Log) closeReader() error {
	close(l.reader.stop)
	<-l.reader.stopped
	close(l.done)
	close(l.indexDone)
	l.pubChanged.broadcast()
	return l.db.Close()
}

// snapshotAt reads the right edge of the tree of size tree.N from a store
// that may hold a larger tree: the partial bundle from its 'e' records (or,
// if it filled since, as a prefix of the full bundle), the partial level-0
// tile recomputed from it, the partial tiles above as prefixes of the
// stored ones (partial tiles are prefixes of later ones). It checks that the
// edge hashes up to tree's root.
func (l *Log) snapshotAt(tree tlog.Tree) (*edgeSnapshot, error) {
	e := &edge{size: tree.N}
	e.bundle.n = tree.N / itlog.TileWidth
	e.bundle.w = int(tree.N % itlog.TileWidth)
	if e.bundle.w > 0 {
		data, err := l.partialBundleAt(e.bundle.n, e.bundle.w)
		if err != nil {
			return nil, err
		}
		e.bundle.data = data
	}
	if err := l.fillEdgeTiles(e, true, false); err != nil {
		return nil, err
	}
	if _, err := l.edgeRange(e, tree); err != nil {
		return nil, err
	}
	return e.snapshot(), nil
}

// partialBundleAt returns the first w entries of bundle n: from its 'e'
// records while the bundle is partial in the store, else from the full
// bundle (the commit that fills it deletes the records).
func (l *Log) partialBundleAt(n int64, w int) ([]byte, error) {
	start := n * itlog.TileWidth
	var data []byte
	next := start
	err := l.db.Scan(deltaKey(start), deltaKey(start+itlog.TileWidth), false, func(k, v []byte) bool {
		if int64(binary.BigEndian.Uint64(k[1:])) != next {
			return false // a gap: the bundle filled while it was read
		}
		k0 := 0
		if itlog.WalkBundle(v, func([]byte) bool { k0++; return true }) != nil || k0 == 0 {
			return false
		}
		data = append(data, v...)
		next += int64(k0)
		return next < start+int64(w)
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: reading partial bundle %d: %w", n, err)
	}
	if next < start+int64(w) {
		full, err := l.get(bundleKey(n))
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: bundle %d holds %d entries in the store, the tree needs %d: %w", ErrCorrupt, n, next-start, w, err)
		}
		if err != nil {
			return nil, fmt.Errorf("ledger: reading bundle %d: %w", n, err)
		}
		data = full
	}
	p, err := itlog.BundlePrefix(data, w)
	if err != nil {
		return nil, fmt.Errorf("%w: bundle %d: %w", ErrCorrupt, n, err)
	}
	return bytes.Clone(p), nil
}

// ErrStoreUnavailable means a read-only view's store did not answer a read
// (PostgreSQL restarting, the connection lost, the read timed out): the
// same read can succeed later (HTTP 503, not 500).
var ErrStoreUnavailable = errors.New("the shared store (PostgreSQL) did not answer this node's read")

// readOnlyStore is a store whose writes are refused and whose failed reads
// are ErrStoreUnavailable.
type readOnlyStore struct{ kv.Store }

// unavailable wraps a failed read's error in ErrStoreUnavailable (not
// kv.ErrNotFound, which is an answer).
func unavailable(err error) error {
	if err == nil || errors.Is(err, kv.ErrNotFound) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
}

func (s readOnlyStore) Get(key []byte) ([]byte, io.Closer, error) {
	v, c, err := s.Store.Get(key)
	return v, c, unavailable(err)
}

func (s readOnlyStore) GetSorted(keys [][]byte, f func(i int, value []byte)) error {
	return unavailable(s.Store.GetSorted(keys, f))
}

func (s readOnlyStore) GetNear(keys [][]byte, f func(i int, value []byte)) error {
	return unavailable(s.Store.GetNear(keys, f))
}

func (s readOnlyStore) Scan(lo, hi []byte, reverse bool, f func(key, value []byte) bool) error {
	return unavailable(s.Store.Scan(lo, hi, reverse, f))
}

func (readOnlyStore) NewBatch(int) kv.Batch                           { return refusedBatch{} }
func (readOnlyStore) Purge(context.Context, [][2][]byte) error        { return ErrReadOnly }
func (refusedBatch) Set(key, value []byte) error                      { return ErrReadOnly }
func (refusedBatch) SetPrefixed(prefix byte, key, value []byte) error { return ErrReadOnly }
func (refusedBatch) Insert(key, value []byte) error                   { return ErrReadOnly }
func (refusedBatch) InsertPrefixed(byte, []byte, []byte) error        { return ErrReadOnly }
func (refusedBatch) Delete(key []byte) error                          { return ErrReadOnly }
func (refusedBatch) DeleteRange(lo, hi []byte) error                  { return ErrReadOnly }
func (refusedBatch) Advance(from, to kv.Head)                         {}
func (refusedBatch) Commit(sync bool) error                           { return ErrReadOnly }
func (refusedBatch) Apply() error                                     { return ErrReadOnly }
func (refusedBatch) Wait() error                                      { return ErrReadOnly }
func (refusedBatch) Close()                                           {}

// refusedBatch is a read-only store's batch: every write fails.
type refusedBatch struct{}

var _ kv.Batch = refusedBatch{}
