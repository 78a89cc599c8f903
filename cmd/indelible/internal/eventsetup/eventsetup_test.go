package eventsetup

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMasterKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, masterKeySize)
	for _, in := range [][]byte{[]byte(hex.EncodeToString(key) + "\n"), []byte(strings.ToUpper(hex.EncodeToString(key))),
		[]byte(" " + base64.StdEncoding.EncodeToString(key) + "\n")} {
		if got, err := ParseMasterKey(in, "test"); err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseMasterKey(%q) = %x, %v", in, got, err)
		}
	}
	short := hex.EncodeToString(key[:10])
	if _, err := ParseMasterKey([]byte(short), "test"); err == nil || strings.Contains(err.Error(), short) {
		t.Errorf("short key: error %v (must fail without the key)", err)
	}
}

// TestMasterKeyPassphraseRefused: $INDELIBLE_MASTER_KEY holding 32
// characters (a passphrase) is refused, with a message saying what is
// accepted and not echoing the value; so are 32 printable bytes in a key
// file, and base64 without its padding or of another length. 32 raw random
// bytes in a file are still a key.
func TestMasterKeyPassphraseRefused(t *testing.T) {
	const pass = "correct horse battery staple 42!" // 32 characters
	if len(pass) != masterKeySize {
		t.Fatal("the passphrase must be 32 bytes long")
	}
	t.Setenv(MasterKeyEnv, pass)
	_, _, err := MasterKey(t.TempDir(), KeyOptions{}, true)
	if err == nil || strings.Contains(err.Error(), pass) || !strings.Contains(err.Error(), "hex") || !strings.Contains(err.Error(), "base64") ||
		!strings.Contains(err.Error(), "$"+MasterKeyEnv) {
		t.Fatalf("a 32-character passphrase in $%s: %v", MasterKeyEnv, err)
	}
	key := bytes.Repeat([]byte{0x5a}, masterKeySize)
	for _, bad := range []string{base64.RawStdEncoding.EncodeToString(key), base64.URLEncoding.EncodeToString(append(key, 0xfb)),
		base64.StdEncoding.EncodeToString(key[:31]), hex.EncodeToString(key)[:63] + "g", "", strings.Repeat("a", 64) + "00"} {
		if _, err := ParseMasterKey([]byte(bad), "test"); err == nil {
			t.Errorf("ParseMasterKey(%q) accepted", bad)
		}
	}

	os.Unsetenv(MasterKeyEnv)
	dir := t.TempDir()
	file := filepath.Join(t.TempDir(), "k")
	os.WriteFile(file, []byte(pass), 0o600)
	if _, _, err := MasterKey(dir, KeyOptions{File: file}, true); err == nil || strings.Contains(err.Error(), pass) {
		t.Fatalf("a 32-character passphrase in a key file: %v", err)
	}
	raw := make([]byte, masterKeySize)
	rand.Read(raw)
	raw[0] = 0 // not printable, as a random key almost surely has a byte
	os.WriteFile(file, raw, 0o600)
	if k, _, err := MasterKey(dir, KeyOptions{File: file}, true); err != nil || !bytes.Equal(k, raw) {
		t.Fatalf("32 raw bytes in a key file: %x, %v", k, err)
	}
}

