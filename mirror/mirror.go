// Package mirror keeps a public, immutable copy of the log in S3-compatible
// object storage, in the exact c2sp.org/tlog-tiles layout, and holds back
// every checkpoint signature until the bucket has it (the release rule).
//
// Objects, all written create-only (If-None-Match: *) except checkpoint:
//
//	tile/<L>/<N>[.p/<W>]        hash tiles, full and partial (immutable)
//	tile/entries/<N>[.p/<W>]    entry bundles, full and partial (immutable)
//	checkpoints/<size>          each released checkpoint note, <size> in
//	                            decimal, created once (immutable)
//	checkpoint                  the served checkpoint (with witnessing, the
//	                            newest witnessed one), replaced with If-Match
//
// A create that gets 412 compares the bytes: equal is a retry of an earlier
// upload and fine; different is fork evidence (the bucket holds another
// history under this log's name), and the mirror halts the log.
//
// The mirror is a ledger.ReleaseGate: for each newly signed checkpoint it
// uploads the tiles that changed since the last one it mirrored
// (tlog.NewTiles), then creates checkpoints/<size>, and only then releases the
// checkpoint to the ledger (GET /checkpoint, receipts, witnesses, waits). A
// bucket outage therefore never stops appends (they are durable in the
// store) but stalls every signature until the bucket is back. Intermediate
// checkpoints signed while an upload was running are skipped: each round
// mirrors the newest.
//
// The watermark (the last mirrored size, in the store through
// ledger.SetHookState) lets a restarted node resume where it left off.
//
// At Open, before any signature leaves the node, the mirror checks the
// bucket against the store: a checkpoint or checkpoints/<size> ahead of the
// store, or with another root at a size the store has, refuses the start
// (ledger.ErrKeyGuard): the store was restored from an older backup, or the
// key signed another history.
package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

// Defaults of Config.
const (
	DefaultRetry    = time.Second
	DefaultTimeout  = 30 * time.Second
	DefaultParallel = 8
)

// ErrFork means the bucket holds an object that differs from what this log
// would write at the same name: two histories under one log. It is fatal:
// the mirror halts the log.
var ErrFork = errors.New("mirror: the bucket holds another history (fork evidence)")

// maxNote bounds a checkpoint object read from the bucket.
const maxNote = 1 << 20

// watermarkName is the mirror's state in the store (ledger.SetHookState).
const watermarkName = "mirror"

// Config configures a Mirror.
type Config struct {
	// Bucket is the bucket URL: s3://NAME?endpoint=URL&region=R&path_style=true.
	// Credentials come from the AWS SDK's usual environment and files.
	Bucket string
	// Verifier is the log's verifier key: checkpoints in the bucket that it
	// does not verify are not this log's.
	Verifier note.Verifier
	// Logger receives operational messages. Default slog.Default().
	Logger *slog.Logger
	// Registerer, if set, gets the mirror's metrics.
	Registerer prometheus.Registerer
	// OnFatal, if set, is called once when the mirror halts the log (fork
	// evidence), after the halt.
	OnFatal func(error)
	// Retry is the pause after a failed round. Default DefaultRetry.
	Retry time.Duration
	// Timeout bounds each bucket request. Default DefaultTimeout.
	Timeout time.Duration
	// Parallel bounds the uploads in flight. Default DefaultParallel.
	Parallel int
	// HTTPClient, if set, is the SDK's HTTP client.
	HTTPClient *http.Client
}

// Mirror is a ledger publish hook (a ReleaseGate): pass it in
// ledger.Options.Hooks. Its methods are safe for concurrent use.
type Mirror struct {
	cfg Config
	b   *bucket
	log *slog.Logger
	l   *ledger.Log

	mirrored atomic.Int64 // size whose tiles and checkpoints/<size> are in the bucket
	released bool         // run: the checkpoint at mirrored is released (run only)

	// The bucket's checkpoint object as last written or read (run only).
	cpBody []byte
	cpETag string
	cpN    int64

	// The newest checkpoints/<size> found by guard, and its size (-1: none).
	newestBody []byte
	newestN    int64

	uploads  prometheus.Counter
	failures prometheus.Counter

	cancel    context.CancelFunc
	stopping  chan struct{} // closed by Close: run returns after its round
	done      chan struct{}
	closeOnce sync.Once
}

