package keyfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestGenerateLoad checks that the files Generate writes work together (a
// note signed with the loaded signer verifies with the written verifier
// key), have the right modes, and are never overwritten without force.
func TestGenerateLoad(t *testing.T) {
	dir := t.TempDir()
	skey, vkeyFile := filepath.Join(dir, "log.key"), filepath.Join(dir, "log.pub")
	vkey, err := Generate("example.com/log", skey, vkeyFile, false)
	if err != nil {
		t.Fatal(err)
	}
	for file, perm := range map[string]fs.FileMode{skey: SecretPerm, vkeyFile: PublicPerm} {
		if st, err := os.Stat(file); err != nil || st.Mode().Perm() != perm {
			t.Fatalf("%s: %v, mode %v", file, err, st.Mode())
		}
	}
	if b, _ := os.ReadFile(vkeyFile); strings.TrimSpace(string(b)) != vkey {
		t.Fatalf("verifier key file holds %q, want %q", b, vkey)
	}
	s, got, err := LoadSigner(skey)
	if err != nil || got != vkey || s.Name() != "example.com/log" {
		t.Fatalf("LoadSigner: %v %q %v", s, got, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "hi\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("a note signed with the loaded key does not verify: %v", err)
	}
	if _, err := Generate("example.com/log", skey, "", false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Generate over an existing key: %v", err)
	}
	if b, _ := os.ReadFile(skey); !strings.Contains(string(b), "PRIVATE+KEY+example.com/log+") {
		t.Fatal("the existing key was changed")
	}
	// force overwrites, and resets a loosened mode.
	os.Chmod(skey, 0o644)
	if _, err := Generate("example.com/other", skey, "", true); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(skey); st.Mode().Perm() != SecretPerm {
		t.Fatalf("overwritten key has mode %v", st.Mode())
	}
	for _, name := range []string{"", "a b", "a+b", "tab\t", string([]byte{0xff})} {
		if _, err := Generate(name, filepath.Join(dir, "x.key"), "", false); err == nil {
			t.Errorf("Generate(%q) accepted the name", name)
		}
	}
}

func TestLoadSignerErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadSigner(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	skey, _, _ := note.GenerateKey(nil, "example.com/log")
	for _, bad := range []string{"", "not a key", strings.Replace(skey, "PRIVATE+KEY+", "PRIVATE+KEY+x", 1), skey[:len(skey)-4]} {
		file := filepath.Join(dir, "bad.key")
		if err := Write(file, bad, SecretPerm, true); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadSigner(file)
		if err == nil {
			t.Errorf("LoadSigner accepted %q", bad)
		} else if strings.Contains(err.Error(), "PRIVATE") {
			t.Errorf("the error includes the key: %v", err)
		}
	}
}

// TestVerifierKey checks VerifierKey against x/mod's own key generation, and
// that every truncation of a signer key is rejected or differs.
func TestVerifierKey(t *testing.T) {
	for _, name := range []string{"example.com/log", "w", "indelible.local/witness"} {
		skey, vkey, err := note.GenerateKey(nil, name)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := VerifierKey(skey); err != nil || got != vkey {
			t.Fatalf("VerifierKey(%s) = %q, %v; want %q", name, got, err, vkey)
		}
		for i := range len(skey) {
			if got, err := VerifierKey(skey[:i]); err == nil && got == vkey {
				t.Fatalf("a truncated key gives the same verifier key")
			}
		}
	}
	if _, err := VerifierKey("example.com/log+12345678+AAAA"); err == nil {
		t.Error("a verifier key accepted as a signer key")
	}
}
