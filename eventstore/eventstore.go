// Package eventstore is the audit layer over the ledger: it turns validated
// events into log entries (salted commitments) and stores, in the same
// pebble batch through the ledger's sidecar seam, the sealed payload
// (AES-256-GCM under a per-UTC-day data key wrapped by the master key) and
// the secondary indexes, whose keys are blind indexes (HMAC-SHA-256 under a
// key derived from the master key). No event value is ever written in
// plaintext. See docs/events.md for the key space.
//
// Everything costly (canonical bytes, salt, commitment, sealing, index keys)
// is computed before the entries are queued; the sidecar (ledger.AppendBatch)
// only sets precomputed bytes.
package eventstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"indelible.dev/api"
	"indelible.dev/event"
	"indelible.dev/ledger"
)

// Query limits (contract): those of the events API.
const (
	DefaultLimit = api.DefaultLimit
	MaxLimit     = api.MaxLimit
)

// Errors callers branch on.
var (
	ErrNotFound  = errors.New("events: no such event")            // 404
	ErrBadQuery  = api.ErrBadQuery                                // 400; wrapped with the parameter named
	ErrBadCursor = errors.New("events: bad cursor")               // 400
	ErrNotEvent  = errors.New("events: entry is not an event")    // 404: an index written by no event
	ErrDuplicate = errors.New("events: id in flight from writer") // 409: same id, same writer, concurrently
)

// Keyring wraps and unwraps the per-day data keys and gives the blind-index
// key. The master-key implementation is NewKeyring; a KMS can replace it.
type Keyring interface {
	// WrapKey seals a data key for the given UTC day (days since the Unix epoch).
	WrapKey(day int64, key []byte) ([]byte, error)
	// UnwrapKey opens what WrapKey returned for that day.
	UnwrapKey(day int64, wrapped []byte) ([]byte, error)
	// IndexKey is the HMAC-SHA-256 key of blind indexes and idempotency keys.
	IndexKey() []byte
}

// Config configures Open.
type Config struct {
	Log     *ledger.Log      // required
	Keyring Keyring          // required
	Now     func() time.Time // default time.Now
	Logger  *slog.Logger     // default slog.Default()
	// Retention, if positive, has a background job shred every UTC day
	// (of the server's receive time) entirely older than this: see Retain.
	Retention time.Duration
	// RetentionEvery is how often the job runs. Default 1h.
	RetentionEvery time.Duration
	// ScanKeys and ScanDecrypts are the scan budget of one page of a
	// listing (see MaxScanKeys). Default MaxScanKeys and MaxScanDecrypts.
	ScanKeys, ScanDecrypts int
}

// Layer is the open events layer. Safe for concurrent use.
type Layer struct {
	log    *ledger.Log
	keys   Keyring
	now    func() time.Time
	logger *slog.Logger
	blind  *blinder

	dmu  sync.Mutex
	days map[int64]*dayKey // data keys in use, unwrapped (seal.go)

	stateAEADs sync.Map // label -> cipher.AEAD (server.go)

	imu      sync.Mutex
	inflight map[[blindSize]byte]chan struct{} // idempotency keys being appended
	ids      *idFilter                         // the stored idempotency keys, probably (idfilter.go)

	// Lifecycle (erase.go, retention.go): emu serializes erasures and
	// retention passes; lmu guards what retention shredded, the purges
	// pending and the clock check. Goroutines: the background purger
	// (purgeLoop, woken by purgeKick) always, the retention job
	// (retentionLoop) with Config.Retention, and a one-off finishing a
	// retention pass a crash interrupted; Close stops them all (stop, wg).
	emu        sync.Mutex
	lmu        sync.RWMutex
	shredded   []shredRange
	shedding   map[int64]bool // days being shredded
	purges     map[int64]bool // pending-purge records ('r' 'p' seq) not yet done
	clockAhead time.Duration  // see LifecycleStatus
	clockHeld  int64          // see LifecycleStatus
	retention  time.Duration
	purgeKick  chan struct{}
	stop       chan struct{}
	wg         sync.WaitGroup
	// sheddingAny is len(shedding) > 0 (set under lmu), so that opening a
	// payload need not take lmu when no day is being shredded.
	sheddingAny atomic.Bool

	// seqDay is the day of the last payload sequenced (sidecars only; see
	// batch.sidecar).
	seqDay atomic.Int64

	scan scanBudget // a page's scan budget

	closed atomic.Bool

	// v3From is an index from which on every payload is, probably, of
	// version 3 (found at Open; see payloadV3From): fetch reads no 't'
	// value for candidates from there on. A hint only: a version-2 payload
	// without its 't' value reads it when opened.
	v3From atomic.Int64
	// erasures counts the erasures committed: a stream that read a chunk
	// of payloads before one looks again before opening each (a payload's
	// copy opens without any lookup that would find its event erased).
	erasures atomic.Int64
	// sealV2 makes Append seal version-2 payloads, as the previous release
	// did: tests only, to build mixed stores.
	sealV2 bool

	// committed, if set, is told of each event once durable (OnCommit).
	committed atomic.Pointer[func(index int64, e *event.Event, eventBytes []byte)]
}

