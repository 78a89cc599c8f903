package eventstore

import (
	"bytes"
	"errors"
	"testing"
)

// TestSealedState: sealed state opens under the same label and master key
// (across a reopen, with the cached AEAD), not under another label; a
// state name is stable across a reopen, 16 bytes, and differs by label and
// name, and with the master key.
func TestSealedState(t *testing.T) {
	e := newEnv(t, nil)
	sealed, err := e.l.SealState("a", []byte("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("alice")) {
		t.Fatal("sealed state holds the plaintext")
	}
	n1 := e.l.StateName("a", []byte("rule\x00alice"))
	e.reopen()
	if pt, err := e.l.OpenState("a", sealed); err != nil || string(pt) != "alice" {
		t.Fatalf("open after reopen: %q %v", pt, err)
	}
	if _, err := e.l.OpenState("b", sealed); !errors.Is(err, ErrBadState) {
		t.Fatalf("open under another label: %v", err)
	}
	if n2 := e.l.StateName("a", []byte("rule\x00alice")); !bytes.Equal(n1, n2) || len(n1) != 16 {
		t.Fatalf("names %x %x", n1, n2)
	}
	if bytes.Equal(n1, e.l.StateName("b", []byte("rule\x00alice"))) || bytes.Equal(n1, e.l.StateName("a", []byte("rule\x00bob"))) {
		t.Fatal("a state name does not depend on its label and name")
	}
	other := newEnv(t, nil)
	if bytes.Equal(n1, other.l.StateName("a", []byte("rule\x00alice"))) {
		t.Fatal("a state name does not depend on the master key")
	}
}
