package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"indelible.dev/internal/pgtest"
	"indelible.dev/internal/s3test"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/witness"
)

// pgTool runs one of PostgreSQL's client programs (pg_dump, pg_restore).
func pgTool(t *testing.T, name string, args ...string) {
	t.Helper()
	bin := pgtest.Bin()
	if bin == "" {
		pgtest.Need(t)
	}
	out, err := exec.Command(filepath.Join(bin, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}

// pgUser returns the credential PostgreSQL's server programs run under: the
// postgres user when the tests run as root (as internal/pgtest does), else
// nil (the current user).
func pgUser(t *testing.T) (*syscall.Credential, int, int) {
	t.Helper()
	if os.Getuid() != 0 {
		return nil, -1, -1
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid
}

// pgBaseBackup takes a pg_basebackup of the whole cluster serving dsn (WAL
// streamed, so the copy is consistent by itself) and returns a function that
// starts a second PostgreSQL from it on another loopback port and returns
// the DSN of the same database there: the older backup restored. The
// second server is stopped when the test ends.
func pgBaseBackup(t *testing.T, dsn string) (restore func() string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cred, uid, gid := pgUser(t)
	// Not under t.TempDir(): its parent is closed to the postgres user.
	dir, err := os.MkdirTemp("", "pgbackup-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	runPG := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(pgtest.Bin(), name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
	}
	runPG("pg_basebackup", "-h", u.Hostname(), "-p", u.Port(), "-U", "postgres", "-D", data, "-X", "stream", "-c", "fast")
	return func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		runPG("pg_ctl", "-D", data, "-l", filepath.Join(dir, "pg.log"), "-w", "-t", "120",
			"-o", fmt.Sprintf("-p %d -k %s", port, dir), "start")
		t.Cleanup(func() {
			cmd := exec.Command(filepath.Join(pgtest.Bin(), "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			cmd.Run()
		})
		u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		return u.String()
	}
}

// TestServePGRestoredOld is issue 20's "restore PostgreSQL from an older
// backup: the node refuses to sign (exit 2) and says why", with the real
// binary, a real PostgreSQL and an S3 server process. The backup is a
// pg_basebackup of the cluster, restored by starting a second PostgreSQL
// from it (the witness variant below uses pg_dump and pg_restore). The node that
// signed the newer tree refuses it (its key's mark and the bucket know), and
// so does a node with no local state at all (the key alone, no mark: only
// the bucket knows), naming the bucket's object that is ahead. The newest
// database still serves on that fresh node.
func TestServePGRestoredOld(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	bucket := s3test.BucketURL(srv.URL)
	dsn := pgtest.DSN(t)
	root := t.TempDir()
	dir := filepath.Join(root, "data")

	// 101 entries, released to the bucket; then the backup.
	p := startServe(t, dir, "--store", dsn, "--bucket", bucket)
	for i := range 100 {
		httpAdd(t, p.url, []byte("before the backup "+strconv.Itoa(i)))
	}
	if code, err := addWait(p.url, []byte("waited"), 30*time.Second); err != nil || code != 200 {
		t.Fatalf("POST /add?wait=checkpoint: %d %v", code, err)
	}
	p.stop(t)
	restore := pgBaseBackup(t, dsn)

	// 50 more, released too.
	p = startServe(t, dir, "--store", dsn, "--bucket", bucket)
	for i := range 49 {
		httpAdd(t, p.url, []byte("after the backup "+strconv.Itoa(i)))
	}
	if code, err := addWait(p.url, []byte("waited again"), 30*time.Second); err != nil || code != 200 {
		t.Fatalf("POST /add?wait=checkpoint: %d %v", code, err)
	}
	if n, _ := checkpointAt(t, srv.URL+"/"+s3test.Bucket+"/checkpoints/151", p.vkey); n != 151 {
		t.Fatalf("the bucket has no checkpoints/151 (%d)", n)
	}
	p.stop(t)

	// The old backup, restored: a second PostgreSQL started from it.
	old := restore()

	serve := func(data string, extra ...string) (string, int) {
		args := append([]string{"serve", "--data", data, "--mode", "raw", "--listen", "127.0.0.1:0", "--bucket", bucket}, extra...)
		_, errOut, code := run(t, nil, args...)
		return errOut, code
	}
	// The node that signed 151.
	errOut, code := serve(dir, "--store", old)
	if code != 2 || !strings.Contains(errOut, "refusing to sign") || !strings.Contains(errOut, "older than what was published") ||
		!strings.Contains(errOut, "151") {
		t.Fatalf("serve on the restored database: exit %d, want 2 naming size 151\n%s", code, errOut)
	}
	t.Logf("the node that signed 151: %s", errOut)
	// A node with nothing but the key: the bucket alone knows.
	keyDir := filepath.Join(root, "keys")
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, logKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keyDir, logKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(root, "fresh")
	errOut, code = serve(fresh, "--store", old, "--key", filepath.Join(keyDir, logKeyFile))
	if code != 2 || !strings.Contains(errOut, "refusing to sign") || !strings.Contains(errOut, "ahead of the store's 101 entries") ||
		!strings.Contains(errOut, "the bucket's") {
		t.Fatalf("a fresh node on the restored database: exit %d, want 2 naming the bucket's object ahead of 101 entries\n%s", code, errOut)
	}
	t.Logf("a fresh node: %s", errOut)
	// The same fresh node on the newest database serves it.
	p = startServe(t, fresh, "--store", dsn, "--bucket", bucket, "--key", filepath.Join(keyDir, logKeyFile))
	if n, _ := checkpointAt(t, p.url+"/checkpoint", p.vkey); n != 151 {
		t.Fatalf("the newest database serves size %d, want 151", n)
	}
	p.stop(t)
}

// TestServePGRestoredOldWitness: the same restore with a witness instead of
// a bucket, on a node with nothing but the key: the witness, which cosigned
// a larger tree than the restored database holds, makes it refuse (exit 2,
// naming the witness and both sizes).
func TestServePGRestoredOldWitness(t *testing.T) {
	const origin = "example.com/restored-log"
	keyFile, logVKey := newLogKey(t, origin)
	wdir, wvkey := newWitnessDir(t, "restore.example")
	w := startWitnessProc(t, wdir, "--listen", freeAddr(t), "--log", logVKey)
	dsn := pgtest.DSN(t)
	root := t.TempDir()
	data := filepath.Join(root, "data")
	witnessed := func(n int64) {
		t.Helper()
		tlogtest.Eventually(t, 20*time.Second, fmt.Sprintf("the witness cosigned size %d", n), func() (bool, string) {
			code, body := httpGet(t, w.url+"/"+witness.OriginHash(origin)+"/checkpoint")
			if code != 200 {
				return false, fmt.Sprint(code)
			}
			cp, _ := cosigners(t, body, origin, logVKey)
			return cp.N == n, fmt.Sprint(cp.N)
		})
	}
	p := startServe(t, data, "--key", keyFile, "--init", "--store", dsn, "--witness", wvkey+"="+w.url)
	for i := range 5 {
		httpAdd(t, p.url, []byte("before the backup "+strconv.Itoa(i)))
	}
	witnessed(5)
	p.stop(t)
	dump := filepath.Join(root, "backup.dump")
	pgTool(t, "pg_dump", "--format=custom", "--file="+dump, "--dbname="+dsn)
	p = startServe(t, data, "--key", keyFile, "--store", dsn, "--witness", wvkey+"="+w.url)
	for i := range 5 {
		httpAdd(t, p.url, []byte("after the backup "+strconv.Itoa(i)))
	}
	witnessed(10)
	p.stop(t)
	old := pgtest.DSN(t)
	pgTool(t, "pg_restore", "--no-owner", "--dbname="+old, dump)

	// The key alone, without its mark.
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(root, "keys", "log.key")
	if err := os.MkdirAll(filepath.Dir(bare), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bare, key, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, nil, "serve", "--data", filepath.Join(root, "fresh"), "--mode", "raw", "--listen", "127.0.0.1:0",
		"--key", bare, "--store", old, "--witness", wvkey+"="+w.url)
	if code != 2 || !strings.Contains(errOut, "refusing to sign") || !strings.Contains(errOut, "cosigned size 10, the store holds 5 entries") {
		t.Fatalf("a fresh node on the restored database with a witness: exit %d, want 2 naming the witness's size 10 and the store's 5\n%s", code, errOut)
	}
}
