// Package witness is a transparency-log witness (c2sp.org/tlog-witness): it
// verifies that each new checkpoint of a known log is consistent with the
// last one it cosigned, cosigns it (c2sp.org/tlog-cosignature,
// cosignature/v1 Ed25519), gossips with peer witnesses, and keeps fork
// evidence when a log shows two inconsistent views.
//
// The witness is another operator than the log: this package never imports
// the ledger. Its state lives in its own pebble store. For every origin the
// witness keeps the latest checkpoint it cosigned; add-checkpoint requests
// for one origin are serialised by a per-origin lock, compare the request's
// old size with the stored size, and write the new state with Sync before the
// cosignature is returned, so no race and no crash can roll the state back
// or make the witness cosign two roots for one size.
//
// The package also holds Client, the HTTP client a log uses to reach a
// witness.
//
// A worked example of one add-checkpoint request (the tessera test log, from
// size 14 to 15):
//
//	old 14
//	GiUtVP0XhIaZ/fl7ReMLgw+9YUtjFAt8kaTdfOe2u/I=
//	N4bcGOdfRQ1JnxGcHq7iDdgpPyH8nQhxShjXKxzWDrU=
//	3cFRCtyHVxAUTugFyRgo30efbl+BVxdTQDIGg5H61SA=
//	bC+VwvrJbalNVjfkdI8kUgs7mJoXrqiXCE7bgnD28pY=
//
//	example.com/log/testdata
//	15
//	rKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=
//
//	— example.com/log/testdata M9e0luh4...
//
// is answered, once the witness stored size 14 before, with one line
// "— <witness name> <base64 cosignature>\n".
package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
	itlog "indelible.dev/tlog"
)

// StoreFormat is the pebble on-disk format the witness store is created
// with and kept at. It is pinned, never pebble.FormatNewest, so that a
// dependency bump cannot silently ratchet the format of existing stores
// (pebble opens older formats but cannot downgrade). Raising it is a
// deliberate change: bump this constant, note it in the release notes, and
// keep the test that opens a store written at the previous value.
const StoreFormat = pebble.FormatValueSeparation

// Limits.
const (
	// MaxBodySize bounds an add-checkpoint or observe request body.
	MaxBodySize = 64 << 10
	// MaxProofLines bounds the consistency proof lines of a request.
	MaxProofLines = itlog.MaxProofHashes
	// DefaultGossipInterval is how often peers are polled when
	// Options.GossipInterval is zero.
	DefaultGossipInterval = time.Minute
	// gossipTimeout bounds one fetch from a peer or a log.
	gossipTimeout = 10 * time.Second
)

// Errors callers branch on (httpapi maps them to status codes).
var (
	// ErrUnknownLog: the checkpoint's origin is not a known log (404).
	ErrUnknownLog = errors.New("witness: unknown log")
	// ErrUntrusted: no signature by a known key of the log verifies, or a
	// signature by a known key fails to verify (403).
	ErrUntrusted = errors.New("witness: checkpoint is not validly signed by the log")
	// ErrForked: the witness holds fork evidence for this log and refuses to
	// cosign it until an operator clears it (403).
	ErrForked = errors.New("witness: fork evidence recorded for this log; refusing to cosign until an operator runs 'indelible witness clear-fork'")
	// ErrMalformed: the request does not follow c2sp.org/tlog-witness (400).
	ErrMalformed = errors.New("witness: malformed request")
	// ErrOldSize: the old size is larger than the checkpoint size (400).
	ErrOldSize = errors.New("witness: old size is larger than the checkpoint size")
	// ErrInconsistent: the checkpoint is not consistent with the witness's
	// view: bad consistency proof, size 0 with a wrong root, old size 0 with
	// a proof, or the same size with a different root (422).
	ErrInconsistent = errors.New("witness: checkpoint is not consistent with the latest cosigned checkpoint")
	// ErrNoCheckpoint: the witness never cosigned a checkpoint of this log (404).
	ErrNoCheckpoint = errors.New("witness: no cosigned checkpoint for this log")
)

// ConflictError is returned when the request's old size is not the size of
// the latest checkpoint the witness cosigned for the origin (409, with body
// "<Known>\n" and Content-Type text/x.tlog.size).
type ConflictError struct {
	Known int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: old size does not match the latest cosigned size %d", e.Known)
}

// KnownSize returns the witness's latest cosigned size. A log's witnessing
// loop matches errors on this method to retry from that size.
func (e *ConflictError) KnownSize() int64 { return e.Known }

