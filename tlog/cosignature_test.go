package tlog

import (
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Test vectors (cross-verified with formats and torchwood).
const (
	vecSeed   = "85d4c6b99bb41b01cf2fc3611275b3a2bb094c418c65597eba32277e328f3639"
	vecName   = "witness.example.com/w1"
	vecVKey   = "witness.example.com/w1+a7df00f4+BH2nLFiWOYsfK4bFRNwprxpSWoAvvDirH64MERtOVgn2"
	vecText   = "example.com/log/testdata\n15\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=\n"
	vecLine   = "— witness.example.com/w1 p98A9AAAAABlU/EAkW0k9BOd5sfRjlFGy3G4NvqVnxIAEaZG4GSakVM+9aDTNEmuczLr5BLXZ514Oxb5O42lQ4j5VVnvXPu+knaFAA==\n"
	vecExtTxt = "example.com/log/testdata\n15\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=\next line one\n"
	vecExtSig = "— witness.example.com/w1 p98A9AAAAABlU/EAMDQuQzi3BjIB3vT23saDE5DvZhwrRwh9JIQcx0Qv+phNV/PIvs0rRGJE9TBjEAO5/3Z9AlGF8VhrIODaJtMbAQ==\n"
)

func vecCosigner(t *testing.T) *Cosigner {
	t.Helper()
	seed, _ := hex.DecodeString(vecSeed)
	c, err := NewCosigner(vecName, ed25519.NewKeyFromSeed(seed), func() time.Time { return time.Unix(1700000000, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCosignatureVector(t *testing.T) {
	c := vecCosigner(t)
	if c.VKey() != vecVKey {
		t.Fatalf("vkey = %s, want %s", c.VKey(), vecVKey)
	}
	if got := c.KeyHash(); got != 0xa7df00f4 {
		t.Fatalf("key ID = %08x, want a7df00f4", got)
	}
	want := "cosignature/v1\ntime 1700000000\n" + vecText
	if got := string(CosignatureMessage(vecText, 1700000000)); got != want || len(got) != 104 {
		t.Fatalf("message = %q (%d bytes)", got, len(got))
	}
	for _, tc := range []struct{ text, line string }{{vecText, vecLine}, {vecExtTxt, vecExtSig}} {
		signed, err := note.Sign(&note.Note{Text: tc.text}, c)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimPrefix(string(signed), tc.text+"\n"); got != tc.line {
			t.Fatalf("signature line = %q, want %q", got, tc.line)
		}
		// Independent verifier: transparency-dev/formats.
		fv, err := fnote.NewVerifierForCosignatureV1(vecVKey)
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(signed, note.VerifierList(fv))
		if err != nil || len(n.Sigs) != 1 {
			t.Fatalf("formats verifier rejected our cosignature: %v", err)
		}
		ts, err := CosignatureTime(n.Sigs[0])
		if err != nil || ts.Unix() != 1700000000 {
			t.Fatalf("CosignatureTime = %v, %v", ts, err)
		}
	}
}

func TestCosignatureVerifier(t *testing.T) {
	v, err := NewCosignatureVerifier(vecVKey)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(vecText + "\n" + vecLine)
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("vector does not verify: %v", err)
	}
	// Every flipped byte of the signature line's base64 is rejected.
	line := []byte(vecLine)
	start := strings.LastIndex(vecLine, " ") + 1
	for i := start; i < len(line)-3; i++ { // keep the padding and newline
		bad := append([]byte(nil), line...)
		bad[i] ^= 0x01
		if _, err := note.Open([]byte(vecText+"\n"+string(bad)), note.VerifierList(v)); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	// A different text is rejected.
	if _, err := note.Open([]byte(vecExtTxt+"\n"+vecLine), note.VerifierList(v)); err == nil {
		t.Fatal("cosignature verified over the wrong text")
	}
	// A log (0x01) vkey is not a cosignature key.
	if _, err := NewCosignatureVerifier("example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"); err == nil {
		t.Fatal("0x01 key accepted as cosignature key")
	}
	// Wrong key ID.
	if _, err := NewCosignatureVerifier("witness.example.com/w1+a7df00f5+BH2nLFiWOYsfK4bFRNwprxpSWoAvvDirH64MERtOVgn2"); err == nil {
		t.Fatal("wrong key ID accepted")
	}
	for i := range vecVKey {
		if _, err := NewCosignatureVerifier(vecVKey[:i]); err == nil {
			t.Fatalf("truncated vkey %q accepted", vecVKey[:i])
		}
	}
}

func TestCosignerRefusesNonCheckpoints(t *testing.T) {
	c := vecCosigner(t)
	for _, msg := range []string{"hello\n", "example.com/log\n05\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", ""} {
		if _, err := c.Sign([]byte(msg)); err == nil {
			t.Fatalf("cosigned %q", msg)
		}
	}
}

func TestCosignerKeyRoundTrip(t *testing.T) {
	c := vecCosigner(t)
	skey := CosignerKey(vecName, c.priv)
	name, priv, err := ParseCosignerKey(skey)
	if err != nil || name != vecName || !priv.Equal(c.priv) {
		t.Fatalf("round trip: %v", err)
	}
	// formats accepts our 0x04 private key format and signs identically.
	fs, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatalf("formats rejects our private key: %v", err)
	}
	if fs.KeyHash() != c.KeyHash() || fs.Name() != c.Name() {
		t.Fatal("formats signer has a different identity")
	}
	if _, _, err := ParseCosignerKey(strings.Replace(skey, "a7df00f4", "a7df00f5", 1)); err == nil {
		t.Fatal("wrong key ID accepted")
	}
	name2, pub, err := ParseCosignatureVKey(vecVKey)
	if err != nil || name2 != vecName || !pub.Equal(c.priv.Public()) {
		t.Fatalf("ParseCosignatureVKey: %v", err)
	}
}

func TestParseCosignature(t *testing.T) {
	if _, _, err := ParseCosignature(make([]byte, 71)); err == nil {
		t.Fatal("short signature accepted")
	}
	big := make([]byte, 72)
	big[0] = 0x80
	if _, _, err := ParseCosignature(big); err == nil {
		t.Fatal("timestamp above 2^63-1 accepted")
	}
}

func FuzzParseCosignatureVKey(f *testing.F) {
	f.Add(vecVKey)
	f.Add("example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx")
	f.Fuzz(func(t *testing.T, s string) {
		name, pub, err := ParseCosignatureVKey(s)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to the same string: the key ID was checked.
		if got := CosignatureVKey(name, pub); got != s {
			t.Fatalf("ParseCosignatureVKey(%q) re-encodes as %q", s, got)
		}
	})
}
