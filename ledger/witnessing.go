package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

// Witnessing (c2sp.org/tlog-witness, client side).
//
// Witnessing runs beside ingestion, never in front of it: after each publish
// the newest log-signed checkpoint is sent to every witness concurrently,
// one round at a time (a round in flight is never queued behind: the next
// round takes whatever is newest when it starts). The checkpoint returned by
// Checkpoint (served at /checkpoint) becomes the newest one that gathered at
// least Quorum verified cosignatures, carrying them. Reads (tiles, proofs)
// stay bounded by the newest log-signed checkpoint, which may be ahead of the
// witnessed one: a client verifying a witnessed checkpoint can always fetch
// what it implies.

// Defaults for WitnessConfig.
const (
	// DefaultWitnessTimeout bounds one add-checkpoint request.
	DefaultWitnessTimeout = 10 * time.Second
	// DefaultWitnessRetry is the pause before retrying witnesses that failed
	// or a round that missed the quorum, when no new checkpoint arrives.
	DefaultWitnessRetry = time.Second
	// maxConflictRetries bounds the 409 retries of one witness in one round.
	maxConflictRetries = 3
)

// keyWitnessed stores the newest witnessed checkpoint note, so a restarted
// log serves it until its first round meets the quorum. It is a cache: it is
// written without Sync and checked against the tree on open.
var keyWitnessed = []byte("mwitnessed")

// Witness is one witness the log asks to cosign its checkpoints.
// witness.Client (indelible.dev/witness) implements it over HTTP.
type Witness interface {
	// Verifier checks the witness's cosignatures (cosignature/v1).
	Verifier() note.Verifier
	// AddCheckpoint sends the signed checkpoint note with the RFC 6962
	// consistency proof from size old, and returns the witness's answer:
	// cosignature lines, not yet verified. If the witness knows a different
	// size (HTTP 409), the error has a method KnownSize() int64 returning it
	// (found with errors.As), and the log retries from that size.
	AddCheckpoint(ctx context.Context, old int64, proof tlog.TreeProof, checkpoint []byte) ([]byte, error)
}

// WitnessConfig configures witnessing. The zero value disables it.
type WitnessConfig struct {
	// Witnesses are asked to cosign every new checkpoint.
	Witnesses []Witness
	// Quorum is how many verified cosignatures a checkpoint needs to be
	// served. Default (0): all witnesses.
	Quorum int
	// Timeout bounds each add-checkpoint request. Default DefaultWitnessTimeout.
	Timeout time.Duration
	// Retry is the pause before retrying after a failure. Default DefaultWitnessRetry.
	Retry time.Duration
	// OnRound, if set, is called after each round (for metrics and logs).
	OnRound func(WitnessStats)
}

// WitnessStats describes the state of witnessing after a round.
type WitnessStats struct {
	Published int64           // size of the newest log-signed checkpoint
	Witnessed int64           // size of the newest checkpoint meeting the quorum (-1: none yet)
	Round     time.Duration   // duration of the last round
	Witnesses []WitnessStatus // one per configured witness, in order
}

// WitnessStatus is the log's view of one witness.
type WitnessStatus struct {
	Name      string
	Known     int64  // the size the witness last cosigned (as far as the log knows)
	Failures  int64  // failed requests so far
	LastError string // the latest failure, "" after a success
}

type witnessing struct {
	l    *Log
	cfg  WitnessConfig
	ws   []*witnessPeer
	wake chan struct{}

	served atomic.Pointer[published] // newest checkpoint meeting the quorum

	mu   sync.Mutex // guards last and the peers' status fields
	last WitnessStats

	cancel context.CancelFunc
	done   chan struct{}  // closed when run returns
	sends  sync.WaitGroup // requests in flight, possibly beyond their round
}

type witnessPeer struct {
	w Witness
	// Guarded by witnessing.mu; written by the peer's request goroutine.
	busy     bool // a request is in flight (at most one per witness)
	known    int64
	tree     tlog.Tree // the tree the line cosigns
	line     []byte    // verified cosignature line for tree, or nil
	failures int64
	lastErr  string
}

