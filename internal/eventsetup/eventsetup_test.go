package eventsetup

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMasterKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, masterKeySize)
	for _, in := range [][]byte{key, []byte(hex.EncodeToString(key) + "\n"), []byte(base64.StdEncoding.EncodeToString(key))} {
		if got, err := ParseMasterKey(in, "test"); err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseMasterKey(%q) = %x, %v", in, got, err)
		}
	}
	short := hex.EncodeToString(key[:10])
	if _, err := ParseMasterKey([]byte(short), "test"); err == nil || strings.Contains(err.Error(), short) {
		t.Errorf("short key: error %v (must fail without the key)", err)
	}
}

func TestMasterKeyCreatedOnce(t *testing.T) {
	t.Setenv(MasterKeyEnv, "")
	os.Unsetenv(MasterKeyEnv)
	dir := t.TempDir()
	k1, err := MasterKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, MasterKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v, %v", st, err)
	}
	if k2, err := MasterKey(dir, ""); err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second start: %x, %v; want %x", k2, err, k1)
	}
	t.Setenv(MasterKeyEnv, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, masterKeySize)))
	if k, err := MasterKey(dir, ""); err != nil || k[0] != 1 {
		t.Fatalf("from the environment: %x, %v", k, err)
	}
	if _, err := MasterKey(dir, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing --master-key file was accepted")
	}
}