// New connects to the bucket and probes that it honours If-None-Match: *
// and If-Match on PutObject; it refuses a bucket that does not.
func New(ctx context.Context, cfg Config) (*Mirror, error) {
	loc, err := ParseLocation(cfg.Bucket)
	if err != nil {
		return nil, err
	}
	if cfg.Verifier == nil {
		return nil, errors.New("mirror: Config.Verifier is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	b, err := newBucket(ctx, loc, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 4*cfg.Timeout)
	defer cancel()
	if err := b.probe(pctx); err != nil {
		return nil, err
	}
	m := &Mirror{cfg: cfg, b: b, log: cfg.Logger, stopping: make(chan struct{}), done: make(chan struct{})}
	m.uploads = prometheus.NewCounter(prometheus.CounterOpts{Name: "indelible_mirror_uploads_total", Help: "Objects created in the bucket."})
	m.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "indelible_mirror_errors_total", Help: "Mirror rounds that failed (the bucket unreachable or refusing); each is retried."})
	m.mirrored.Store(-1)
	return m, nil
}

// Size returns the size of the newest checkpoint mirrored and released, or
// -1 before the first.
func (m *Mirror) Size() int64 { return m.mirrored.Load() }

// GatesRelease marks the Mirror as a ledger.ReleaseGate.
func (m *Mirror) GatesRelease() {}

// Signed does nothing: the mirror's loop wakes on ledger.Log.Changed.
func (m *Mirror) Signed(itlog.Checkpoint) {}

// Released does nothing: the mirror itself released it.
func (m *Mirror) Released(itlog.Checkpoint) {}

// Open checks the bucket against the store (the key guard's bucket part),
// reads the watermark and starts the upload loop.
func (m *Mirror) Open(l *ledger.Log) error {
	m.l = l
	ctx, cancel := context.WithTimeout(context.Background(), 4*m.cfg.Timeout)
	err := m.guard(ctx)
	cancel()
	if err != nil {
		return err
	}
	from := int64(0)
	if v, err := l.HookState(watermarkName); err == nil {
		if from, err = itlog.ParseSize(string(v)); err != nil {
			return fmt.Errorf("mirror: the stored watermark %q: %w", v, err)
		}
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return err
	}
	if pub, _ := l.Published(); from > pub.N {
		// The watermark is written after the tree it names is durable.
		return fmt.Errorf("%w: the mirror's watermark %d is beyond the store's tree of %d entries", ledger.ErrCorrupt, from, pub.N)
	}
	// A restart at a size already in the bucket: checkpoints/<size> holds
	// exactly the note just signed (Ed25519 is deterministic), and every
	// tile was created before it, so the checkpoint may go out at once.
	if pub, signed := l.Published(); m.newestN == pub.N && bytes.Equal(m.newestBody, signed) {
		if err := l.Release(pub, signed); err != nil {
			return err
		}
		from, m.released = pub.N, true
	}
	m.mirrored.Store(from)
	if m.cfg.Registerer != nil {
		m.cfg.Registerer.MustRegister(m.uploads, m.failures,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "indelible_mirror_size", Help: "Size of the newest checkpoint in the bucket (checkpoints/<size>) and released."},
				func() float64 { return float64(m.mirrored.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "indelible_mirror_lag_entries", Help: "Entries signed but not yet in the bucket (their checkpoint not yet released)."},
				func() float64 {
					cp, _ := l.Published()
					return float64(cp.N - max(m.mirrored.Load(), 0))
				}))
	}
	lctx, lcancel := context.WithCancel(context.Background())
	m.cancel = lcancel
	go m.run(lctx)
	m.log.Info("mirroring the log to a bucket", "bucket", m.b.name, "resume_from", from)
	return nil
}

// closeTimeout bounds the round in flight at Close, and then the last one.
const closeTimeout = 5 * time.Second

// Close lets the round in flight finish (cancelling it after closeTimeout),
// then gives the bucket up to closeTimeout to receive the last checkpoint
// (Log.Close calls it once every writer was answered, so it is the final
// one). What does not make it is uploaded by the next start, from the
// watermark.
func (m *Mirror) Close() {
	m.closeOnce.Do(func() {
		if m.cancel == nil {
			return
		}
		defer m.cancel()
		close(m.stopping)
		select {
		case <-m.done:
		case <-time.After(closeTimeout):
			m.cancel()
			<-m.done
		}
		if m.l.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		err := m.step(ctx)
		if err != nil && !errors.Is(err, ErrFork) && ctx.Err() == nil {
			// Once more: a request cut short by the cancelled round can
			// leave a transient error behind.
			time.Sleep(100 * time.Millisecond)
			err = m.step(ctx)
		}
		if errors.Is(err, ErrFork) {
			m.l.Halt(err)
		} else if err != nil {
			m.log.Warn("mirror: the last checkpoint did not reach the bucket before shutdown; the next start uploads it", "err", err)
		}
	})
}

