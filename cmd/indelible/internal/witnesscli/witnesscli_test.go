package witnesscli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	itlog "indelible.dev/tlog"
)

// TestKeyAndToken: the key and the admin token are created once, 0600, and
// read back; a --name differing from the key's is refused.
func TestKeyAndToken(t *testing.T) {
	dir := t.TempDir()
	c, created, err := Key(dir, "")
	if err != nil || !created || c.Name() != DefaultName {
		t.Fatalf("Key = %v, %v, %v", c, created, err)
	}
	if c2, created, err := Key(dir, ""); err != nil || created || c2.VKey() != c.VKey() {
		t.Fatalf("second Key = %v, %v, %v", c2, created, err)
	}
	if _, _, err := Key(dir, "other.example/w"); err == nil {
		t.Fatal("a --name not matching the key was accepted")
	}
	tok, err := AdminToken(dir)
	if tok2, err2 := AdminToken(dir); err != nil || err2 != nil || tok == "" || tok2 != tok {
		t.Fatalf("AdminToken = %q, %v then %q, %v", tok, err, tok2, err2)
	}
	for _, f := range []string{KeyFile, TokenFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v", f, st, err)
		}
	}
	// No address file: not running.
	if u, _ := running(context.Background(), dir, http.DefaultClient); u != "" {
		t.Fatalf("running = %q without an address file", u)
	}
	remove, err := WriteAddr(dir, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := running(context.Background(), dir, http.DefaultClient); u != "" {
		t.Fatalf("running = %q with nothing listening", u)
	}
	remove()
	if _, err := os.Stat(filepath.Join(dir, AddrFile)); !os.IsNotExist(err) {
		t.Fatalf("address file left: %v", err)
	}
}

func TestParseFlags(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "log.example")
	if err != nil {
		t.Fatal(err)
	}
	_ = skey
	logs, err := ParseLogs([]string{vkey + "=http://log.example", vkey})
	if err != nil || len(logs) != 1 || logs[0].URL != "http://log.example" || len(logs[0].Verifiers) != 2 {
		t.Fatalf("ParseLogs = %+v, %v", logs, err)
	}
	if _, err := ParseLogs([]string{"nonsense"}); err == nil {
		t.Fatal("ParseLogs accepted a bad key")
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	wc, err := itlog.NewCosigner("w.example", priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if peers, err := ParsePeers([]string{wc.VKey() + "=http://w.example"}); err != nil || len(peers) != 1 {
		t.Fatalf("ParsePeers = %v, %v", peers, err)
	}
	if _, err := ParsePeers([]string{wc.VKey()}); err == nil || !strings.Contains(err.Error(), "want VKEY=URL") {
		t.Fatalf("ParsePeers without URL: %v", err)
	}
	cfg, err := LogWitnesses("log.example", []string{wc.VKey() + "=http://w.example"}, 0, nil)
	if err != nil || len(cfg.Witnesses) != 1 {
		t.Fatalf("LogWitnesses = %+v, %v", cfg, err)
	}
	if _, ok := cfg.Witnesses[0].(monitoredWitness); !ok {
		t.Fatalf("witness %T is not monitored", cfg.Witnesses[0])
	}
	if _, err := LogWitnesses("log.example", []string{wc.VKey() + "=http://a", wc.VKey() + "=http://b"}, 0, nil); err == nil {
		t.Fatal("a witness key given twice was accepted")
	}
	if _, err := LogWitnesses("w.example", []string{wc.VKey() + "=http://a"}, 0, nil); err == nil {
		t.Fatal("a witness named like the log was accepted")
	}
	if _, err := LogWitnesses("log.example", nil, 1, nil); err == nil {
		t.Fatal("a quorum above the witnesses was accepted")
	}
}