// Open opens the events layer over an open log. It does not own the log.
func Open(cfg Config) (*Layer, error) {
	if cfg.Log == nil || cfg.Keyring == nil {
		return nil, errors.New("events: Config.Log and Config.Keyring are required")
	}
	ik := cfg.Keyring.IndexKey()
	if len(ik) < 32 {
		return nil, fmt.Errorf("%w: index key of %d bytes, want at least 32", ErrBadKey, len(ik))
	}
	l := &Layer{
		log:       cfg.Log,
		keys:      cfg.Keyring,
		now:       cfg.Now,
		logger:    cfg.Logger,
		blind:     newBlinder(ik),
		days:      make(map[int64]*dayKey),
		inflight:  make(map[[blindSize]byte]chan struct{}),
		ids:       newIDFilter(),
		shedding:  make(map[int64]bool),
		purges:    make(map[int64]bool),
		retention: cfg.Retention,
		purgeKick: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		scan:      scanBudget{keys: cmp.Or(cfg.ScanKeys, MaxScanKeys), decrypts: cmp.Or(cfg.ScanDecrypts, MaxScanDecrypts)},
	}
	l.seqDay.Store(math.MinInt64)
	if l.now == nil {
		l.now = time.Now
	}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	if err := l.openLifecycle(); err != nil {
		return nil, err
	}
	v3From, err := l.payloadV3From()
	if err != nil {
		return nil, err
	}
	l.v3From.Store(v3From)
	l.lmu.RLock()
	pending, shedding := len(l.purges) > 0, len(l.shedding) > 0
	l.lmu.RUnlock()
	l.wg.Add(2)
	go l.purgeLoop(pending)
	go l.buildIDFilter()
	if shedding {
		// A retention pass a crash interrupted: its days are already
		// unreadable and partly destroyed; finish them whatever the
		// retention flag says now.
		l.wg.Add(1)
		go l.finishShedding()
	}
	if cfg.Retention > 0 {
		every := cfg.RetentionEvery
		if every <= 0 {
			every = time.Hour
		}
		l.wg.Add(1)
		go l.retentionLoop(every)
	}
	return l, nil
}

// LifecycleStatus is the state of erasure and retention, for metrics and
// /readyz.
type LifecycleStatus struct {
	// PendingPurges counts the erasures and retention passes whose
	// destroyed bytes may still be in the store's files (their purge was
	// cut short and is being retried in the background).
	PendingPurges int
	// ClockAhead is, at the last retention pass, how far the clock was past
	// the newest event's received_at when that was more than MaxClockLead
	// (0 otherwise): the pass shredded only what was due at that event's
	// time plus MaxClockLead.
	ClockAhead time.Duration
	// ClockHeld counts the retention passes held back by the clock.
	ClockHeld int64
}

// Lifecycle returns the state of erasure and retention.
func (l *Layer) Lifecycle() LifecycleStatus {
	l.lmu.RLock()
	defer l.lmu.RUnlock()
	return LifecycleStatus{PendingPurges: len(l.purges), ClockAhead: l.clockAhead, ClockHeld: l.clockHeld}
}

// Close stops the layer's goroutines (the log is closed by its owner): the
// retention job, after its current pass, and the background purger. Later
// calls fail.
func (l *Layer) Close() error {
	if !l.closed.Swap(true) {
		close(l.stop)
	}
	l.wg.Wait()
	return nil
}

// ErrClosed means the layer was closed.
var ErrClosed = errors.New("events: closed")

// Appended is the result of appending one event (its wire form is
// api.Appended, which httpapi fills in).
type Appended struct {
	Index int64
	ID    string
	// Duplicate is true when the writer's id was seen before from the same
	// writer: Index is then the original event's and nothing was stored.
	Duplicate bool
}

// Append finishes each event (received_at = now, submitted_by), stores it
// and returns the results in request order once every event is durable.
// Events carrying an id already used by the same submitter return the
// original index and store nothing. Errors: ledger.ErrPushback (retry),
// ErrDuplicate, *event.Error for an event over the size limit, ledger's
// fatal errors.
//
// Append is the writers' path: an event with an action or source reserved
// for the server's own records is refused with an *event.Error wrapping
// event.ErrReserved (see event.Reserved) and nothing of the request is
// stored. The server records through Record.
func (l *Layer) Append(ctx context.Context, submittedBy string, evs []event.Event) ([]Appended, error) {
	for i := range evs {
		if err := event.Reserved(&evs[i], i); err != nil {
			return nil, err
		}
	}
	return l.append(ctx, submittedBy, evs)
}