// guard refuses a store that is behind the bucket or disagrees with it.
func (m *Mirror) guard(ctx context.Context) error {
	pub, _ := m.l.Published()
	check := func(what string, data []byte) (itlog.Checkpoint, error) {
		cp, err := m.openCheckpoint(data)
		if err != nil {
			return cp, fmt.Errorf("%w: the bucket's %s is not a checkpoint of this log (%w): is the bucket another log's?", ledger.ErrKeyGuard, what, err)
		}
		if cp.N > pub.N {
			return cp, fmt.Errorf("%w: the bucket's %s is at size %d, ahead of the store's %d entries: the store is older than what was published "+
				"(restored from a backup?) or lost data. Restore the newest copy of the store", ledger.ErrKeyGuard, what, cp.N, pub.N)
		}
		if root, err := m.l.TreeHash(cp.N); err != nil || root != cp.Hash {
			return cp, fmt.Errorf("%w: the bucket's %s has root %v at size %d, the store has %v: this store holds another history",
				ledger.ErrKeyGuard, what, cp.Hash, cp.N, root)
		}
		return cp, nil
	}
	data, etag, err := m.b.get(ctx, "checkpoint", maxNote)
	switch {
	case errors.Is(err, errNotFound):
	case err != nil:
		return fmt.Errorf("mirror: reading the bucket's checkpoint: %w", err)
	default:
		cp, err := check("checkpoint", data)
		if err != nil {
			return err
		}
		m.cpBody, m.cpETag, m.cpN = data, etag, cp.N
	}
	// The newest checkpoints/<size>: decimal names do not sort by number,
	// so every name is listed (one request per 1000 checkpoints).
	newest := int64(-1)
	m.newestN = -1
	err = m.b.list(ctx, "checkpoints/", func(key string) error {
		n, err := itlog.ParseSize(strings.TrimPrefix(key, "checkpoints/"))
		if err != nil {
			m.log.Warn("mirror: ignoring an object that is not checkpoints/<size>", "key", key)
			return nil
		}
		newest = max(newest, n)
		return nil
	})
	if err != nil {
		return fmt.Errorf("mirror: listing the bucket's checkpoints: %w", err)
	}
	// The newest one is read and verified even when its name alone is
	// ahead: an object under checkpoints/ that this log's key did not sign
	// is refused as what it is, not as a lost store.
	if newest >= 0 {
		key := "checkpoints/" + strconv.FormatInt(newest, 10)
		data, _, err := m.b.get(ctx, key, maxNote)
		if err != nil {
			return fmt.Errorf("mirror: reading %s: %w", key, err)
		}
		cp, err := check(key, data)
		if err != nil {
			return err
		}
		if cp.N != newest {
			return fmt.Errorf("%w: the bucket's %s holds a checkpoint of size %d", ledger.ErrKeyGuard, key, cp.N)
		}
		m.newestBody, m.newestN = data, newest
	}
	return nil
}

// openCheckpoint verifies a checkpoint note by the log's key and parses it.
func (m *Mirror) openCheckpoint(data []byte) (itlog.Checkpoint, error) {
	if len(data) > maxNote {
		return itlog.Checkpoint{}, fmt.Errorf("larger than %d bytes", maxNote)
	}
	n, err := itlog.OpenNote(data, note.VerifierList(m.cfg.Verifier))
	if err != nil {
		return itlog.Checkpoint{}, err
	}
	cp, err := itlog.ParseCheckpoint(n.Text)
	if err != nil {
		return itlog.Checkpoint{}, err
	}
	if cp.Origin != m.l.Origin() {
		return itlog.Checkpoint{}, fmt.Errorf("origin %q", cp.Origin)
	}
	return cp, nil
}

// run mirrors each new checkpoint until ctx is done or the bucket shows a
// fork.
func (m *Mirror) run(ctx context.Context) {
	defer close(m.done)
	for {
		changed := m.l.Changed()
		err := m.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrFork) {
			m.l.Halt(err)
			if m.cfg.OnFatal != nil {
				m.cfg.OnFatal(err)
			}
			return
		}
		if err != nil {
			m.failures.Inc()
			m.log.Warn("mirror: the bucket is behind; signatures are held back until it has them", "err", err, "mirrored", m.mirrored.Load())
			select {
			case <-time.After(m.cfg.Retry):
			case <-ctx.Done():
				return
			case <-m.stopping:
				return
			}
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-m.stopping:
			return
		}
	}
}