// startWitnessing starts the witnessing loop if cfg has witnesses. Open
// calls it once the first checkpoint is published.
func (l *Log) startWitnessing(cfg WitnessConfig) error {
	if len(cfg.Witnesses) == 0 {
		return nil
	}
	if cfg.Quorum <= 0 {
		cfg.Quorum = len(cfg.Witnesses)
	}
	if cfg.Quorum > len(cfg.Witnesses) {
		return fmt.Errorf("ledger: witness quorum %d with only %d witnesses", cfg.Quorum, len(cfg.Witnesses))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultWitnessTimeout
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultWitnessRetry
	}
	ctx, cancel := context.WithCancel(context.Background())
	wt := &witnessing{l: l, cfg: cfg, wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	for _, w := range cfg.Witnesses {
		wt.ws = append(wt.ws, &witnessPeer{w: w})
	}
	wt.load()
	l.wit = wt
	go wt.run(ctx)
	wt.notify()
	return nil
}

// load restores the newest witnessed checkpoint stored by an earlier run,
// if it is still a checkpoint of this tree.
func (wt *witnessing) load() {
	v, err := wt.l.get(keyWitnessed)
	if err != nil {
		return
	}
	text, _, ok := itlog.SplitNote(v)
	if !ok {
		return
	}
	cp, err := itlog.ParseCheckpoint(string(text))
	if err != nil || cp.Origin != wt.l.origin {
		return
	}
	if root, err := wt.l.TreeHash(cp.N); err != nil || root != cp.Hash {
		wt.l.log.Warn("ignoring a stored witnessed checkpoint that does not match the tree", "size", cp.N)
		return
	}
	wt.served.Store(&published{cp: cp, signed: v})
}

// notify wakes the loop; it never blocks.
func (wt *witnessing) notify() {
	select {
	case wt.wake <- struct{}{}:
	default:
	}
}

// close stops the loop and waits for it (in-flight requests are cancelled).
func (wt *witnessing) close() {
	wt.cancel()
	<-wt.done
	wt.sends.Wait()
}

func (wt *witnessing) run(ctx context.Context) {
	defer close(wt.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wt.wake:
		case <-retry.C:
		}
		target := wt.l.pub.Load()
		if !wt.round(ctx, target) && ctx.Err() == nil {
			retry.Reset(wt.cfg.Retry)
		}
	}
}

// round sends target to every witness that has not cosigned it and has no
// request in flight, and serves target as soon as the quorum is met. It
// returns once the quorum is met or every request of the round is answered:
// a slow witness keeps its one request in flight beyond the round, and
// rejoins the round after it answers, so it delays only itself. It reports
// whether every witness has cosigned target.
func (wt *witnessing) round(ctx context.Context, target *published) bool {
	start := time.Now()
	done := make(chan struct{}, len(wt.ws))
	pending := 0
	wt.mu.Lock()
	for _, p := range wt.ws {
		if p.busy || (p.line != nil && p.tree == target.cp.Tree) {
			continue
		}
		p.busy = true
		pending++
		wt.sends.Add(1)
		go func() {
			defer wt.sends.Done()
			err := wt.send(ctx, p, target)
			wt.mu.Lock()
			p.busy = false
			if err != nil {
				p.failures++
				p.lastErr = err.Error()
			} else {
				p.lastErr = ""
			}
			wt.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				wt.l.log.Warn("witness did not cosign", "witness", p.w.Verifier().Name(), "size", target.cp.N, "err", err)
			}
			done <- struct{}{}
			wt.notify() // a round may now include this witness again
		}()
	}
	wt.mu.Unlock()
	served, n := wt.serveIfQuorum(target)
	for ; pending > 0 && !served; pending-- {
		select {
		case <-done:
		case <-ctx.Done():
			return false
		}
		served, n = wt.serveIfQuorum(target)
	}
	wt.mu.Lock()
	wt.last = wt.statsLocked(target.cp.N, time.Since(start))
	stats := wt.last
	wt.mu.Unlock()
	if wt.cfg.OnRound != nil {
		wt.cfg.OnRound(stats)
	}
	return n == len(wt.ws)
}

// cosignatures returns the verified cosignature lines the witnesses gave for
// target, in configuration order, and how many there are.
func (wt *witnessing) cosignatures(target *published) ([]byte, int) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	var lines []byte
	n := 0
	for _, p := range wt.ws {
		if p.line != nil && p.tree == target.cp.Tree {
			lines = append(lines, p.line...)
			n++
		}
	}
	return lines, n
}

