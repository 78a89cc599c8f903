package ledger

import (
	"errors"
	"fmt"

	itlog "indelible.dev/tlog"
)

// Publish hooks: what the ledger calls at the defined points of the publish
// path, so that the key guard (keyguard.go), witnessing (witnessing.go) and
// the object-storage mirror (package mirror) plug in the same way.
//
// A checkpoint goes through two stages, never confused:
//
//   - signed: the tree it names is durable and the log has signed it.
//     Reads (tiles, proofs) are bounded by the newest signed checkpoint
//     (Published). The signature has not left the process.
//   - released: the signature may go out: Checkpoint (GET /checkpoint),
//     WaitSize (receipts, wait=checkpoint) and the witnesses see only
//     released checkpoints. Without a ReleaseGate every checkpoint is
//     released as soon as it is signed; with one, only when the gate calls
//     Release (the mirror does once the checkpoint is in the bucket).
//
// The points, in order:
//
//  1. Open loads the stored tree and signs a checkpoint for it (not visible).
//  2. Every hook's Open, in Options order (key guard, witnessing, then
//     Options.Hooks): each may refuse the store before any signature leaves
//     the process (wrap ErrKeyGuard for "this key may have signed another
//     history"). Open fails with the first error, after calling Close on the
//     hooks already opened.
//  3. After each publish: Signed, on every hook (before the release).
//  4. After each release: Released, on every hook.
//  5. Log.Close, after the publisher stopped and every writer was answered:
//     every hook's Close, in reverse order.
//
// Signed and Released are called with the publish lock held, in size order,
// and must not block (wake a goroutine of the hook's own). Signed may be
// called once before the hook's Open (for the checkpoint Open signs).
type PublishHook interface {
	Open(l *Log) error
	Signed(cp itlog.Checkpoint)
	Released(cp itlog.Checkpoint)
	Close()
}

// A ReleaseGate is a PublishHook that holds checkpoints back: with one in
// Options.Hooks, a signed checkpoint is released only when the gate calls
// Release with it. At most one gate may be configured.
type ReleaseGate interface {
	PublishHook
	// GatesRelease is a marker: the log releases nothing by itself.
	GatesRelease()
}

// ErrHalted wraps the error a hook stopped the log with (Halt).
var ErrHalted = errors.New("ledger: log halted")

// openHooks calls Open on every hook in order; on an error it closes the
// hooks already opened, in reverse order.
func (l *Log) openHooks() error {
	for i, h := range l.hooks {
		if err := h.Open(l); err != nil {
			for j := i - 1; j >= 0; j-- {
				l.hooks[j].Close()
			}
			return err
		}
	}
	return nil
}

// closeHooks closes every hook in reverse order.
func (l *Log) closeHooks() {
	for i := len(l.hooks) - 1; i >= 0; i-- {
		l.hooks[i].Close()
	}
}

// Release makes the signed checkpoint cp, with its note signed (as Published
// returned them), the released one: Checkpoint, WaitSize and the witnesses
// see it from now on. Only a ReleaseGate calls it. Releasing a size not larger
// than the released one is a no-op; a checkpoint this log did not publish
// (beyond the published size, or another root) is refused.
func (l *Log) Release(cp itlog.Checkpoint, signed []byte) error {
	if cp.Origin != l.origin {
		return fmt.Errorf("ledger: releasing a checkpoint of origin %q", cp.Origin)
	}
	if root, err := l.TreeHash(cp.N); err != nil || root != cp.Hash {
		return fmt.Errorf("ledger: releasing a checkpoint at size %d that this log did not sign", cp.N)
	}
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	if old := l.rel.Load(); old != nil && old.cp.N >= cp.N {
		return nil
	}
	l.releaseLocked(&published{cp: cp, signed: signed})
	return nil
}

// releaseLocked releases p; pubMu is held.
func (l *Log) releaseLocked(p *published) {
	l.rel.Store(p)
	if len(l.opts.Witnessing.Witnesses) == 0 {
		l.archive(p) // served as released (archive.go); witnessing archives what it serves
	}
	for _, h := range l.hooks {
		h.Released(p.cp)
	}
	l.pubChanged.broadcast()
}

// Released returns the newest released checkpoint and its note (without
// cosignatures), or the zero Checkpoint and nil before the first release.
func (l *Log) Released() (itlog.Checkpoint, []byte) {
	if p := l.rel.Load(); p != nil {
		return p.cp, p.signed
	}
	return itlog.Checkpoint{}, nil
}

// Changed returns a channel closed at the next publish, release, new
// witnessed checkpoint or failure: take it before looking at the state.
func (l *Log) Changed() <-chan struct{} { return l.pubChanged.wait() }

// Halt stops the log as a failed commit does: from now on nothing is
// published, released or acknowledged, and appends fail with an error
// wrapping ErrHalted and err. A hook calls it on a fatal condition (the
// mirror, on fork evidence in the bucket). Reads go on.
func (l *Log) Halt(err error) {
	err = fmt.Errorf("%w: %w", ErrHalted, err)
	if l.failed.CompareAndSwap(nil, &err) {
		l.log.Error("the log stops", "err", err)
	}
	l.pubChanged.broadcast()
}

// keyHookPrefix is the prefix of a hook's state in the store: 'm' "hook/" name.
const keyHookPrefix = "mhook/"

// HookState returns the state a hook stored under name with SetHookState,
// or ErrNotFound.
func (l *Log) HookState(name string) ([]byte, error) {
	return l.get([]byte(keyHookPrefix + name))
}

// SetHookState stores a hook's state under name, durably (with fsync), outside
// any log entry: the mirror's watermark, for instance.
func (l *Log) SetHookState(name string, v []byte) error {
	if err := l.set([]byte(keyHookPrefix+name), v, true); err != nil {
		return fmt.Errorf("ledger: storing %s: %w", name, err)
	}
	return nil
}
