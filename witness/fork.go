package witness

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

// Evidence is a record that a log showed two inconsistent views. A and B are
// both checkpoint notes signed by the log (they may carry cosignatures).
// Either they have the same size and different roots, or Proof is a
// consistency proof from the smaller size to the larger checkpoint that
// verifies with ImpliedRoot as the smaller tree's root, and ImpliedRoot
// differs from the smaller checkpoint's root. Either way anyone holding the
// log's key can check the evidence with VerifyEvidence: the log signed two
// trees that cannot both be prefixes of one history.
type Evidence struct {
	ID          uint64    `json:"id"`
	Origin      string    `json:"origin"`
	Time        time.Time `json:"time"`
	Reason      string    `json:"reason"`
	Source      string    `json:"source"`
	A           string    `json:"checkpoint_a"`
	B           string    `json:"checkpoint_b"`
	Proof       []string  `json:"proof,omitempty"`
	ImpliedRoot string    `json:"implied_root,omitempty"`
	Cleared     bool      `json:"cleared"`
}

// ErrBadEvidence is returned, wrapped, by VerifyEvidence.
var ErrBadEvidence = errors.New("witness: evidence does not prove a fork")

// VerifyEvidence checks that e proves a fork of the log whose keys are
// logKeys (named after e.Origin): both checkpoints carry a valid signature
// by one of those keys, and they cannot be consistent.
func VerifyEvidence(e Evidence, logKeys ...note.Verifier) error {
	for _, v := range logKeys {
		if v.Name() != e.Origin {
			return fmt.Errorf("%w: log key %q is not named after the origin %q", ErrBadEvidence, v.Name(), e.Origin)
		}
	}
	open := func(s string) (itlog.Checkpoint, error) {
		cp, _, err := itlog.OpenCheckpoint([]byte(s), logKeys...)
		return cp, err
	}
	a, err := open(e.A)
	if err != nil {
		return fmt.Errorf("%w: checkpoint A: %v", ErrBadEvidence, err)
	}
	b, err := open(e.B)
	if err != nil {
		return fmt.Errorf("%w: checkpoint B: %v", ErrBadEvidence, err)
	}
	if a.N == b.N {
		if a.Hash == b.Hash {
			return fmt.Errorf("%w: same size and same root", ErrBadEvidence)
		}
		return nil
	}
	small, large := a, b
	if small.N > large.N {
		small, large = large, small
	}
	implied, err := itlog.ParseHash(e.ImpliedRoot)
	if err != nil {
		return fmt.Errorf("%w: implied root: %v", ErrBadEvidence, err)
	}
	if implied == small.Hash {
		return fmt.Errorf("%w: implied root equals the smaller checkpoint's root", ErrBadEvidence)
	}
	if len(e.Proof) > MaxProofLines {
		return fmt.Errorf("%w: proof too long", ErrBadEvidence)
	}
	p := make(tlog.TreeProof, len(e.Proof))
	for i, s := range e.Proof {
		if p[i], err = itlog.ParseHash(s); err != nil {
			return fmt.Errorf("%w: proof: %v", ErrBadEvidence, err)
		}
	}
	if small.N == 0 {
		// Every tree extends the empty tree; only a wrong size-0 root is a
		// misbehaviour, and that is not a fork between two views.
		return fmt.Errorf("%w: smaller checkpoint is empty", ErrBadEvidence)
	}
	if err := itlog.CheckConsistency(p, small.N, implied, large.N, large.Hash); err != nil {
		return fmt.Errorf("%w: proof does not verify with the implied root", ErrBadEvidence)
	}
	return nil
}

// evidenceDigest identifies a pair of checkpoints regardless of order and of
// signature lines (cosignature timestamps change; the texts do not).
func evidenceDigest(e Evidence) [32]byte {
	text := func(s string) string {
		t, _, ok := itlog.SplitNote([]byte(s))
		if !ok {
			return s
		}
		return string(t)
	}
	ts := []string{text(e.A), text(e.B)}
	sort.Strings(ts)
	return sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s", e.Origin, ts[0], ts[1]))
}

