package tlog

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Cosignatures (c2sp.org/tlog-cosignature, cosignature/v1, Ed25519 only).
//
// A cosignature is a signed-note signature line on a checkpoint:
//
//	— <cosigner name> base64(key ID (4) || timestamp (8, big-endian) || Ed25519 signature (64))
//
// The Ed25519 signature covers
//
//	cosignature/v1\n
//	time <timestamp>\n
//	<the checkpoint note text, extension lines included>
//
// and the key ID is SHA-256(name || "\n" || 0x04 || public key)[:4], so the
// same Ed25519 key has a different ID as a log key (type 0x01) and as a
// cosigner key (type 0x04).

// CosignatureType is the signature type byte of an Ed25519 cosignature/v1 key.
const CosignatureType = 0x04

// CosignatureSize is the length of a decoded cosignature/v1 signature blob
// (key ID, timestamp, Ed25519 signature).
const CosignatureSize = 4 + 8 + ed25519.SignatureSize

// cosignatureHeader is the first line of the signed message.
const cosignatureHeader = "cosignature/v1\n"

// ErrMalformedCosignature is returned, possibly wrapped, for a cosignature
// key or signature that does not follow c2sp.org/tlog-cosignature.
var ErrMalformedCosignature = errors.New("malformed cosignature")

// CosignatureKeyID returns the key ID of an Ed25519 cosigner key:
// SHA-256(name || "\n" || 0x04 || pub)[:4] as a big-endian uint32.
func CosignatureKeyID(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', CosignatureType})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// CosignatureVKey returns the verifier key string of an Ed25519 cosigner:
// <name>+<8 hex digits of the key ID>+base64(0x04 || pub).
func CosignatureVKey(name string, pub ed25519.PublicKey) string {
	return fmt.Sprintf("%s+%08x+%s", name, CosignatureKeyID(name, pub),
		base64.StdEncoding.EncodeToString(append([]byte{CosignatureType}, pub...)))
}

// CosignerKey returns the private key string of an Ed25519 cosigner, in the
// x/mod note format with type 0x04: PRIVATE+KEY+<name>+<hex ID>+base64(0x04 || seed).
// It is a secret: write it 0600 and never log it.
func CosignerKey(name string, priv ed25519.PrivateKey) string {
	pub := priv.Public().(ed25519.PublicKey)
	return fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, CosignatureKeyID(name, pub),
		base64.StdEncoding.EncodeToString(append([]byte{CosignatureType}, priv.Seed()...)))
}

// ParseCosignerKey parses a private key string written by CosignerKey and
// checks its key ID.
func ParseCosignerKey(skey string) (name string, priv ed25519.PrivateKey, err error) {
	bad := fmt.Errorf("%w: not a cosignature/v1 private key", ErrMalformedCosignature)
	rest, ok := strings.CutPrefix(strings.TrimSpace(skey), "PRIVATE+KEY+")
	if !ok {
		return "", nil, bad
	}
	name, id, key, err := splitKey(rest)
	if err != nil {
		return "", nil, bad
	}
	if len(key) != 1+ed25519.SeedSize || key[0] != CosignatureType {
		return "", nil, bad
	}
	priv = ed25519.NewKeyFromSeed(key[1:])
	if id != CosignatureKeyID(name, priv.Public().(ed25519.PublicKey)) {
		return "", nil, fmt.Errorf("%w: key ID does not match the key", ErrMalformedCosignature)
	}
	return name, priv, nil
}

// ParseCosignatureVKey parses a cosignature/v1 Ed25519 verifier key string
// and checks its key ID. It splits on the first two '+' only: the base64 key
// may itself contain '+'.
func ParseCosignatureVKey(vkey string) (name string, pub ed25519.PublicKey, err error) {
	name, id, key, err := splitKey(vkey)
	if err != nil {
		return "", nil, err
	}
	if len(key) != 1+ed25519.PublicKeySize || key[0] != CosignatureType {
		return "", nil, fmt.Errorf("%w: %q is not an Ed25519 cosignature/v1 (type 0x04) key", ErrMalformedCosignature, name)
	}
	pub = ed25519.PublicKey(key[1:])
	if id != CosignatureKeyID(name, pub) {
		return "", nil, fmt.Errorf("%w: key ID of %q does not match its key", ErrMalformedCosignature, name)
	}
	return name, pub, nil
}

func splitKey(s string) (name string, id uint32, key []byte, err error) {
	name, rest, ok1 := strings.Cut(s, "+")
	idHex, b64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !ValidOrigin(name) || len(idHex) != 8 {
		return "", 0, nil, fmt.Errorf("%w: key is not <name>+<id>+<key>", ErrMalformedCosignature)
	}
	idb, err := hex.DecodeString(idHex)
	if err != nil {
		return "", 0, nil, fmt.Errorf("%w: key ID is not hex", ErrMalformedCosignature)
	}
	key, err = base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return "", 0, nil, fmt.Errorf("%w: key is not base64", ErrMalformedCosignature)
	}
	return name, binary.BigEndian.Uint32(idb), key, nil
}