// Record is the server's own path into the log, the only one for its
// records: every event must have an action starting with
// event.ServerActionPrefix and the source event.ServerSource (an empty
// source is set to it). submittedBy is who the server acts for (a token's
// name, or ServerActor). writes, if not nil, is called inside the very
// batch that appends the events, with the index of the first one, so what
// the server records and what it changes commit together or not at all
// (the way Erase commits its deletions with its indelible.erase event).
// Errors: those of Append, and ErrNotServerRecord.
func (l *Layer) Record(ctx context.Context, submittedBy string, evs []event.Event, writes func(index int64, w ledger.Writer) error) ([]Appended, error) {
	evs = append([]event.Event(nil), evs...)
	for i := range evs {
		e := &evs[i]
		if e.Source == "" {
			e.Source = event.ServerSource
		}
		if !event.IsServerRecord(e) || e.Source != event.ServerSource {
			return nil, fmt.Errorf("%w: event %d has action %q and source %q", ErrNotServerRecord, i, e.Action, e.Source)
		}
		if writes != nil && e.ID != "" {
			// An id could make the event a duplicate, appended by no batch:
			// the writes would then be lost without their record.
			return nil, fmt.Errorf("%w: event %d has an id, and writes must commit with it", ErrNotServerRecord, i)
		}
	}
	return l.appendAt(ctx, l.now(), submittedBy, evs, writes)
}

// ErrNotServerRecord is Record given an event that is not a server record
// (a programming error: 500).
var ErrNotServerRecord = errors.New("events: not a server record")

// Record is the unit every read returns: the event decoded, its canonical
// bytes, its salt and its commitment (the log entry at Index). Its wire form
// is Wire's.
type Record struct {
	Index      int64
	Event      event.Event
	EventBytes []byte
	Salt       [event.SaltSize]byte
	Commitment [32]byte
}

// Wire returns r's form on the wire (the events API, the stream, evidence
// bundles): its event bytes, not copied, are the event object verbatim.
func (r *Record) Wire() api.Record {
	return api.Record{Index: r.Index, Event: r.EventBytes, EventBytes: r.EventBytes, Salt: r.Salt[:], Commitment: r.Commitment[:]}
}

// Get returns the record at index i, if i is below the published size and
// was written by an event (ErrNotFound otherwise; ErrNotEvent for an entry
// written by no event). It decrypts the payload and checks that it opens the
// log entry at i (ErrCorrupt otherwise).
func (l *Layer) Get(i int64) (Record, error) { return l.get(i) }

// Query is a filtered listing: filters AND together, exact match. It is the
// events API's query, which httpapi parses (api.ParseQuery).
type Query = api.Query

// Page is one page of a listing, newest first by time, ties by index
// (higher first). NextCursor is "" on the last page.
type Page struct {
	Records    []Record
	NextCursor string
}

// List returns one page of q. A cursor that was not issued for the same
// filters by this server is ErrBadCursor (cursors are authenticated).
//
// A page examines at most MaxScanKeys index keys and decrypts at most
// MaxScanDecrypts events; past either it fails with ErrScanBudget.
func (l *Layer) List(q Query) (Page, error) { return l.ListContext(context.Background(), q) }

// ListContext is List stopping with ctx's error once ctx is done (the
// reader left, the server is shutting down).
func (l *Layer) ListContext(ctx context.Context, q Query) (Page, error) {
	b := l.scan
	return l.list(ctx, q, &b)
}

// Receipt returns the c2sp.org/tlog-proof receipt of event i: extra =
// salt || event_bytes, an inclusion proof to the newest published (with
// witnessing, quorum-cosigned) checkpoint, which it carries verbatim.
func (l *Layer) Receipt(i int64) ([]byte, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	cp, signed := l.log.Checkpoint()
	return l.receipt(i, cp, signed)
}

// WaitReceipts waits until a published checkpoint covers every index, then
// returns their receipts in the same order.
func (l *Layer) WaitReceipts(ctx context.Context, indexes []int64) ([][]byte, error) {
	return l.waitReceipts(ctx, indexes)
}

// Stream calls send for every event matching q with index > after, in index
// order, first those already stored, then each new one as it is published,
// until ctx is done or send fails. It never skips an event. An after at or
// past the published size is ErrBadCursor.
func (l *Layer) Stream(ctx context.Context, q Query, after int64, send func(Record) error) error {
	return l.stream(ctx, q, after, send)
}

// Matches reports whether the event stored at index i is e as submittedBy
// sent it: e finished with the stored event's received_at and submittedBy
// has the stored event's canonical bytes. A duplicate append (same id) may
// be answered with the stored event's receipt only then, or to a token that
// may read the stored event (recorded as a read): a writer must not read
// back, through an id, an event it cannot otherwise read. An event whose
// bytes are gone (erased, shredded) matches nothing.
func (l *Layer) Matches(i int64, submittedBy string, e event.Event) (bool, error) {
	r, err := l.get(i)
	if errors.Is(err, ErrGone) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	e.Finish(r.Event.ReceivedAt, submittedBy)
	b, err := event.Canonical(e)
	if err != nil {
		return false, nil // not an event the store could hold
	}
	return bytes.Equal(b, r.EventBytes), nil
}
