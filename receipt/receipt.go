// Package receipt verifies Indelible event receipts offline: the one check
// an outsider needs to trust an event without trusting the server.
//
// A receipt (GET /v1/events/{index}/receipt) is a c2sp.org/tlog-proof
// document whose extra data is the event's opening: its 32-byte salt and
// its canonical bytes. Verify checks, with no network:
//
//  1. the receipt parses (c2sp.org/tlog-proof);
//  2. its checkpoint is signed by the log's key and cosigned by a quorum
//     of witnesses (the Policy; c2sp.org/tlog-cosignature);
//  3. the opening decodes: salt, then the canonical bytes of a valid event;
//  4. the commitment recomputed from the opening, as an RFC 6962 leaf,
//     is included at the receipt's index in the checkpoint's tree.
//
// Only then is the event returned, decoded from the verified bytes: what a
// caller shows is exactly what the log commits to.
package receipt

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/event"
	itlog "indelible.dev/tlog"
)

// Policy says whose signatures a receipt's checkpoint needs: the log's key
// and a quorum of witness keys (see tlog.Policy).
type Policy = itlog.Policy

// NewPolicy returns the policy of the log's verifier key (note vkey format)
// and the witnesses' cosignature/v1 verifier keys; quorum 0 means all of
// them.
func NewPolicy(logVKey string, witnessVKeys []string, quorum int) (Policy, error) {
	return itlog.NewPolicy(logVKey, witnessVKeys, quorum)
}

// ErrInvalid is wrapped by every verification failure; the message names
// the step that failed.
var ErrInvalid = errors.New("receipt: not verified")

// Verified is what a receipt proves once verified.
type Verified struct {
	// Index is the event's index in the log.
	Index int64
	// Event is decoded from EventBytes, the canonical bytes the log commits
	// to; Salt is the commitment's salt.
	Event      event.Event
	EventBytes []byte
	Salt       [event.SaltSize]byte
	// Commitment is the log entry: the salted commitment to EventBytes.
	Commitment [32]byte
	// Checkpoint is the signed tree the event is included in.
	Checkpoint itlog.Checkpoint
	// Cosigners names the witnesses whose cosignatures were verified.
	Cosigners []string
}

// Verify checks receipt against policy (steps 1 to 4 of the package doc)
// and returns what it proves. Any failure is an error wrapping ErrInvalid
// and the cause, naming the step; nothing of an unverified receipt is
// returned.
func Verify(receipt []byte, policy Policy) (Verified, error) {
	fail := func(step string, err error) (Verified, error) {
		return Verified{}, fmt.Errorf("%w: %s: %w", ErrInvalid, step, err)
	}
	r, err := itlog.ParseReceipt(receipt)
	if err != nil {
		return fail("parsing the receipt", err)
	}
	cp, cosigners, err := policy.Open(r.Checkpoint)
	if err != nil {
		return fail("checking the checkpoint's signatures", err)
	}
	if r.Extra == nil {
		return fail("opening the commitment", errors.New("the receipt carries no extra line (salt and event bytes)"))
	}
	op, err := event.ParseOpening(r.Extra)
	if err != nil {
		return fail("opening the commitment", err)
	}
	ev, err := event.Decode(op.Bytes)
	if err != nil {
		return fail("decoding the event", err)
	}
	commitment := op.Commitment()
	leaf := tlog.RecordHash(commitment[:])
	if err := itlog.CheckInclusion(r.Proof, r.Index, cp.N, leaf, cp.Hash); err != nil {
		return fail(fmt.Sprintf("checking the inclusion proof of index %d in tree size %d", r.Index, cp.N), err)
	}
	return Verified{
		Index:      r.Index,
		Event:      ev,
		EventBytes: op.Bytes,
		Salt:       op.Salt,
		Commitment: commitment,
		Checkpoint: cp,
		Cosigners:  cosigners,
	}, nil
}
