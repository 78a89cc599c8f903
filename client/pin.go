package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	itlog "indelible.dev/tlog"
)

// ForkError is the client's refusal of a checkpoint that cannot extend the
// one it pinned: a smaller tree, the same size with another root, or a
// consistency proof that does not hold. Two such checkpoints signed by the
// log's key prove the log (or its key) forked; keep both.
type ForkError struct {
	Pinned   []byte // the pinned checkpoint note, verbatim
	Got      []byte // the refused checkpoint note, verbatim
	Problem  string
	ProofErr error // the consistency proof's error, if that failed
}

func (e *ForkError) Error() string {
	return "client: fork: the log's checkpoint does not extend the pinned one: " + e.Problem
}

func (e *ForkError) Unwrap() error { return e.ProofErr }

// WithPin keeps a pinned checkpoint in the file path (created 0600 when
// absent; it survives restarts) and has CheckCheckpoint accept a newer
// checkpoint only if it is signed under policy (the log's key and its
// witness quorum) and proven consistent with the pin.
func WithPin(path string, policy itlog.Policy) Option {
	return func(s *settings) { s.pinPath, s.policy = path, policy }
}

// CheckCheckpoint fetches the log's checkpoint, opens it under the WithPin
// policy and, if a checkpoint is pinned, checks by a consistency proof that
// it extends the pin (fail closed: any doubt is an error, a proven fork a
// *ForkError). On success the checkpoint becomes the pin and is returned.
func (c *Client) CheckCheckpoint(ctx context.Context) (itlog.Checkpoint, error) {
	if c.pinPath == "" {
		return itlog.Checkpoint{}, errors.New("client: no pin configured (WithPin)")
	}
	c.pinMu.Lock()
	defer c.pinMu.Unlock()
	msg, err := c.Checkpoint(ctx)
	if err != nil {
		return itlog.Checkpoint{}, err
	}
	return c.checkPinned(ctx, msg, false)
}

// checkPinned opens the checkpoint note msg under the policy and checks it
// against the pin (c.pinMu held): a larger tree by a consistency proof from
// the pin, after which it becomes the pin; the same size by its root hash.
// A smaller tree is a *ForkError, unless older is set (a receipt's
// checkpoint may be older than one pinned since): then a consistency proof
// from it to the pin must hold, and the pin stays.
func (c *Client) checkPinned(ctx context.Context, msg []byte, older bool) (itlog.Checkpoint, error) {
	cp, _, err := c.policy.Open(msg)
	if err != nil {
		return itlog.Checkpoint{}, fmt.Errorf("client: the log's checkpoint: %w", err)
	}
	old, err := os.ReadFile(c.pinPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return itlog.Checkpoint{}, fmt.Errorf("client: reading the pin: %w", err)
	}
	if err == nil {
		pin, _, err := c.policy.Open(old)
		if err != nil {
			return itlog.Checkpoint{}, fmt.Errorf("client: the pinned checkpoint in %s: %w", c.pinPath, err)
		}
		fork := func(problem string, perr error) error {
			return &ForkError{Pinned: old, Got: msg, Problem: problem, ProofErr: perr}
		}
		switch {
		case cp.Origin != pin.Origin:
			return itlog.Checkpoint{}, fmt.Errorf("client: the log's origin %q is not the pinned %q", cp.Origin, pin.Origin)
		case cp.N < pin.N && !older:
			return itlog.Checkpoint{}, fork(fmt.Sprintf("size %d is smaller than the pinned %d", cp.N, pin.N), nil)
		case cp.N < pin.N:
			if cp.N > 0 {
				p, err := c.ConsistencyProof(ctx, cp.N, pin.N)
				if err != nil {
					return itlog.Checkpoint{}, fmt.Errorf("client: consistency proof %d->%d: %w", cp.N, pin.N, err)
				}
				if err := itlog.CheckConsistency(p, cp.N, cp.Hash, pin.N, pin.Hash); err != nil {
					return itlog.Checkpoint{}, fork(fmt.Sprintf("no consistency from size %d to the pinned %d", cp.N, pin.N), err)
				}
			}
			return cp, nil
		case cp.N == pin.N:
			if cp.Hash != pin.Hash {
				return itlog.Checkpoint{}, fork(fmt.Sprintf("size %d with another root hash", cp.N), nil)
			}
			return cp, nil
		case pin.N > 0:
			p, err := c.ConsistencyProof(ctx, pin.N, cp.N)
			if err != nil {
				return itlog.Checkpoint{}, fmt.Errorf("client: consistency proof %d->%d: %w", pin.N, cp.N, err)
			}
			if err := itlog.CheckConsistency(p, pin.N, pin.Hash, cp.N, cp.Hash); err != nil {
				return itlog.Checkpoint{}, fork(fmt.Sprintf("no consistency from size %d to %d", pin.N, cp.N), err)
			}
		}
	}
	if err := writePin(c.pinPath, msg); err != nil {
		return itlog.Checkpoint{}, err
	}
	return cp, nil
}

// writePin replaces the pin file atomically (a temporary file, synced, then
// renamed), 0600.
func writePin(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".pin-*")
	if err != nil {
		return fmt.Errorf("client: writing the pin: %w", err)
	}
	defer os.Remove(f.Name())
	err = f.Chmod(0o600)
	if err == nil {
		if _, err = f.Write(b); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("client: writing the pin: %w", err)
	}
	return nil
}