// serveIfQuorum makes target, with its cosignatures, the served checkpoint
// if it has a quorum of them and is not older than the one served. It
// reports whether it did, and the number of cosignatures.
func (wt *witnessing) serveIfQuorum(target *published) (bool, int) {
	lines, n := wt.cosignatures(target)
	if n < wt.cfg.Quorum {
		return false, n
	}
	old := wt.served.Load()
	if old != nil && old.cp.N > target.cp.N {
		return false, n
	}
	signed := make([]byte, 0, len(target.signed)+len(lines))
	signed = append(append(signed, target.signed...), lines...)
	if old != nil && bytes.Equal(old.signed, signed) {
		return true, n
	}
	wt.served.Store(&published{cp: target.cp, signed: signed})
	if err := wt.l.db.Set(keyWitnessed, signed, pebble.NoSync); err != nil {
		wt.l.log.Warn("storing the witnessed checkpoint", "err", err)
	}
	wt.l.wakeWaiters()
	return true, n
}

// send asks one witness to cosign target, retrying from the witness's known
// size on 409, and keeps the cosignature line only if it verifies.
func (wt *witnessing) send(ctx context.Context, p *witnessPeer, target *published) error {
	v := p.w.Verifier()
	for attempt := 0; ; attempt++ {
		old := p.known
		if old > target.cp.N {
			return fmt.Errorf("witness knows size %d, beyond our checkpoint %d", old, target.cp.N)
		}
		proof, err := wt.l.ConsistencyProof(old, target.cp.N)
		if err != nil {
			return fmt.Errorf("consistency proof %d -> %d: %w", old, target.cp.N, err)
		}
		rctx, cancel := context.WithTimeout(ctx, wt.cfg.Timeout)
		resp, err := p.w.AddCheckpoint(rctx, old, proof, target.signed)
		cancel()
		var ks interface{ KnownSize() int64 }
		if errors.As(err, &ks) {
			wt.mu.Lock()
			p.known = ks.KnownSize()
			wt.mu.Unlock()
			if attempt < maxConflictRetries {
				continue
			}
		}
		if err != nil {
			return err
		}
		// Carry only a cosignature we verified, by this witness's key,
		// over exactly this checkpoint.
		n, err := itlog.OpenNote(append(append([]byte(nil), target.signed...), resp...), note.VerifierList(v))
		if err != nil {
			return fmt.Errorf("witness response does not verify: %w", err)
		}
		var line []byte
		for _, s := range n.Sigs {
			if s.Name == v.Name() && s.Hash == v.KeyHash() {
				line = fmt.Appendf(nil, "— %s %s\n", s.Name, s.Base64)
			}
		}
		if line == nil {
			return errors.New("witness response carries no cosignature by its key")
		}
		wt.mu.Lock()
		p.known, p.tree, p.line = target.cp.N, target.cp.Tree, line
		wt.mu.Unlock()
		return nil
	}
}

func (wt *witnessing) statsLocked(published int64, d time.Duration) WitnessStats {
	s := WitnessStats{Published: published, Witnessed: -1, Round: d}
	if p := wt.served.Load(); p != nil {
		s.Witnessed = p.cp.N
	}
	for _, p := range wt.ws {
		s.Witnesses = append(s.Witnesses, WitnessStatus{
			Name: p.w.Verifier().Name(), Known: p.known, Failures: p.failures, LastError: p.lastErr,
		})
	}
	return s
}

// WitnessStats returns the state of witnessing (zero if it is disabled).
func (l *Log) WitnessStats() WitnessStats {
	if l.wit == nil {
		return WitnessStats{}
	}
	wt := l.wit
	wt.mu.Lock()
	defer wt.mu.Unlock()
	s := wt.statsLocked(l.pub.Load().cp.N, wt.last.Round)
	return s
}

// witnessedCheckpoint returns the newest checkpoint that met the quorum, or
// nil if witnessing is disabled or none has yet.
func (l *Log) witnessedCheckpoint() *published {
	if l.wit == nil {
		return nil
	}
	return l.wit.served.Load()
}
