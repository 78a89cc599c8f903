package tlogtest

import (
	"crypto/rand"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
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

// NewWitnessKey generates a c2sp.org/tlog-cosignature key named name and
// returns its cosignature/v1 signer and verifier key.
func NewWitnessKey(t testing.TB, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, cv
}