// CosignatureMessage returns the message an Ed25519 cosignature/v1 signs for
// the checkpoint note text (ending in a newline, extension lines included) at
// the given POSIX time in seconds.
func CosignatureMessage(text string, timestamp uint64) []byte {
	msg := make([]byte, 0, len(cosignatureHeader)+26+len(text))
	msg = append(msg, cosignatureHeader...)
	msg = append(msg, "time "...)
	msg = strconv.AppendUint(msg, timestamp, 10)
	msg = append(msg, '\n')
	return append(msg, text...)
}

// ParseCosignature splits the signature bytes of a cosignature/v1 line (the
// decoded base64 after the 4-byte key ID, as note.Verifier.Verify receives
// them) into the timestamp and the Ed25519 signature. The timestamp must be
// at most 2^63-1.
func ParseCosignature(sig []byte) (timestamp uint64, edsig []byte, err error) {
	if len(sig) != CosignatureSize-4 {
		return 0, nil, fmt.Errorf("%w: %d signature bytes, want %d", ErrMalformedCosignature, len(sig), CosignatureSize-4)
	}
	timestamp = binary.BigEndian.Uint64(sig)
	if timestamp > math.MaxInt64 {
		return 0, nil, fmt.Errorf("%w: timestamp above 2^63-1", ErrMalformedCosignature)
	}
	return timestamp, sig[8:], nil
}

// CosignatureTime returns the timestamp of a verified cosignature/v1 note
// signature s (as found in note.Note.Sigs).
func CosignatureTime(s note.Signature) (time.Time, error) {
	b, err := base64.StdEncoding.DecodeString(s.Base64)
	if err != nil || len(b) != CosignatureSize {
		return time.Time{}, fmt.Errorf("%w: signature of %q is not %d bytes", ErrMalformedCosignature, s.Name, CosignatureSize)
	}
	ts, _, err := ParseCosignature(b[4:])
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(int64(ts), 0), nil
}

// Cosigner is a note.Signer that produces Ed25519 cosignature/v1 signatures.
// It signs only messages that are strictly parseable checkpoint text whose
// re-encoding is byte-identical, so a caller cannot be tricked into
// cosigning something that is not a checkpoint. Safe for concurrent use.
type Cosigner struct {
	name string
	id   uint32
	priv ed25519.PrivateKey
	now  func() time.Time
}

// NewCosigner returns a Cosigner named name with key priv. now supplies the
// timestamp (truncated to seconds); nil means time.Now.
func NewCosigner(name string, priv ed25519.PrivateKey, now func() time.Time) (*Cosigner, error) {
	if !ValidOrigin(name) {
		return nil, fmt.Errorf("%w: invalid cosigner name %q", ErrMalformedCosignature, name)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key of %d bytes", ErrMalformedCosignature, len(priv))
	}
	if now == nil {
		now = time.Now
	}
	return &Cosigner{name: name, id: CosignatureKeyID(name, priv.Public().(ed25519.PublicKey)), priv: priv, now: now}, nil
}

// Name returns the cosigner name.
func (c *Cosigner) Name() string { return c.name }

// KeyHash returns the cosigner key ID (type 0x04).
func (c *Cosigner) KeyHash() uint32 { return c.id }

// VKey returns the cosigner's verifier key string.
func (c *Cosigner) VKey() string {
	return CosignatureVKey(c.name, c.priv.Public().(ed25519.PublicKey))
}

// Verifier returns a verifier for this cosigner's signatures.
func (c *Cosigner) Verifier() note.Verifier {
	return &cosignatureVerifier{name: c.name, id: c.id, pub: c.priv.Public().(ed25519.PublicKey)}
}

// Sign returns timestamp || Ed25519 signature for the checkpoint text msg.
func (c *Cosigner) Sign(msg []byte) ([]byte, error) {
	cp, err := ParseCheckpoint(string(msg))
	if err != nil {
		return nil, fmt.Errorf("tlog: refusing to cosign: %w", err)
	}
	if cp.String() != string(msg) {
		return nil, fmt.Errorf("tlog: refusing to cosign a non-canonical checkpoint")
	}
	ts := c.now().Unix()
	if ts <= 0 {
		return nil, fmt.Errorf("tlog: refusing to cosign with timestamp %d", ts)
	}
	sig := make([]byte, 8, CosignatureSize-4)
	binary.BigEndian.PutUint64(sig, uint64(ts))
	return append(sig, ed25519.Sign(c.priv, CosignatureMessage(string(msg), uint64(ts)))...), nil
}

// NewCosignatureVerifier returns a note.Verifier for the cosignature/v1
// Ed25519 verifier key vkey.
func NewCosignatureVerifier(vkey string) (note.Verifier, error) {
	name, pub, err := ParseCosignatureVKey(vkey)
	if err != nil {
		return nil, err
	}
	return &cosignatureVerifier{name: name, id: CosignatureKeyID(name, pub), pub: pub}, nil
}

type cosignatureVerifier struct {
	name string
	id   uint32
	pub  ed25519.PublicKey
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.id }
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	ts, edsig, err := ParseCosignature(sig)
	if err != nil {
		return false
	}
	return ed25519.Verify(v.pub, CosignatureMessage(string(msg), ts), edsig)
}
