package tlog

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
)

// policyFixture is a log key and three witnesses, with a checkpoint signed by
// the log and cosigned by every witness.
type policyFixture struct {
	logS      note.Signer
	logVKey   string
	witnesses []*Cosigner
	wvkeys    []string
	cp        Checkpoint
}

func newPolicyFixture(t testing.TB) *policyFixture {
	t.Helper()
	skey, vkey, err := note.GenerateKey(nil, tlogtest.TesseraOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	f := &policyFixture{logS: s, logVKey: vkey,
		cp: Checkpoint{Origin: tlogtest.TesseraOrigin, Tree: tlog.Tree{N: 7, Hash: tlog.Hash{1, 2, 3}}}}
	for i := 0; i < 3; i++ {
		f.addWitness(t, fmt.Sprintf("w%d.example", i))
	}
	return f
}

func (f *policyFixture) addWitness(t testing.TB, name string) *Cosigner {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	c, err := NewCosigner(name, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.witnesses = append(f.witnesses, c)
	f.wvkeys = append(f.wvkeys, c.VKey())
	return c
}

// sign returns the checkpoint signed by the given signers.
func (f *policyFixture) sign(t testing.TB, signers ...note.Signer) []byte {
	t.Helper()
	msg, err := SignCheckpoint(f.cp, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func (f *policyFixture) all() []note.Signer {
	out := []note.Signer{f.logS}
	for _, w := range f.witnesses {
		out = append(out, w)
	}
	return out
}

func TestPolicyOpen(t *testing.T) {
	f := newPolicyFixture(t)
	p, err := NewPolicy(f.logVKey, f.wvkeys, 2)
	if err != nil {
		t.Fatal(err)
	}
	c, names, err := p.Open(f.sign(t, f.all()...))
	if err != nil || c.N != f.cp.N || c.Hash != f.cp.Hash {
		t.Fatalf("Open = %+v, %v", c, err)
	}
	if !slices.Equal(names, []string{"w0.example", "w1.example", "w2.example"}) {
		t.Fatalf("cosigners %v", names)
	}
	// Two of three meet the quorum; one does not.
	if _, names, err := p.Open(f.sign(t, f.logS, f.witnesses[0], f.witnesses[2])); err != nil || len(names) != 2 {
		t.Fatalf("2 of 3: %v %v", names, err)
	}
	if _, _, err := p.Open(f.sign(t, f.logS, f.witnesses[1])); !errors.Is(err, ErrPolicy) {
		t.Fatalf("1 of 3 with quorum 2: %v", err)
	}
	// Quorum 0 means all.
	pall, err := NewPolicy(f.logVKey, f.wvkeys, 0)
	if err != nil || pall.Quorum != 3 {
		t.Fatalf("NewPolicy quorum 0: %+v %v", pall, err)
	}
	if _, _, err := pall.Open(f.sign(t, f.logS, f.witnesses[0], f.witnesses[1])); !errors.Is(err, ErrPolicy) {
		t.Fatalf("2 of 3 with quorum all: %v", err)
	}
	// Cosignatures without the log's signature are never enough.
	ws := []note.Signer{}
	for _, w := range f.witnesses {
		ws = append(ws, w)
	}
	if _, _, err := p.Open(f.sign(t, ws...)); !errors.Is(err, ErrPolicy) {
		t.Fatalf("no log signature: %v", err)
	}
}

// TestPolicyMutations flips every byte of a fully cosigned checkpoint: no
// mutation opens to the same checkpoint with the same cosigners.
func TestPolicyMutations(t *testing.T) {
	f := newPolicyFixture(t)
	p, err := NewPolicy(f.logVKey, f.wvkeys, 3)
	if err != nil {
		t.Fatal(err)
	}
	orig := f.sign(t, f.all()...)
	for i := range orig {
		for _, x := range flips {
			m := bytes.Clone(orig)
			m[i] ^= x
			if c, names, err := p.Open(m); err == nil {
				t.Fatalf("byte %d ^ %#x accepted as %+v by %v:\n%s", i, x, c, names, m)
			}
		}
		if _, _, err := p.Open(orig[:i]); err == nil {
			t.Fatalf("truncation to %d bytes accepted", i)
		}
	}
}

// TestPolicyWitnessNamedLikeOrigin: a witness key named like the log can
// neither join a policy nor stand in for the log's signature, and a note key
// with the origin's name but another key hash is not the log's key.
func TestPolicyWitnessNamedLikeOrigin(t *testing.T) {
	f := newPolicyFixture(t)
	impostor := f.addWitness(t, tlogtest.TesseraOrigin)
	if _, err := NewPolicy(f.logVKey, f.wvkeys, 1); err == nil || !strings.Contains(err.Error(), "log's own name") {
		t.Fatalf("NewPolicy with a witness named like the origin: %v", err)
	}
	lv, _ := note.NewVerifier(f.logVKey)
	bad := Policy{Log: lv, Witnesses: []note.Verifier{impostor.Verifier()}, Quorum: 0}
	if _, _, err := bad.Open(f.sign(t, impostor)); err == nil {
		t.Fatal("Policy.Open accepted a checkpoint signed only by a witness named like the origin")
	}
	// The impostor's cosignature alone, opened with the log's key: refused.
	if _, _, err := OpenCheckpoint(f.sign(t, impostor), lv); err == nil {
		t.Fatal("OpenCheckpoint accepted a checkpoint signed only by a cosigner named like the origin")
	}

	// Another Ed25519 note key with the origin's name (a key that signed
	// elsewhere): its signature does not count as the log's.
	skey, _, err := note.GenerateKey(nil, tlogtest.TesseraOrigin)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := note.NewSigner(skey)
	p, err := NewPolicy(f.logVKey, f.wvkeys[:3], 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Open(f.sign(t, other, f.witnesses[0])); !errors.Is(err, ErrPolicy) {
		t.Fatalf("wrong key hash with the origin's name: %v", err)
	}
	if _, _, err := OpenCheckpoint(f.sign(t, other), lv); err == nil {
		t.Fatal("OpenCheckpoint accepted a signature by another key with the origin's name")
	}
}

func TestPolicyCheck(t *testing.T) {
	f := newPolicyFixture(t)
	for _, tc := range []struct {
		name   string
		wkeys  []string
		quorum int
		ok     bool
	}{
		{"no witnesses", nil, 0, true},
		{"all", f.wvkeys, 3, true},
		{"one", f.wvkeys, 1, true},
		{"quorum above count", f.wvkeys, 4, false},
		{"negative quorum", f.wvkeys, -1, false},
		{"duplicate witness", []string{f.wvkeys[0], f.wvkeys[1], f.wvkeys[0]}, 2, false},
		{"not a cosignature key", []string{f.logVKey}, 1, false},
	} {
		_, err := NewPolicy(f.logVKey, tc.wkeys, tc.quorum)
		if (err == nil) != tc.ok {
			t.Errorf("%s: NewPolicy error %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if _, err := NewPolicy("not a key", nil, 0); err == nil {
		t.Error("NewPolicy accepted a malformed log key")
	}
	if err := (Policy{}).Check(); err == nil {
		t.Error("a policy without a log key passed Check")
	}
	if _, _, err := (Policy{}).Open(f.sign(t, f.logS)); err == nil {
		t.Error("a policy without a log key opened a checkpoint")
	}
}

// TestPolicyCosignersCountedOnce: one witness's cosignature repeated (the
// same line twice, or two timestamps) counts once towards the quorum.
func TestPolicyCosignersCountedOnce(t *testing.T) {
	f := newPolicyFixture(t)
	p, err := NewPolicy(f.logVKey, f.wvkeys, 2)
	if err != nil {
		t.Fatal(err)
	}
	once := f.sign(t, f.logS, f.witnesses[0])
	text, sigs, _ := SplitNote(once)
	lines := strings.SplitAfter(string(sigs), "\n")
	var wline string
	for _, l := range lines {
		if strings.HasPrefix(l, "— w0.example ") {
			wline = l
		}
	}
	if wline == "" {
		t.Fatalf("no w0 line in\n%s", once)
	}
	twice := append(bytes.Clone(once), wline...)
	if _, names, err := p.Open(twice); err == nil {
		t.Fatalf("one witness twice met a quorum of 2: %v", names)
	}
	// A second cosignature by the same key with another timestamp.
	again, err := note.Sign(&note.Note{Text: string(text)}, f.witnesses[0])
	if err != nil {
		t.Fatal(err)
	}
	_, s2, _ := SplitNote(again)
	both := append(bytes.Clone(once), s2...)
	if _, names, err := p.Open(both); err == nil {
		t.Fatalf("one witness with two timestamps met a quorum of 2: %v", names)
	}
}
