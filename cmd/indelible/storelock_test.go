package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"indelible.dev/internal/pgtest"
)

// runFor runs the binary with args, killed after d: stdout, stderr, the
// exit code (-1: killed, it was still running).
func runFor(t *testing.T, d time.Duration, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// TestServeStoreSecondNode: a second node started without --lease on the
// PostgreSQL store a running single node serves refuses to start (exit
// non-zero, naming the other node and --lease), and the running node is
// untouched (it goes on appending under its epoch); a node started with
// --lease refuses too. Once the running node is killed (SIGKILL: its
// database session ends), a node starts on the store and goes on with its
// log.
func TestServeStoreSecondNode(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dir, "--store", dsn)
	if idx := httpAdd(t, p.url, []byte("first")); idx != 0 {
		t.Fatalf("index %d", idx)
	}
	dir2 := filepath.Join(t.TempDir(), "data2")
	copyFile(t, filepath.Join(dir, logKeyFile), filepath.Join(dir2, logKeyFile))
	copyFile(t, filepath.Join(dir, logKeyFile)+hwmSuffix, filepath.Join(dir2, logKeyFile)+hwmSuffix)
	_, errOut, code := runFor(t, 30*time.Second, "serve", "--mode", "raw", "--data", dir2, "--listen", "127.0.0.1:0", "--store", dsn)
	if code != exitTrouble || !strings.Contains(errOut, "another node is serving this store") || !strings.Contains(errOut, "use --lease for a cluster") ||
		!strings.Contains(errOut, "without a lease") {
		t.Fatalf("a second single node: exit %d (-1: still running after 30s), stderr:\n%s", code, errOut)
	}
	t.Logf("the second node's refusal: %s", strings.TrimSpace(errOut))
	if idx := httpAdd(t, p.url, []byte("second")); idx != 1 {
		t.Fatalf("the running node after the refused start: index %d, want 1", idx)
	}
	_, errOut, code = runFor(t, 30*time.Second, "serve", "--mode", "raw", "--data", filepath.Join(t.TempDir(), "c"), "--listen", "127.0.0.1:0",
		"--key", filepath.Join(dir, logKeyFile), "--store", dsn, "--lease", "2s", "--node", "c", "--advertise", "http://127.0.0.1:1")
	if code != exitTrouble || !strings.Contains(errOut, "without --lease is serving this store") {
		t.Fatalf("a cluster node: exit %d (-1: still running after 30s), stderr:\n%s", code, errOut)
	}
	if idx := httpAdd(t, p.url, []byte("third")); idx != 2 {
		t.Fatalf("the running node after the refused cluster node: index %d, want 2", idx)
	}
	if strings.Contains(p.stderr.String(), "fenced") {
		t.Fatalf("the running node was fenced:\n%s", p.stderr)
	}
	p.kill()
	p2 := startServe(t, dir2, "--store", dsn)
	if idx := httpAdd(t, p2.url, []byte("fourth")); idx != 3 {
		t.Fatalf("the node started after the first was killed: index %d, want 3", idx)
	}
	p2.stop(t)
}
