package tlog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// MaxCheckpointSize is the largest checkpoint note (text and signatures) that
// ParseCheckpoint and OpenCheckpoint accept. Real checkpoints are a few hundred
// bytes; a note carrying many post-quantum cosignatures stays well below it.
const MaxCheckpointSize = 64 << 10

// MaxExtensionLines bounds the optional extension lines of a checkpoint.
const MaxExtensionLines = 16

// ErrMalformedCheckpoint is returned, possibly wrapped, for any checkpoint
// text that does not follow c2sp.org/tlog-checkpoint exactly.
var ErrMalformedCheckpoint = errors.New("malformed checkpoint")

// EmptyRoot is the root hash of the empty tree, SHA-256 of the empty string.
var EmptyRoot = tlog.Hash{
	0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
	0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
}

// Checkpoint is the body of a c2sp.org/tlog-checkpoint signed note: the
// origin line, the tree (size and root hash) and optional extension lines.
type Checkpoint struct {
	Origin string
	tlog.Tree
	// Extension holds the optional extension lines, without their newlines.
	// Each is non-empty.
	Extension []string
}

// String returns the checkpoint note text: origin, size, base64 root and the
// extension lines, each terminated by a newline. ParseCheckpoint(c.String())
// returns c for every valid c.
func (c Checkpoint) String() string {
	var b strings.Builder
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatInt(c.N, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Hash[:]))
	b.WriteByte('\n')
	for _, e := range c.Extension {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.String()
}

// ParseCheckpoint parses checkpoint note text (without the blank line and
// signatures) strictly: a valid origin, a decimal size with no sign and no
// leading zeros, a standard base64 root of exactly 32 bytes with canonical
// padding, and non-empty extension lines. Every error wraps
// ErrMalformedCheckpoint.
func ParseCheckpoint(text string) (Checkpoint, error) {
	if len(text) > MaxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("%w: larger than %d bytes", ErrMalformedCheckpoint, MaxCheckpointSize)
	}
	if !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, fmt.Errorf("%w: text does not end in a newline", ErrMalformedCheckpoint)
	}
	if !utf8.ValidString(text) {
		return Checkpoint{}, fmt.Errorf("%w: not valid UTF-8", ErrMalformedCheckpoint)
	}
	lines := strings.Split(text[:len(text)-1], "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("%w: fewer than three lines", ErrMalformedCheckpoint)
	}
	if len(lines)-3 > MaxExtensionLines {
		return Checkpoint{}, fmt.Errorf("%w: more than %d extension lines", ErrMalformedCheckpoint, MaxExtensionLines)
	}
	var c Checkpoint
	if !ValidOrigin(lines[0]) {
		return Checkpoint{}, fmt.Errorf("%w: invalid origin line %q", ErrMalformedCheckpoint, lines[0])
	}
	c.Origin = lines[0]
	n, err := ParseSize(lines[1])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: size line: %v", ErrMalformedCheckpoint, err)
	}
	c.N = n
	h, err := ParseHash(lines[2])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: root hash line: %v", ErrMalformedCheckpoint, err)
	}
	c.Hash = h
	for _, e := range lines[3:] {
		if e == "" {
			return Checkpoint{}, fmt.Errorf("%w: empty extension line", ErrMalformedCheckpoint)
		}
		if hasControl(e) {
			return Checkpoint{}, fmt.Errorf("%w: control character in extension line", ErrMalformedCheckpoint)
		}
		c.Extension = append(c.Extension, e)
	}
	return c, nil
}

