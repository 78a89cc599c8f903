package eventstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes of the keyring's keys and of a wrapped data key.
const (
	MasterKeySize = 32
	dataKeySize   = 32
	nonceSize     = 12
	tagSize       = 16
	wrappedSize   = nonceSize + dataKeySize + tagSize
)

// HKDF-SHA-256 labels (the info parameter) of the keys derived from the
// master key (docs/events.md).
const (
	labelWrap  = "indelible data-key wrap"
	labelIndex = "indelible blind index"
)

// ErrBadKey means a wrapped data key, or a master key, is not what it should
// be: wrong size, or it does not open under the wrap key (a different master
// key, or corrupted bytes).
var ErrBadKey = errors.New("events: bad key")

type masterKeyring struct {
	wrap  cipher.AEAD
	index []byte
}

// NewKeyring returns the Keyring of a 32-byte master key: data keys are
// wrapped with AES-256-GCM under a key derived from it (HKDF-SHA-256, label
// "indelible data-key wrap"), and the index key is derived likewise (label
// "indelible blind index").
func NewKeyring(master []byte) (Keyring, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("%w: master key of %d bytes, want %d", ErrBadKey, len(master), MasterKeySize)
	}
	wk, err := hkdf.Key(sha256.New, master, nil, labelWrap, dataKeySize)
	if err != nil {
		return nil, fmt.Errorf("events: deriving the wrap key: %w", err)
	}
	ik, err := hkdf.Key(sha256.New, master, nil, labelIndex, 32)
	if err != nil {
		return nil, fmt.Errorf("events: deriving the index key: %w", err)
	}
	aead, err := newAEAD(wk)
	if err != nil {
		return nil, err
	}
	return &masterKeyring{wrap: aead, index: ik}, nil
}

// wrapAAD binds a wrapped data key to its day, so a key cannot be moved to
// another day's slot.
func wrapAAD(day int64) []byte {
	b := make([]byte, 0, 32)
	b = append(b, "indelible day key\x00"...)
	return binary.BigEndian.AppendUint64(b, uint64(day))
}

func (k *masterKeyring) WrapKey(day int64, key []byte) ([]byte, error) {
	if len(key) != dataKeySize {
		return nil, fmt.Errorf("%w: data key of %d bytes, want %d", ErrBadKey, len(key), dataKeySize)
	}
	out := make([]byte, nonceSize, wrappedSize)
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("events: drawing a nonce: %w", err)
	}
	return k.wrap.Seal(out, out, key, wrapAAD(day)), nil
}

func (k *masterKeyring) UnwrapKey(day int64, wrapped []byte) ([]byte, error) {
	if len(wrapped) != wrappedSize {
		return nil, fmt.Errorf("%w: wrapped key of %d bytes, want %d", ErrBadKey, len(wrapped), wrappedSize)
	}
	key, err := k.wrap.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], wrapAAD(day))
	if err != nil {
		return nil, fmt.Errorf("%w: data key of day %d does not open under this master key", ErrBadKey, day)
	}
	return key, nil
}

func (k *masterKeyring) IndexKey() []byte { return k.index }

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return aead, nil
}
