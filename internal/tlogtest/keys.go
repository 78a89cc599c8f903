package tlogtest

import (
	"crypto/rand"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// Key is an Ed25519 note key pair.
type Key struct {
	SKey, VKey string
	Signer     note.Signer
	Verifier   note.Verifier
}

// NewKey generates a key pair named name.
func NewKey(t testing.TB, name string) Key {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return ParseKey(t, skey, vkey)
}

// ParseKey returns the key pair of skey and vkey.
func ParseKey(t testing.TB, skey, vkey string) Key {
	t.Helper()
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return Key{SKey: skey, VKey: vkey, Signer: s, Verifier: v}
}

// TesseraKey returns the key of the tessera test log.
func TesseraKey(t testing.TB) Key { return ParseKey(t, TesseraSKey, TesseraVKey) }