// Log is a log the witness knows.
type Log struct {
	// Origin is the checkpoint origin; every verifier must be named Origin.
	Origin string
	// Verifiers are the log's note keys (type 0x01 Ed25519, x/mod).
	Verifiers []note.Verifier
	// URL is the log's tlog-tiles prefix, optional. Gossip uses it to fetch
	// tiles and build consistency proofs between checkpoints of different
	// sizes.
	URL string
}

// Peer is another witness this one gossips with.
type Peer struct {
	// Verifier checks the peer's cosignatures (cosignature/v1).
	Verifier note.Verifier
	// URL is the peer's monitoring prefix: the witness serves
	// <URL>/<hex sha256(origin)>/checkpoint and <URL>/v1/witness/forks.
	URL string
}

// Options configure Open.
type Options struct {
	// Cosigner is the witness key. Required.
	Cosigner *itlog.Cosigner
	// Logs are the known logs. Origins must be distinct.
	Logs []Log
	// Peers are the witnesses to gossip with.
	Peers []Peer
	// GossipInterval is the time between gossip rounds. Default
	// DefaultGossipInterval; negative disables the background loop
	// (GossipOnce still works).
	GossipInterval time.Duration
	// HTTPClient fetches from peers and logs; the witness uses a copy that
	// never follows redirects. Default: a client with a
	// gossipTimeout timeout.
	HTTPClient *http.Client
	// Logger receives operational messages; fork evidence is logged at
	// error level. Default slog.Default().
	Logger *slog.Logger
	// FS is pebble's filesystem. Default: the operating system's.
	FS vfs.FS
	// HighWaterFile is the high-water mark file (see ErrBehindHighWater),
	// kept beside the witness key, outside the store. Empty disables it
	// (tests, and offline tools that never cosign).
	HighWaterFile string
	// ResumeFromHighWater lets Open continue the origins whose store is
	// behind the high-water mark from the marked tree instead of failing
	// with ErrBehindHighWater. An operator sets it once, knowing the store
	// was lost.
	ResumeFromHighWater bool
}

// Stats are counters for metrics. Read them with Witness.Stats.
type Stats struct {
	Cosigned      int64 // cosignatures returned
	Conflicts     int64 // 409 answers
	Rejected      int64 // other failed add-checkpoint requests
	Forks         int64 // fork evidence records created
	GossipRounds  int64 // completed gossip rounds
	GossipErrors  int64 // failed peer or log fetches
	KnownLogs     int64 // configured logs
	ForkedLogs    int64 // logs currently refused because of a fork
	LatestCosigns int64 // unix time of the latest cosignature
}

// Witness is an open witness. All methods are safe for concurrent use.
type Witness struct {
	db       *pebble.DB
	cosigner *itlog.Cosigner
	opts     Options
	log      *slog.Logger
	clients  map[string]*client.Client // by peer or log URL; fixed after Open
	logs     map[string]*logState      // by origin; fixed after Open
	byHash   map[string]*logState      // by lowercase hex SHA-256 of the origin

	evMu     sync.Mutex // serialises evidence writes and IDs
	nextEv   uint64
	evCounts map[string]int // evidence records per origin; guarded by evMu

	hwmMu sync.Mutex // serialises high-water mark writes
	hwm   hwm        // guarded by hwmMu

	obs observeLimits

	stats struct {
		cosigned, conflicts, rejected, forks, gossipRounds, gossipErrors, latest atomic.Int64
		stateWrites, hwmWrites                                                   atomic.Int64
	}

	stop    context.CancelFunc
	stopped chan struct{}
	closeMu sync.Mutex
	closed  bool
}

// logState is the witness's view of one log. mu serialises every
// state-changing operation for the origin.
type logState struct {
	Log
	verifiers note.Verifiers

	mu      sync.Mutex
	state   cosigned // guarded by mu
	forked  bool     // guarded by mu
	resumed bool     // state was seeded from the high-water mark; guarded by mu
}

// cosigned is the stored state of one origin: the latest cosigned tree and
// its checkpoint note (log signatures and our cosignature). note is nil if
// the witness never cosigned a checkpoint of the origin (tree is then the
// empty tree).
type cosigned struct {
	tree tlog.Tree
	note []byte
}

// OriginHash returns the lowercase hex SHA-256 of origin, the path segment
// of the monitoring endpoint.
func OriginHash(origin string) string {
	h := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(h[:])
}