// recordFork stores e durably, marks its origin as forked and logs it at
// error level. The same pair of checkpoints is recorded once: recording it
// again (for example after an operator cleared the fork) is a no-op that
// returns false. ls.mu must be held.
func (w *Witness) recordFork(ls *logState, e Evidence) bool {
	e.Reason, e.Source = cleanText(e.Reason), cleanText(e.Source)
	d := evidenceDigest(e)
	w.evMu.Lock()
	defer w.evMu.Unlock()
	if v, err := w.get(digestKey(d)); err != nil || v != nil {
		if err != nil {
			w.log.Error("witness: reading fork evidence", "err", err)
		}
		return false
	}
	if w.evCounts[e.Origin] >= MaxEvidencePerOrigin {
		// Enough proof is kept: refuse the log, store nothing more.
		if !ls.forked {
			// The marker's value is the latest evidence record's ID.
			if err := w.db.Set(forkKey(e.Origin), evidenceKey(w.nextEv - 1)[1:], pebble.Sync); err != nil {
				w.log.Error("witness: storing fork marker failed; refusing the log in memory only", "origin", e.Origin, "err", err)
			}
			ls.forked = true
		}
		w.log.Warn("witness: fork evidence not stored, the origin already has the most records kept",
			"origin", e.Origin, "max", MaxEvidencePerOrigin)
		return false
	}
	e.ID = w.nextEv
	e.Time = time.Now().UTC()
	e.Cleared = false
	data, err := json.Marshal(e)
	if err != nil {
		panic("witness: marshalling evidence: " + err.Error())
	}
	id := evidenceKey(e.ID)[1:]
	b := w.db.NewBatch()
	b.Set(evidenceKey(e.ID), data, nil)
	b.Set(digestKey(d), id, nil)
	b.Set(forkKey(e.Origin), id, nil)
	// Durability point: the evidence and the refusal to cosign are on disk
	// before anyone is told about the fork.
	if err := b.Commit(pebble.Sync); err != nil {
		w.log.Error("witness: storing fork evidence failed; refusing the log in memory only", "origin", e.Origin, "err", err)
		ls.forked = true
		return true
	}
	w.nextEv++
	w.evCounts[e.Origin]++
	ls.forked = true
	w.stats.forks.Add(1)
	w.log.Error("FORK: log showed two inconsistent views; refusing to cosign it until cleared",
		"origin", e.Origin, "reason", e.Reason, "source", e.Source, "evidence_id", e.ID)
	return true
}

// ClearFork lets the witness cosign origin again: it removes the fork marker
// and marks the origin's evidence records cleared (they are kept). The
// witness's stored checkpoint for the origin is unchanged. It works for
// origins that are not configured too (for an offline store).
func (w *Witness) ClearFork(origin string) (int, error) {
	ls := w.logs[origin]
	if ls != nil {
		ls.mu.Lock()
		defer ls.mu.Unlock()
	}
	w.evMu.Lock()
	defer w.evMu.Unlock()
	forks, err := w.Forks()
	if err != nil {
		return 0, err
	}
	b := w.db.NewBatch()
	b.Delete(forkKey(origin), nil)
	n := 0
	for _, e := range forks {
		if e.Origin != origin || e.Cleared {
			continue
		}
		e.Cleared = true
		data, err := json.Marshal(e)
		if err != nil {
			return 0, err
		}
		b.Set(evidenceKey(e.ID), data, nil)
		n++
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("witness: clearing fork of %q: %w", origin, err)
	}
	if ls != nil {
		ls.forked = false
	}
	w.log.Warn("fork cleared by operator", "origin", origin, "records", n)
	return n, nil
}

func encodeProof(p tlog.TreeProof) []string {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}