// TestMasterKeyOutsideData: by default the master key is created beside
// the data directory, not in it; a --master-key file inside it is refused
// unless allowed; the master.key of an earlier version is still used (and
// flagged); two different keys are refused; and a store holding events
// never gets a new key.
func TestMasterKeyOutsideData(t *testing.T) {
	os.Unsetenv(MasterKeyEnv)
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	os.Mkdir(dir, 0o700)
	def := filepath.Join(root, "data.master.key")
	if got := DefaultMasterKeyPath(dir + "/"); got != def {
		t.Fatalf("DefaultMasterKeyPath = %s, want %s", got, def)
	}
	if _, _, err := MasterKey(dir, KeyOptions{}, false); err == nil || !strings.Contains(err.Error(), "--master-key") {
		t.Fatalf("no key for a store holding events: %v", err)
	}
	k1, src, err := MasterKey(dir, KeyOptions{}, true)
	if err != nil || src != (KeySource{Path: def, Created: true}) {
		t.Fatalf("first start: %+v, %v", src, err)
	}
	if st, err := os.Stat(def); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(dir, MasterKeyFile)); err == nil {
		t.Fatal("master key created in the data directory")
	}
	if k2, src, err := MasterKey(dir, KeyOptions{}, false); err != nil || !bytes.Equal(k1, k2) || src != (KeySource{Path: def}) {
		t.Fatalf("second start: %x %+v, %v; want %x", k2, src, err, k1)
	}

	// --master-key inside the data directory (also through a symlink).
	in := filepath.Join(dir, "sub", "my.key")
	os.Mkdir(filepath.Dir(in), 0o700)
	os.WriteFile(in, []byte(hex.EncodeToString(k1)), 0o600)
	link := filepath.Join(root, "link")
	os.Symlink(dir, link)
	for _, f := range []string{in, filepath.Join(link, "sub", "my.key"), filepath.Join(dir, "..", "data", "sub", "my.key")} {
		if _, _, err := MasterKey(dir, KeyOptions{File: f}, true); err == nil || !strings.Contains(err.Error(), "--allow-key-in-data") {
			t.Errorf("--master-key %s inside the data directory: %v", f, err)
		}
	}
	if k, src, err := MasterKey(dir, KeyOptions{File: in, AllowInData: true}, true); err != nil || !bytes.Equal(k, k1) || !src.InData {
		t.Fatalf("--master-key inside, allowed: %+v, %v", src, err)
	}
	if _, src, err := MasterKey(dir, KeyOptions{File: def}, true); err != nil || src.InData {
		t.Fatalf("--master-key beside the directory: %+v, %v", src, err)
	}

	// An earlier version's <data>/master.key: used, flagged; a copy left
	// behind is fine; a different key is refused.
	legacy := filepath.Join(dir, MasterKeyFile)
	os.Rename(def, legacy)
	if k, src, err := MasterKey(dir, KeyOptions{}, false); err != nil || !bytes.Equal(k, k1) || src != (KeySource{Path: legacy, InData: true}) {
		t.Fatalf("legacy key: %+v, %v", src, err)
	}
	if _, err := os.Stat(def); err == nil {
		t.Fatal("a new key was made beside a legacy one")
	}
	os.WriteFile(def, []byte(base64.StdEncoding.EncodeToString(k1)), 0o600)
	if k, src, err := MasterKey(dir, KeyOptions{}, false); err != nil || !bytes.Equal(k, k1) || !src.InData {
		t.Fatalf("legacy key and its copy: %+v, %v", src, err)
	}
	os.WriteFile(def, []byte(hex.EncodeToString(bytes.Repeat([]byte{1}, 32))), 0o600)
	if _, _, err := MasterKey(dir, KeyOptions{}, false); err == nil || !strings.Contains(err.Error(), "two different master keys") {
		t.Fatalf("two different keys: %v", err)
	}

	// The environment wins over files.
	t.Setenv(MasterKeyEnv, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, masterKeySize)))
	if k, src, err := MasterKey(dir, KeyOptions{}, false); err != nil || k[0] != 7 || src.Path != "" {
		t.Fatalf("from the environment: %x %+v, %v", k, src, err)
	}
	if _, _, err := MasterKey(dir, KeyOptions{File: filepath.Join(root, "missing")}, true); err == nil {
		t.Fatal("a missing --master-key file was accepted")
	}
}

// FuzzParseMasterKey: a key is accepted only as exactly 32 bytes, and every
// refusal is the same message, so no input is ever echoed.
func FuzzParseMasterKey(f *testing.F) {
	key := bytes.Repeat([]byte{0xc3}, masterKeySize)
	for _, s := range []string{hex.EncodeToString(key), base64.StdEncoding.EncodeToString(key), string(key), "correct horse battery staple 42!", "", " \n"} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	_, refused := parseMasterKey(nil, "x", false)
	_, refusedRaw := parseMasterKey(nil, "x", true)
	f.Fuzz(func(t *testing.T, in []byte, raw bool) {
		k, err := parseMasterKey(in, "x", raw)
		switch {
		case err == nil && len(k) != masterKeySize:
			t.Fatalf("accepted %d bytes", len(k))
		case err != nil && !raw && err.Error() != refused.Error(), err != nil && raw && err.Error() != refusedRaw.Error():
			t.Fatalf("refusal %q differs from %q", err, refused)
		}
	})
}
