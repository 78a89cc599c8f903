package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	Alarms    int64           // answers from witnesses knowing a larger tree than the log signed
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

	mu   sync.Mutex // guards last, ahead and the peers' fields
	last WitnessStats
	// Alarms: answers from witnesses knowing a tree larger than any signed.
	ahead      int64
	aheadFirst string // the first one

	cancel context.CancelFunc
	done   chan struct{}  // closed when run returns
	sends  sync.WaitGroup // requests in flight, possibly beyond their round
}

// witnessPeer is one witness's state. Every field but w is guarded by
// witnessing.mu. busy is an ownership token: round sets it (under mu) when it
// hands the peer to a request goroutine, which alone may then write known,
// tree and line (still under mu), until it clears busy. So at most one
// request per witness is in flight, and a reader under mu sees a consistent
// state.
type witnessPeer struct {
	w        Witness
	busy     bool // a request goroutine owns the peer
	known    int64
	tree     tlog.Tree // the tree the line cosigns
	line     []byte    // verified cosignature line for tree, or nil
	failures int64
	lastErr  string
}

// witnessHook is witnessing as a publish hook (hooks.go): Open asks the
// witnesses what they cosigned (checkWitnesses) and starts the loop, each
// release wakes it, Close stops it.
type witnessHook struct {
	l   *Log
	cfg WitnessConfig
}

func (h *witnessHook) Open(l *Log) error {
	if err := l.checkWitnesses(h.cfg); err != nil {
		return err
	}
	return l.startWitnessing(h.cfg)
}

// Signed does nothing: witnesses see only released checkpoints.
func (h *witnessHook) Signed(itlog.Checkpoint) {}

func (h *witnessHook) Released(itlog.Checkpoint) {
	if h.l.wit != nil {
		h.l.wit.notify()
	}
}

func (h *witnessHook) Close() {
	if h.l.wit != nil {
		h.l.wit.close()
	}
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
		// Only released checkpoints go to witnesses (hooks.go).
		target := wt.l.rel.Load()
		if target == nil {
			continue
		}
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
	wt.l.archive(wt.served.Load()) // archive.go
	if err := wt.l.set(keyWitnessed, signed, false); err != nil {
		wt.l.log.Warn("storing the witnessed checkpoint", "err", err)
	}
	wt.l.pubChanged.broadcast()
	return true, n
}

// send asks one witness to cosign target, retrying from the witness's known
// size on 409, and keeps the cosignature line only if it verifies.
func (wt *witnessing) send(ctx context.Context, p *witnessPeer, target *published) error {
	v := p.w.Verifier()
	for attempt := 0; ; attempt++ {
		wt.mu.Lock()
		old := p.known
		wt.mu.Unlock()
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
			known := ks.KnownSize()
			wt.mu.Lock()
			p.known = known
			wt.mu.Unlock()
			if signed := wt.l.pub.Load().cp.N; known > signed {
				// Not a stale view: the witness cosigned a tree this log
				// never signed in this life. The store lost data, or the
				// key signed another history.
				return wt.alarm(v.Name(), known, signed)
			}
			if attempt < maxConflictRetries {
				continue
			}
		}
		if err != nil {
			return err
		}
		// Carry only a cosignature we verified, by this witness's key,
		// over exactly this checkpoint: the reply must be signature lines
		// and nothing else, or a reply smuggling in a blank line would
		// turn the served note into another text that no client accepts.
		if err := checkSignatureLines(resp); err != nil {
			return fmt.Errorf("witness response: %w", err)
		}
		n, err := itlog.OpenNote(append(append([]byte(nil), target.signed...), resp...), note.VerifierList(v))
		if err != nil {
			return fmt.Errorf("witness response does not verify: %w", err)
		}
		if text, _, _ := itlog.SplitNote(target.signed); n.Text != string(text) {
			return errors.New("witness response changes the checkpoint text")
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

// maxWitnessReply bounds the lines of a witness's reply.
const maxWitnessReply = 16

// checkSignatureLines accepts only note signature lines ("— name base64\n"),
// at least one, each complete, with no blank line and nothing else.
func checkSignatureLines(resp []byte) error {
	if len(resp) == 0 || resp[len(resp)-1] != '\n' {
		return errors.New("not newline-terminated signature lines")
	}
	lines := strings.Split(string(resp[:len(resp)-1]), "\n")
	if len(lines) > maxWitnessReply {
		return fmt.Errorf("%d lines, at most %d", len(lines), maxWitnessReply)
	}
	for _, line := range lines {
		rest, ok := strings.CutPrefix(line, "— ")
		name, b64, ok2 := strings.Cut(rest, " ")
		if !ok || !ok2 || name == "" || strings.ContainsAny(name, "+ ") || hasControlOrSpace(b64) {
			return errors.New("a line that is not a signature line")
		}
		sig, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil || len(sig) < 5 {
			return errors.New("a signature line with a malformed signature")
		}
	}
	return nil
}

func hasControlOrSpace(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return true
		}
	}
	return false
}

// alarm records that witness name knows size known, beyond the signed size,
// and returns the error of the request.
func (wt *witnessing) alarm(name string, known, signed int64) error {
	detail := fmt.Sprintf("witness %s knows size %d, this log has signed only %d", name, known, signed)
	wt.l.log.Error("a witness is ahead of the log: the store lost data or the key signed another history; the log is not ready",
		"witness", name, "witness_size", known, "log_size", signed)
	wt.mu.Lock()
	if wt.ahead == 0 {
		wt.aheadFirst = detail
	}
	wt.ahead++
	wt.mu.Unlock()
	return fmt.Errorf("%w: %s", ErrWitnessAhead, detail)
}

// WitnessAlarm returns an error wrapping ErrWitnessAhead once any witness has
// answered that it knows a tree larger than this log has signed, and nil
// otherwise (or without witnessing). The alarm stays until the log is
// reopened: a readiness check should fail on it.
func (l *Log) WitnessAlarm() error {
	if l.wit == nil {
		return nil
	}
	l.wit.mu.Lock()
	defer l.wit.mu.Unlock()
	if l.wit.ahead == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrWitnessAhead, l.wit.aheadFirst)
}

func (wt *witnessing) statsLocked(published int64, d time.Duration) WitnessStats {
	s := WitnessStats{Published: published, Witnessed: -1, Round: d, Alarms: wt.ahead}
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
