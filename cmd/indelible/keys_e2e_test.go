package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMasterKeyAndBootstrapToken runs through the real binary: the first
// start puts the master key beside the data directory; the bootstrap admin
// token stops working once another admin token exists, and the next start
// deletes admin.token; a data directory of an earlier version (master.key
// inside) still starts, with a warning naming the mv command, and after
// that command starts without one; with no admin token left a start says
// so, and --new-admin-token makes one that works; a --master-key file inside the data
// directory, a passphrase in INDELIBLE_MASTER_KEY and a lost key are
// refused with messages saying what to do.
func TestMasterKeyAndBootstrapToken(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	def := dir + ".master.key"
	first := startEvents(t, dir)
	p := first.serveProc
	if !strings.Contains(p.banner, "bootstrap token: it expires at") || !strings.Contains(p.banner, "master key:   "+def+" (new, 0600)") {
		t.Fatalf("first start banner:\n%s", p.banner)
	}
	if st, err := os.Stat(def); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", def, st, err)
	}
	if _, err := os.Stat(filepath.Join(dir, masterKeyFile)); err == nil {
		t.Fatal("master key in the data directory")
	}
	mustRun(t, first.env(), "append", "--action", "keys.test", "--actor", "alice")
	out := mustRun(t, first.env(), "token", "create", "--name", "ops", "--scope", "admin")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ops := []string{"INDELIBLE_URL=" + p.url, "INDELIBLE_TOKEN=" + lines[len(lines)-1]}
	if _, errOut, code := run(t, first.env(), "token", "list"); code == 0 || !strings.Contains(errOut, "superseded") {
		t.Fatalf("the bootstrap token after another admin token: exit %d, %s", code, errOut)
	}
	if out := mustRun(t, ops, "token", "list"); !strings.Contains(out, "EXPIRES") || !strings.Contains(out, "(bootstrap: or once a newer admin token exists)") {
		t.Fatalf("token list:\n%s", out)
	}
	first.stop(t)
	// The first banner printed the bootstrap token, once: the secrets check
	// at the test's end allows it through admin.token, which the next start
	// deletes; put it back then.
	t.Cleanup(func() { os.WriteFile(filepath.Join(dir, adminTokenFile), []byte(first.token+"\n"), 0o600) })

	// An earlier version's layout: the key inside the data directory.
	legacy := filepath.Join(dir, masterKeyFile)
	if err := os.Rename(def, legacy); err != nil {
		t.Fatal(err)
	}
	p = startEvents2(t, dir)
	if _, err := os.Stat(filepath.Join(dir, adminTokenFile)); err == nil {
		t.Fatal("admin.token kept after its token was superseded")
	}
	mv := "mv " + legacy + " " + def
	if !strings.Contains(p.banner, "WARNING:      the master key "+legacy+" is inside the data directory") || !strings.Contains(p.banner, mv) {
		t.Fatalf("legacy start banner:\n%s", p.banner)
	}
	ops[0] = "INDELIBLE_URL=" + p.url
	if out := mustRun(t, ops, "query", "--actor", "alice"); !strings.Contains(out, "keys.test") {
		t.Fatalf("event unreadable with the legacy key: %s", out)
	}
	p.stop(t)
	if !strings.Contains(p.stderr.String(), "master key is inside the data directory") {
		t.Errorf("legacy start logged no warning:\n%s", p.stderr)
	}
	if err := os.Rename(legacy, def); err != nil { // the banner's mv
		t.Fatal(err)
	}
	p = startEvents2(t, dir)
	if strings.Contains(p.banner, "WARNING") || strings.Contains(p.banner, "master key:") {
		t.Fatalf("start after the mv:\n%s", p.banner)
	}
	ops[0] = "INDELIBLE_URL=" + p.url
	if out := mustRun(t, ops, "query", "--actor", "alice"); !strings.Contains(out, "keys.test") {
		t.Fatalf("event unreadable after the mv: %s", out)
	}
	// No admin token left: a start says how to get back in, and
	// --new-admin-token does it.
	mustRun(t, ops, "token", "revoke", "ops")
	p.stop(t)
	p = startEvents2(t, dir)
	p.stop(t)
	if !strings.Contains(p.stderr.String(), "no admin token works") || !strings.Contains(p.stderr.String(), "--new-admin-token") {
		t.Fatalf("start with no working admin token logged:\n%s", p.stderr)
	}
	p = startEvents2(t, dir, "--new-admin-token")
	b, err := os.ReadFile(filepath.Join(dir, adminTokenFile))
	if err != nil || !strings.Contains(p.banner, "admin token:  "+strings.TrimSpace(string(b))+"\n") || !strings.Contains(p.banner, "bootstrap token") {
		t.Fatalf("--new-admin-token: %v\n%s", err, p.banner)
	}
	admin := []string{"INDELIBLE_URL=" + p.url, "INDELIBLE_TOKEN=" + strings.TrimSpace(string(b))}
	if out := mustRun(t, admin, "token", "list"); !strings.Contains(out, "admin-") {
		t.Fatalf("token list with the new admin token:\n%s", out)
	}
	p.stop(t)

	// Refusals: a key file inside the data directory, a passphrase, no key.
	inside := filepath.Join(dir, "in.key")
	b, _ = os.ReadFile(def)
	os.WriteFile(inside, b, 0o600)
	serve := []string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}
	if _, errOut, code := run(t, nil, append(serve, "--master-key", inside)...); code == 0 || !strings.Contains(errOut, "--allow-key-in-data") {
		t.Fatalf("--master-key inside the data directory: exit %d, %s", code, errOut)
	}
	p = startEvents2(t, dir, "--master-key", inside, "--allow-key-in-data")
	if strings.Contains(p.banner, "WARNING") {
		t.Fatalf("--allow-key-in-data still warns:\n%s", p.banner)
	}
	p.stop(t)
	const pass = "correct horse battery staple 42!"
	if _, errOut, code := run(t, []string{"INDELIBLE_MASTER_KEY=" + pass}, serve...); code == 0 || strings.Contains(errOut, pass) ||
		!strings.Contains(errOut, "64 hex digits or standard base64") {
		t.Fatalf("a passphrase in INDELIBLE_MASTER_KEY: exit %d, %s", code, errOut)
	}
	os.Remove(def)
	if _, errOut, code := run(t, nil, serve...); code == 0 || !strings.Contains(errOut, "no master key") {
		t.Fatalf("lost master key: exit %d, %s", code, errOut)
	}
	if _, err := os.Stat(def); err == nil {
		t.Fatal("a new master key was made for a store holding events")
	}
}

// startEvents2 starts the binary in events mode on an existing dir, where
// admin.token may be gone.
func startEvents2(t *testing.T, dir string, args ...string) *serveProc {
	t.Helper()
	return startServe(t, dir, append([]string{"--mode", "events"}, args...)...)
}