// step mirrors the newest signed checkpoint, releases it, and replaces the
// bucket's checkpoint with the one served.
func (m *Mirror) step(ctx context.Context) error {
	if m.l.Err() != nil {
		return nil // the log stopped: nothing new will be signed
	}
	cp, signed := m.l.Published()
	from := m.mirrored.Load()
	if cp.N > from || !m.released {
		if err := m.uploadTiles(ctx, from, cp.N); err != nil {
			return err
		}
		key := "checkpoints/" + strconv.FormatInt(cp.N, 10)
		if err := m.create(ctx, key, signed, typeCheckpoint, cacheImmutable); err != nil {
			return err
		}
		// The release rule: the signature leaves the node only now that
		// checkpoints/<size> exists in the bucket.
		if err := m.l.Release(cp, signed); err != nil {
			return err
		}
		// The watermark, after the release: a crash before it only
		// uploads the same objects again (their creates compare equal).
		if err := m.l.SetHookState(watermarkName, []byte(strconv.FormatInt(cp.N, 10))); err != nil {
			return err
		}
		m.mirrored.Store(cp.N)
		m.released = true
	}
	served, body := m.l.Checkpoint()
	if body == nil || bytes.Equal(body, m.cpBody) || served.N < m.cpN {
		return nil
	}
	return m.putCheckpoint(ctx, served, body)
}

// uploadTiles creates every tile and bundle that the tree of size n has and
// the tree of size old had not, full and partial.
func (m *Mirror) uploadTiles(ctx context.Context, old, n int64) error {
	if old >= n {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.cfg.Parallel)
	for _, t := range tlog.NewTiles(itlog.TileHeight, old, n) {
		g.Go(func() error { return m.uploadTile(gctx, t) })
		if t.L == 0 {
			e := t
			e.L = itlog.EntriesLevel
			g.Go(func() error { return m.uploadTile(gctx, e) })
		}
	}
	return g.Wait()
}

func (m *Mirror) uploadTile(ctx context.Context, t tlog.Tile) error {
	data, err := m.l.ReadTile(t)
	if err != nil {
		return fmt.Errorf("mirror: reading %s: %w", itlog.TilePath(t), err)
	}
	return m.create(ctx, itlog.TilePath(t), data, typeTile, cacheImmutable)
}

// create writes key create-only. A 412 compares the bytes: equal is an
// earlier upload of the same object, different is ErrFork.
func (m *Mirror) create(ctx context.Context, key string, data []byte, contentType, cache string) error {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	_, err := m.b.put(rctx, key, data, contentType, cache, true, "")
	if err == nil {
		m.uploads.Inc()
		return nil
	}
	if !errors.Is(err, errPrecondition) {
		return fmt.Errorf("mirror: %w", err)
	}
	have, _, err := m.b.get(rctx, key, int64(len(data))+1)
	if err != nil {
		return fmt.Errorf("mirror: comparing %s after a 412: %w", key, err)
	}
	if !bytes.Equal(have, data) {
		return fmt.Errorf("%w: %s in the bucket (%d bytes) differs from the store's (%d bytes)", ErrFork, key, len(have), len(data))
	}
	return nil
}

// putCheckpoint replaces the bucket's checkpoint with body (the served
// checkpoint cp) by compare-and-swap on its ETag, so it never goes back:
// after a 412 it reads the object again, and refuses one that is ahead of
// the store or has another root (another writer: ErrFork).
func (m *Mirror) putCheckpoint(ctx context.Context, cp itlog.Checkpoint, body []byte) error {
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
		etag, err := m.b.put(rctx, "checkpoint", body, typeCheckpoint, cacheNoCache, m.cpETag == "", m.cpETag)
		cancel()
		if err == nil {
			m.cpBody, m.cpETag, m.cpN = body, etag, cp.N
			if etag == "" {
				// No ETag in the answer: read it back for the next swap.
				m.cpETag = "unknown"
			}
			return nil
		}
		if !errors.Is(err, errPrecondition) || attempt >= 3 {
			return fmt.Errorf("mirror: %w", err)
		}
		rctx, cancel = context.WithTimeout(ctx, m.cfg.Timeout)
		data, etag, err := m.b.get(rctx, "checkpoint", maxNote)
		cancel()
		if errors.Is(err, errNotFound) {
			m.cpBody, m.cpETag, m.cpN = nil, "", -1
			continue
		}
		if err != nil {
			return fmt.Errorf("mirror: reading the checkpoint after a 412: %w", err)
		}
		have, err := m.openCheckpoint(data)
		if err != nil {
			return fmt.Errorf("%w: the bucket's checkpoint was replaced by one this log did not sign: %w", ErrFork, err)
		}
		pub, _ := m.l.Published()
		if have.N > pub.N {
			return fmt.Errorf("%w: the bucket's checkpoint was replaced by one at size %d, ahead of this node's %d: another node writes this log",
				ErrFork, have.N, pub.N)
		}
		if root, err := m.l.TreeHash(have.N); err != nil || root != have.Hash {
			return fmt.Errorf("%w: the bucket's checkpoint has root %v at size %d, this log has %v", ErrFork, have.Hash, have.N, root)
		}
		m.cpBody, m.cpETag, m.cpN = data, etag, have.N
		if have.N > cp.N {
			return nil // never go back
		}
	}
}