// Open opens (or creates) the witness store in dir and starts the gossip
// loop if peers are configured.
func Open(dir string, opts Options) (*Witness, error) {
	if opts.Cosigner == nil {
		return nil, errors.New("witness: Options.Cosigner is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.GossipInterval == 0 {
		opts.GossipInterval = DefaultGossipInterval
	}
	w := &Witness{
		cosigner: opts.Cosigner,
		opts:     opts,
		log:      opts.Logger,
		logs:     make(map[string]*logState),
		byHash:   make(map[string]*logState),
		stopped:  make(chan struct{}),
	}
	for _, l := range opts.Logs {
		if !itlog.ValidOrigin(l.Origin) {
			return nil, fmt.Errorf("witness: invalid log origin %q", l.Origin)
		}
		if len(l.Verifiers) == 0 {
			return nil, fmt.Errorf("witness: log %q has no verifier key", l.Origin)
		}
		for _, v := range l.Verifiers {
			if v.Name() != l.Origin {
				return nil, fmt.Errorf("witness: key %q of log %q is not named after its origin", v.Name(), l.Origin)
			}
		}
		if _, dup := w.logs[l.Origin]; dup {
			return nil, fmt.Errorf("witness: log %q configured twice", l.Origin)
		}
		ls := &logState{Log: l, verifiers: note.VerifierList(l.Verifiers...)}
		w.logs[l.Origin] = ls
		w.byHash[OriginHash(l.Origin)] = ls
	}
	for _, p := range opts.Peers {
		if p.Verifier == nil || p.URL == "" {
			return nil, errors.New("witness: a peer needs a verifier key and a URL")
		}
	}
	for _, p := range opts.Peers {
		if _, isLog := w.logs[p.Verifier.Name()]; isLog {
			return nil, fmt.Errorf("witness: peer key %q is named like a known log: a peer must never stand in for a log", p.Verifier.Name())
		}
	}
	w.obs = newObserveLimits()
	if err := w.newClients(); err != nil {
		return nil, err
	}
	db, err := pebble.Open(dir, &pebble.Options{FS: opts.FS, Logger: pebbleLogger{opts.Logger}, FormatMajorVersion: StoreFormat})
	if err != nil {
		return nil, fmt.Errorf("witness: opening store %s: %w", dir, err)
	}
	w.db = db
	if err := w.load(); err != nil {
		db.Close()
		return nil, err
	}
	if opts.HighWaterFile != "" {
		if err := w.checkHighWater(); err != nil {
			db.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	if len(opts.Peers) > 0 && opts.GossipInterval > 0 {
		go w.gossipLoop(ctx)
	} else {
		close(w.stopped)
	}
	return w, nil
}

// load reads the stored state of every known log and the evidence counter.
func (w *Witness) load() error {
	for origin, ls := range w.logs {
		st, err := w.readState(origin)
		if err != nil {
			return err
		}
		ls.state = st
		forked, err := w.isForked(origin)
		if err != nil {
			return err
		}
		ls.forked = forked
	}
	last, err := w.lastEvidenceID()
	if err != nil {
		return err
	}
	w.nextEv = last + 1
	forks, err := w.Forks()
	if err != nil {
		return err
	}
	w.evCounts = make(map[string]int)
	for _, e := range forks {
		w.evCounts[e.Origin]++
	}
	return nil
}

// Close stops gossip and closes the store. Requests in progress finish first.
func (w *Witness) Close() error {
	w.closeMu.Lock()
	defer w.closeMu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.stop()
	<-w.stopped
	// Take every origin lock so no add-checkpoint is between its checks and
	// its commit when the store closes.
	for _, ls := range w.logs {
		ls.mu.Lock()
		defer ls.mu.Unlock()
	}
	return w.db.Close()
}

// Name returns the witness's cosigner name.
func (w *Witness) Name() string { return w.cosigner.Name() }

// VKey returns the witness's cosignature/v1 verifier key.
func (w *Witness) VKey() string { return w.cosigner.VKey() }

// Stats returns a snapshot of the witness's counters.
func (w *Witness) Stats() Stats {
	s := Stats{
		Cosigned:      w.stats.cosigned.Load(),
		Conflicts:     w.stats.conflicts.Load(),
		Rejected:      w.stats.rejected.Load(),
		Forks:         w.stats.forks.Load(),
		GossipRounds:  w.stats.gossipRounds.Load(),
		GossipErrors:  w.stats.gossipErrors.Load(),
		KnownLogs:     int64(len(w.logs)),
		LatestCosigns: w.stats.latest.Load(),
	}
	for _, ls := range w.logs {
		ls.mu.Lock()
		if ls.forked {
			s.ForkedLogs++
		}
		ls.mu.Unlock()
	}
	return s
}

// addRequest is a parsed add-checkpoint body.
type addRequest struct {
	old   int64
	proof tlog.TreeProof
	note  []byte
}

// parseAddCheckpoint parses an add-checkpoint body strictly:
// "old <N>\n", at most MaxProofLines base64 hashes each on its own line, an
// empty line, then the signed checkpoint note. Errors wrap ErrMalformed.
func parseAddCheckpoint(body []byte) (addRequest, error) {
	bad := func(format string, args ...any) (addRequest, error) {
		return addRequest{}, fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
	if len(body) > MaxBodySize {
		return bad("body larger than %d bytes", MaxBodySize)
	}
	line := func() (string, bool) {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			return "", false
		}
		l := string(body[:i])
		body = body[i+1:]
		return l, true
	}
	l, ok := line()
	if !ok {
		return bad("missing old size line")
	}
	s, ok := strings.CutPrefix(l, "old ")
	if !ok {
		return bad("first line %q is not \"old <size>\"", l)
	}
	old, err := itlog.ParseSize(s)
	if err != nil {
		return bad("old size: %v", err)
	}
	r := addRequest{old: old, proof: tlog.TreeProof{}}
	for {
		l, ok = line()
		if !ok {
			return bad("missing empty line before the checkpoint")
		}
		if l == "" {
			break
		}
		if len(r.proof) >= MaxProofLines {
			return bad("more than %d consistency proof lines", MaxProofLines)
		}
		h, err := itlog.ParseHash(l)
		if err != nil {
			return bad("proof line: %v", err)
		}
		r.proof = append(r.proof, h)
	}
	if len(body) == 0 {
		return bad("missing checkpoint")
	}
	r.note = body
	return r, nil
}

// openCheckpoint parses a signed checkpoint note strictly and verifies it
// with the log's keys. It returns the log, the parsed checkpoint and the
// verified log signature lines (only those: unknown signatures are dropped).
func (w *Witness) openCheckpoint(msg []byte) (*logState, itlog.Checkpoint, []byte, error) {
	text, _, ok := itlog.SplitNote(msg)
	if !ok {
		return nil, itlog.Checkpoint{}, nil, fmt.Errorf("%w: checkpoint is not a signed note", ErrMalformed)
	}
	cp, err := itlog.ParseCheckpoint(string(text))
	if err != nil {
		return nil, itlog.Checkpoint{}, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ls := w.logs[cp.Origin]
	if ls == nil {
		return nil, itlog.Checkpoint{}, nil, fmt.Errorf("%w: %q", ErrUnknownLog, cp.Origin)
	}
	n, err := itlog.OpenNote(msg, ls.verifiers)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return nil, itlog.Checkpoint{}, nil, fmt.Errorf("%w: no signature by a known key of %q", ErrUntrusted, cp.Origin)
		case errors.As(err, &invalid):
			return nil, itlog.Checkpoint{}, nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
		}
		return nil, itlog.Checkpoint{}, nil, fmt.Errorf("%w: checkpoint note: %v", ErrMalformed, err)
	}
	if n.Text != string(text) || len(n.Sigs) == 0 {
		return nil, itlog.Checkpoint{}, nil, fmt.Errorf("%w: checkpoint note text", ErrMalformed)
	}
	var sigs []byte
	for _, s := range n.Sigs {
		sigs = fmt.Appendf(sigs, "— %s %s\n", s.Name, s.Base64)
	}
	return ls, cp, sigs, nil
}

// AddCheckpoint processes a c2sp.org/tlog-witness add-checkpoint request
// body and returns the cosignature line(s) to send back. It returns errors
// matching ErrMalformed, ErrUnknownLog, ErrUntrusted, ErrOldSize,
// *ConflictError, ErrInconsistent or ErrForked, checked in the spec's order;
// on any error the stored state is unchanged. The new state is durable
// (pebble Sync) before AddCheckpoint returns the cosignature.
func (w *Witness) AddCheckpoint(ctx context.Context, body []byte) ([]byte, error) {
	cosig, err := w.addCheckpoint(body)
	var ce *ConflictError
	switch {
	case err == nil:
		w.stats.cosigned.Add(1)
		w.stats.latest.Store(time.Now().Unix())
	case errors.As(err, &ce):
		w.stats.conflicts.Add(1)
	default:
		w.stats.rejected.Add(1)
	}
	return cosig, err
}

func (w *Witness) addCheckpoint(body []byte) ([]byte, error) {
	req, err := parseAddCheckpoint(body)
	if err != nil {
		return nil, err
	}
	ls, cp, logSigs, err := w.openCheckpoint(req.note)
	if err != nil {
		return nil, err
	}
	if req.old > cp.N {
		return nil, fmt.Errorf("%w: old %d, checkpoint %d", ErrOldSize, req.old, cp.N)
	}

	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.forked {
		return nil, fmt.Errorf("%w (log %q)", ErrForked, cp.Origin)
	}
	st := ls.state
	if req.old != st.tree.N {
		return nil, &ConflictError{Known: st.tree.N}
	}
	if cp.N == 0 && cp.Hash != itlog.EmptyRoot {
		return nil, fmt.Errorf("%w: size 0 with a root that is not the empty tree's", ErrInconsistent)
	}
	if req.old == 0 && len(req.proof) != 0 {
		return nil, fmt.Errorf("%w: old size 0 with a non-empty proof", ErrInconsistent)
	}
	if req.old == cp.N && cp.Hash != st.tree.Hash {
		if st.note != nil {
			// Two checkpoints of one size with different roots, both
			// signed by the log: conclusive evidence of a fork.
			w.recordFork(ls, Evidence{
				Origin: cp.Origin,
				Reason: fmt.Sprintf("two roots for size %d", cp.N),
				Source: "add-checkpoint",
				A:      string(st.note),
				B:      string(req.note),
			})
		}
		return nil, fmt.Errorf("%w: size %d is already cosigned with a different root", ErrInconsistent, cp.N)
	}
	if err := itlog.CheckConsistency(req.proof, req.old, st.tree.Hash, cp.N, cp.Hash); err != nil {
		return nil, fmt.Errorf("%w: consistency proof from %d to %d does not verify", ErrInconsistent, req.old, cp.N)
	}
	if req.old == cp.N && st.note != nil {
		// The checkpoint the witness already holds: cosign it again
		// without touching the store (a rewrite would let anyone force
		// one fsync per request). The mark normally covers it already;
		// if an earlier mark write failed, it is raised first.
		if err := w.raiseHighWater(cp.Origin, cp.Tree); err != nil {
			return nil, err
		}
		signed, err := note.Sign(&note.Note{Text: cp.String()}, w.cosigner)
		if err != nil {
			return nil, fmt.Errorf("witness: cosigning: %w", err)
		}
		return signed[len(cp.String())+1:], nil
	}

	// Cosign a re-encoding of what we parsed, never the received bytes.
	text := cp.String()
	signed, err := note.Sign(&note.Note{Text: text}, w.cosigner)
	if err != nil {
		return nil, fmt.Errorf("witness: cosigning: %w", err)
	}
	cosig := signed[len(text)+1:]
	stored := make([]byte, 0, len(text)+1+len(logSigs)+len(cosig))
	stored = append(stored, text...)
	stored = append(stored, '\n')
	stored = append(stored, logSigs...)
	stored = append(stored, cosig...)
	next := cosigned{tree: cp.Tree, note: stored}
	// Durability point: the new state is synced before the cosignature
	// leaves this function; the origin lock makes the compare (old size
	// against st) and this swap atomic.
	if err := w.writeState(cp.Origin, next); err != nil {
		return nil, err
	}
	ls.state = next
	ls.resumed = false
	// Durability point: the high-water mark covers the new tree before the
	// cosignature is released. If this fails, the store is ahead of the
	// mark, which is safe (Open repairs it) and nothing was released.
	if err := w.raiseHighWater(cp.Origin, cp.Tree); err != nil {
		return nil, err
	}
	return cosig, nil
}

// Checkpoint returns the latest checkpoint the witness cosigned for origin,
// with the log signatures it verified and its cosignature, or ErrUnknownLog
// or ErrNoCheckpoint.
func (w *Witness) Checkpoint(origin string) ([]byte, error) {
	ls := w.logs[origin]
	if ls == nil {
		return nil, ErrUnknownLog
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.state.note == nil {
		return nil, ErrNoCheckpoint
	}
	return ls.state.note, nil
}

// CheckpointByHash is Checkpoint for the origin whose lowercase hex SHA-256
// is hash (the monitoring endpoint's path).
func (w *Witness) CheckpointByHash(hash string) ([]byte, error) {
	ls := w.byHash[hash]
	if ls == nil {
		return nil, ErrUnknownLog
	}
	return w.Checkpoint(ls.Origin)
}

// Origins returns the known logs' origins.
func (w *Witness) Origins() []string {
	out := make([]string, 0, len(w.logs))
	for o := range w.logs {
		out = append(out, o)
	}
	return out
}

// pebbleLogger routes pebble's messages to slog, dropping its chatty info.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error("pebble fatal: " + msg)
	panic("pebble: " + msg)
}
