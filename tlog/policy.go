package tlog

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
)

// ErrPolicy is returned, possibly wrapped, when a checkpoint is well formed
// but does not meet a Policy: no valid signature by the log's own key, a
// witness cosignature that does not verify, or too few cosignatures.
var ErrPolicy = errors.New("checkpoint does not meet the policy")

// Policy says who must have signed a checkpoint: the log's own key (by name
// AND key hash) and at least Quorum of the Witnesses. A witness can never
// stand in for the log: NewPolicy refuses a witness key whose name is the
// log's origin.
type Policy struct {
	Log       note.Verifier   // the log's key; its name is the origin
	Witnesses []note.Verifier // cosigners; names distinct from the origin
	Quorum    int             // cosignatures required, 0 <= Quorum <= len(Witnesses)
}

// NewPolicy builds a Policy from the log's verifier key (note vkey format)
// and the witnesses' cosignature/v1 verifier keys. quorum 0 means all of
// them. A witness named like the log, a duplicate witness key, or a quorum
// out of range is an error.
func NewPolicy(logVKey string, witnessVKeys []string, quorum int) (Policy, error) {
	lv, err := note.NewVerifier(logVKey)
	if err != nil {
		return Policy{}, fmt.Errorf("log verifier key: %w", err)
	}
	ws := make([]note.Verifier, 0, len(witnessVKeys))
	for _, vk := range witnessVKeys {
		v, err := NewCosignatureVerifier(vk)
		if err != nil {
			return Policy{}, fmt.Errorf("witness key %q: %w", vk, err)
		}
		ws = append(ws, v)
	}
	if quorum == 0 {
		quorum = len(ws)
	}
	p := Policy{Log: lv, Witnesses: ws, Quorum: quorum}
	return p, p.Check()
}

// Check reports whether p is usable: a log key, witnesses neither named like
// the origin nor repeated, and 0 <= Quorum <= len(Witnesses).
func (p Policy) Check() error {
	if p.Log == nil {
		return errors.New("policy: no log key")
	}
	origin := p.Log.Name()
	type id struct {
		name string
		hash uint32
	}
	seen := map[id]bool{}
	for _, w := range p.Witnesses {
		if w.Name() == origin {
			return fmt.Errorf("policy: witness key %q has the log's own name: a witness must never stand in for the log", w.Name())
		}
		k := id{w.Name(), w.KeyHash()}
		if seen[k] {
			return fmt.Errorf("policy: witness key %s+%08x given twice", w.Name(), w.KeyHash())
		}
		seen[k] = true
	}
	if p.Quorum < 0 || p.Quorum > len(p.Witnesses) {
		return fmt.Errorf("policy: quorum %d of %d witnesses", p.Quorum, len(p.Witnesses))
	}
	return nil
}

// Open verifies a signed checkpoint against p and parses it strictly. It
// returns the checkpoint, the names of the witnesses whose cosignatures
// verified (in the policy's order), and an error wrapping ErrPolicy or
// ErrMalformedCheckpoint if anything is missing or wrong. A signature by a
// known key that does not verify is an error, as in note.Open (wrapped: a
// *note.InvalidSignatureError names the key). When only the quorum is not
// met, the parsed checkpoint and the cosigners are returned with the error.
func (p Policy) Open(msg []byte) (Checkpoint, []string, error) {
	if err := p.Check(); err != nil {
		return Checkpoint{}, nil, err
	}
	origin := p.Log.Name()
	known := append([]note.Verifier{p.Log}, p.Witnesses...)
	if len(msg) > MaxCheckpointSize {
		return Checkpoint{}, nil, fmt.Errorf("%w: note larger than %d bytes", ErrMalformedCheckpoint, MaxCheckpointSize)
	}
	n, err := OpenNote(msg, note.VerifierList(known...))
	if err != nil {
		var inv *note.InvalidSignatureError
		if errors.As(err, &inv) {
			if inv.Name == origin && inv.Hash == p.Log.KeyHash() {
				return Checkpoint{}, nil, fmt.Errorf("%w: the log's signature does not verify: %w", ErrPolicy, err)
			}
			return Checkpoint{}, nil, fmt.Errorf("%w: the cosignature by %s+%08x does not verify: %w", ErrPolicy, inv.Name, inv.Hash, err)
		}
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			return Checkpoint{}, nil, fmt.Errorf("%w: no signature by the log key %s+%08x", ErrPolicy, origin, p.Log.KeyHash())
		}
		return Checkpoint{}, nil, fmt.Errorf("%w: %w", ErrMalformedCheckpoint, err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if c.Origin != origin {
		return Checkpoint{}, nil, fmt.Errorf("%w: origin %q, the log key is for %q", ErrPolicy, c.Origin, origin)
	}
	bylog := false
	var cosigners []string
	for _, s := range n.Sigs {
		if s.Name == origin && s.Hash == p.Log.KeyHash() {
			bylog = true
		}
	}
	for _, w := range p.Witnesses {
		for _, s := range n.Sigs {
			if s.Name == w.Name() && s.Hash == w.KeyHash() {
				cosigners = append(cosigners, w.Name())
				break
			}
		}
	}
	if !bylog {
		return Checkpoint{}, nil, fmt.Errorf("%w: no signature by the log key %s+%08x", ErrPolicy, origin, p.Log.KeyHash())
	}
	if len(cosigners) < p.Quorum {
		return c, cosigners, fmt.Errorf("%w: cosigned by %d of %d witnesses %v, %d required", ErrPolicy, len(cosigners), len(p.Witnesses), cosigners, p.Quorum)
	}
	return c, cosigners, nil
}
