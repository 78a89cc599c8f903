package eventstore

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"indelible.dev/event"
	"indelible.dev/ledger"
)

// ErrBadState means sealed state does not open: corrupted, or sealed under
// another master key or label.
var ErrBadState = errors.New("events: sealed state does not open")

// statePrefix starts the HKDF label of a state-sealing key.
const statePrefix = "indelible sealed state: "

func (l *Layer) stateAEAD(label string) (cipher.AEAD, error) {
	if a, ok := l.stateAEADs.Load(label); ok {
		return a.(cipher.AEAD), nil
	}
	key, err := hkdf.Key(sha256.New, l.keys.IndexKey(), nil, statePrefix+label, dataKeySize)
	if err != nil {
		return nil, fmt.Errorf("events: deriving a state key: %w", err)
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	// Cached: a follower may seal many small values a second (the alert
	// engine seals each rule group it changed). A cipher.AEAD is safe for
	// concurrent use.
	l.stateAEADs.Store(label, a)
	return a, nil
}

// SealState encrypts state a layer above keeps in the extension namespace
// (it may hold event values, which are never stored in plaintext): AES-256-GCM
// under a key derived from the index key with HKDF-SHA-256 (info
// "indelible sealed state: " + label), random nonce, label as additional
// data. OpenState reverses it.
func (l *Layer) SealState(label string, plaintext []byte) ([]byte, error) {
	a, err := l.stateAEAD(label)
	if err != nil {
		return nil, err
	}
	out := make([]byte, nonceSize, nonceSize+len(plaintext)+tagSize)
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("events: drawing a nonce: %w", err)
	}
	return a.Seal(out, out, plaintext, []byte(label)), nil
}

// OpenState opens what SealState returned for the same label, or fails
// with ErrBadState.
func (l *Layer) OpenState(label string, sealed []byte) ([]byte, error) {
	a, err := l.stateAEAD(label)
	if err != nil {
		return nil, err
	}
	if len(sealed) < nonceSize+tagSize {
		return nil, ErrBadState
	}
	pt, err := a.Open(nil, sealed[:nonceSize], sealed[nonceSize:], []byte(label))
	if err != nil {
		return nil, ErrBadState
	}
	return pt, nil
}

// StateName returns a blind name for a piece of sealed state whose natural
// name holds event values (a key in the extension namespace must not
// show them): HMAC-SHA-256 under the index key of "sealed state: " +
// label, 0x00 and name, cut to 16 bytes. The same for the same master key.
func (l *Layer) StateName(label string, name []byte) []byte {
	m := l.blind.mac(statePrefix+label, name)
	return m[:16]
}

// OnCommit has f told of every event the layer stores, once it is durable:
// its index, the event as stored (received_at and submitted_by set) and its
// canonical bytes, both only to be read, not kept past the call unless
// copied (the bytes may be kept: they are not reused). f runs on the
// appending goroutine, in no particular order across requests, and must
// not block. It lets a follower skip reading back what it was just told;
// it must still read what it missed. One f at a time; nil removes it.
func (l *Layer) OnCommit(f func(index int64, e *event.Event, eventBytes []byte)) {
	if f == nil {
		l.committed.Store(nil)
		return
	}
	l.committed.Store(&f)
}

// Log returns the ledger the layer writes to.
func (l *Layer) Log() *ledger.Log { return l.log }
