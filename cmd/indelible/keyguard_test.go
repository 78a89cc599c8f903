package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeKeyGuard is issue 8 item 1 through the real binary: wipe the
// store but keep the key, restart: refused, saying why and what to do; a
// lost key is never replaced for an existing store; --init starts a new log
// with a fresh key, once.
func TestServeKeyGuard(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dir)
	for i := 0; i < 3; i++ {
		httpAdd(t, p.url, []byte{'a', byte('0' + i)})
	}
	p.stop(t)
	if st, err := os.Stat(filepath.Join(dir, logKeyFile+hwmSuffix)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("high-water mark: %v; want mode 0600", err)
	}

	// The store is lost, the key is kept.
	if err := os.RemoveAll(filepath.Join(dir, ledgerDir)); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--init"}} {
		args := append([]string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, extra...)
		_, errOut, code := run(t, nil, args...)
		if code == 0 || !strings.Contains(errOut, "the store is missing, and the key has signed a log of size 3") ||
			!strings.Contains(errOut, "Restore that store") {
			t.Fatalf("restart %v without the store: exit %d, stderr:\n%s", extra, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ledgerDir)); err == nil {
		t.Fatal("a refused start created a store")
	}

	// The key is lost, the store is kept: no new key is made for it.
	dir2 := filepath.Join(t.TempDir(), "data2")
	p = startServe(t, dir2)
	p.stop(t)
	if err := os.Remove(filepath.Join(dir2, logKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(t, nil, "serve", "--data", dir2, "--listen", "127.0.0.1:0"); code == 0 || !strings.Contains(errOut, "is missing: restore the key") {
		t.Fatalf("restart without the key: exit %d, stderr:\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir2, logKeyFile)); err == nil {
		t.Fatal("a new key was created for an existing store")
	}

	// A fresh key made with keygen: --init is the explicit way to use it.
	keyFile := filepath.Join(t.TempDir(), "fresh.key")
	if _, errOut, code := run(t, nil, "keygen", "example.com/fresh", "--out", keyFile); code != 0 {
		t.Fatalf("keygen: %s", errOut)
	}
	dir3 := filepath.Join(t.TempDir(), "data3")
	if _, errOut, code := run(t, nil, "serve", "--data", dir3, "--key", keyFile, "--listen", "127.0.0.1:0"); code == 0 || !strings.Contains(errOut, "--init") {
		t.Fatalf("existing key, no store, no --init: exit %d, stderr:\n%s", code, errOut)
	}
	p = startServe(t, dir3, "--key", keyFile, "--init")
	httpAdd(t, p.url, []byte("first"))
	p.stop(t)
	p = startServe(t, dir3, "--key", keyFile) // a restart needs no --init
	p.stop(t)
	if _, errOut, code := run(t, nil, "serve", "--data", dir3, "--key", keyFile, "--init", "--listen", "127.0.0.1:0"); code == 0 || !strings.Contains(errOut, "without --init") {
		t.Fatalf("--init with an existing store: exit %d, stderr:\n%s", code, errOut)
	}
}
