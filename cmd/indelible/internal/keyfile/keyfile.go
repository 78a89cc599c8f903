// Package keyfile reads and writes the key files of Indelible's commands:
// c2sp.org/signed-note Ed25519 signer keys (secret, mode 0600), their
// verifier keys (public), and other secrets kept in a data directory.
//
// A secret file is created exclusively (never silently overwritten), with
// its mode set before any byte is written, and synced before it is
// reported written. Errors never include a key.
package keyfile

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// File permissions.
const (
	// SecretPerm is the mode of a file holding a secret: a signer key, a
	// token.
	SecretPerm = fs.FileMode(0o600)
	// PublicPerm is the mode of a file holding a public value: a verifier
	// key, an address.
	PublicPerm = fs.FileMode(0o644)
)

// Generate creates an Ed25519 note key pair named name, writes the signer key
// to skeyFile (SecretPerm) and, if vkeyFile is not empty, the verifier key to
// vkeyFile (PublicPerm), and returns the verifier key. Unless force is set, a
// file that exists is an error matching fs.ErrExist. A name must be
// non-empty, valid UTF-8, without spaces or "+" (c2sp.org/signed-note).
func Generate(name, skeyFile, vkeyFile string, force bool) (string, error) {
	if name == "" || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsSpace) || strings.Contains(name, "+") {
		return "", fmt.Errorf("keyfile: key name %q: want a non-empty name without spaces or \"+\" (e.g. example.com/log)", name)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", fmt.Errorf("keyfile: generating key %q: %w", name, err)
	}
	if err := Write(skeyFile, skey+"\n", SecretPerm, force); err != nil {
		return "", err
	}
	if vkeyFile != "" {
		if err := Write(vkeyFile, vkey+"\n", PublicPerm, force); err != nil {
			return "", err
		}
	}
	return vkey, nil
}

// Write writes data to file with mode perm and syncs it. It creates the file
// exclusively (an existing file is an error matching fs.ErrExist) unless
// force is set; an overwritten file gets perm too.
func Write(file, data string, perm fs.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(file, flags, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("keyfile: %s already exists: %w", file, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("keyfile: %w", err)
	}
	// OpenFile applies perm only on creation (and under the umask): make sure
	// an overwritten file is not left readable by others.
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.WriteString(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keyfile: writing %s: %w", file, err)
	}
	return nil
}

// LoadSigner reads a signer key file (x/mod note format) and returns the
// signer and its verifier key.
func LoadSigner(file string) (note.Signer, string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("keyfile: reading signer key: %w", err)
	}
	skey := strings.TrimSpace(string(b))
	signer, err := note.NewSigner(skey)
	if err != nil {
		// The error of note.NewSigner does not include the key.
		return nil, "", fmt.Errorf("keyfile: signer key %s: %w", file, err)
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		return nil, "", fmt.Errorf("keyfile: signer key %s: %w", file, err)
	}
	return signer, vkey, nil
}

// VerifierKey derives the verifier key of an Ed25519 signer key
// "PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>".
func VerifierKey(skey string) (string, error) {
	rest, ok := strings.CutPrefix(skey, "PRIVATE+KEY+")
	if !ok {
		return "", errors.New("not a signer key")
	}
	// Names never contain "+"; the base64 key may.
	name, rest, _ := strings.Cut(rest, "+")
	_, key64, ok := strings.Cut(rest, "+")
	if !ok {
		return "", errors.New("malformed signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("malformed signer key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}