// ValidOrigin reports whether s can be a checkpoint origin and note key name:
// non-empty, valid UTF-8, no Unicode spaces, no '+', no control characters.
func ValidOrigin(s string) bool {
	if s == "" || !utf8.ValidString(s) || strings.Contains(s, "+") {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// ParseSize parses a tree size or index written in decimal with no sign and
// no leading zeros ("0" is the only value starting with 0).
func ParseSize(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("leading zero in %q", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("non-digit in %q", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number %q out of range", s)
	}
	return n, nil
}

// ParseHash decodes a standard, padded base64 SHA-256 hash, rejecting any
// encoding that does not round-trip (non-canonical trailing bits, missing or
// extra padding, other lengths).
func ParseHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	if len(s) != 44 {
		return h, fmt.Errorf("hash %q is not 44 base64 characters", s)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		return h, fmt.Errorf("hash %q is not base64 of 32 bytes", s)
	}
	copy(h[:], b)
	return h, nil
}

// SignCheckpoint returns the signed note for c, signed by each signer. The
// log's own signer's name must equal c.Origin.
func SignCheckpoint(c Checkpoint, signers ...note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.String()}, signers...)
}

// OpenCheckpoint verifies a signed checkpoint note against the log's own
// keys and parses its text strictly. logKeys are the log's note verifiers
// (usually one; more while a key is rotated), all named after the origin. At
// least one signature must verify with one of them, matched by name AND key
// hash: a signature by any other key, whatever its name, never stands in for
// the log's. A signature by a known key that fails to verify is an error (as
// note.Open does); signatures by other keys are ignored and not returned.
// Use Policy.Open to check witness cosignatures as well.
func OpenCheckpoint(msg []byte, logKeys ...note.Verifier) (Checkpoint, *note.Note, error) {
	if len(logKeys) == 0 {
		return Checkpoint{}, nil, errors.New("tlog: OpenCheckpoint needs the log's verifier key")
	}
	origin := logKeys[0].Name()
	for _, v := range logKeys[1:] {
		if v.Name() != origin {
			return Checkpoint{}, nil, fmt.Errorf("tlog: log keys named %q and %q: one log has one origin", origin, v.Name())
		}
	}
	if len(msg) > MaxCheckpointSize {
		return Checkpoint{}, nil, fmt.Errorf("%w: note larger than %d bytes", ErrMalformedCheckpoint, MaxCheckpointSize)
	}
	// Only the log's keys are known, so every verified signature is the
	// log's (note.Open matches keys by name and hash).
	n, err := OpenNote(msg, note.VerifierList(logKeys...))
	if err != nil {
		return Checkpoint{}, nil, err
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if c.Origin != origin {
		return Checkpoint{}, nil, fmt.Errorf("%w: origin %q, want %q", ErrMalformedCheckpoint, c.Origin, origin)
	}
	if len(n.Sigs) == 0 {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint for %q carries no verified signature by the log", origin)
	}
	return c, n, nil
}

// OpenNote is note.Open that also requires every signature to be canonical
// base64 (see checkCanonicalSigs), so that one signed note has exactly one
// byte form. Use it, not note.Open, for every note from outside.
func OpenNote(msg []byte, known note.Verifiers) (*note.Note, error) {
	n, err := note.Open(msg, known)
	if err != nil {
		return nil, err
	}
	if err := checkCanonicalSigs(msg); err != nil {
		return nil, err
	}
	return n, nil
}

// checkCanonicalSigs requires every signature line of a note (which
// note.Open has already checked for shape) to be canonical padded base64.
// note.Open decodes leniently, so a signature whose last character differs
// only in its unused low bits would otherwise verify too, and one signed
// checkpoint would have several byte forms.
func checkCanonicalSigs(msg []byte) error {
	_, sigs, ok := SplitNote(msg)
	if !ok {
		return fmt.Errorf("%w: no signature block", ErrMalformedCheckpoint)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n") {
		b64 := line[strings.LastIndexByte(line, ' ')+1:]
		if _, err := base64.StdEncoding.Strict().DecodeString(b64); err != nil {
			return fmt.Errorf("%w: signature is not canonical base64", ErrMalformedCheckpoint)
		}
	}
	return nil
}

// SplitNote splits a signed note into its text (ending in a newline) and its
// signature block, at the last blank line, as c2sp.org/signed-note says. It
// does not verify anything.
func SplitNote(msg []byte) (text, sigs []byte, ok bool) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return nil, nil, false
	}
	return msg[:i+1], msg[i+2:], true
}
