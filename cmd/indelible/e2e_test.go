package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/cmd/indelible/internal/keyfile"
	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// binPath is the indelible binary built once by TestMain.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "indelible-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binPath = filepath.Join(dir, "indelible")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building indelible:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running indelible process started by a test.
type proc struct {
	cmd    *exec.Cmd
	stderr *tlogtest.Buffer
	exited chan struct{}
	err    error // of Wait, valid once exited is closed
}

// startProc starts the binary with args and feeds each line of its standard
// output to banner until banner returns true (the process is ready); the
// rest of its output is drained. The test fails if the process exits first
// or takes over 30 s; the process is killed when the test ends.
func startProc(t testing.TB, args []string, banner func(line string) bool) *proc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &tlogtest.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	// Once the process is gone (cleanups run last first): its whole output
	// must reveal no secret of its data directory or key files.
	allOut := &tlogtest.Buffer{}
	drained := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-drained:
		case <-time.After(5 * time.Second):
		}
		checkNoSecrets(t, args, allOut.String()+p.stderr.String())
	})
	t.Cleanup(func() { p.kill() })
	lines := make(chan string)
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			allOut.Write([]byte(sc.Text() + "\n"))
			lines <- sc.Text()
		}
		close(lines)
	}()
	var out strings.Builder
	timeout := time.After(30 * time.Second)
	for ready := false; !ready; {
		select {
		case line, ok := <-lines:
			if !ok {
				<-p.exited
				t.Fatalf("indelible %s exited before it was ready: %v\nstdout:\n%s\nstderr:\n%s", args[0], p.err, out.String(), p.stderr)
			}
			out.WriteString(line + "\n")
			ready = banner(line)
		case <-timeout:
			t.Fatalf("indelible %s not ready in 30s:\n%s\nstderr:\n%s", args[0], out.String(), p.stderr)
		}
	}
	// Drain stdout so the process never blocks.
	go func() {
		for range lines {
		}
	}()
	return p
}

// startLines starts the binary with args, env added to the environment,
// and returns the lines of its standard output (closed at its end); the
// process is killed when the test ends.
func startLines(t testing.TB, env []string, args ...string) <-chan string {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

// checkNoSecrets fails t if out, the output of `indelible args...`, holds a
// token secret (but the first admin token, once, in the first-start
// banner), the master key, or a signing key: those of the --data directory
// and of the key files the arguments name.
func checkNoSecrets(t testing.TB, args []string, out string) {
	t.Helper()
	s := tlogtest.NewSecrets()
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--data":
			s.AddDataDir(args[i+1])
		case "--key", "--master-key":
			s.AddFile(args[i+1])
		}
	}
	s.Check(t, "output of indelible "+args[0], out)
}

// kill SIGKILLs the process (if still running) and waits for it.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// serveProc is a running `indelible serve`.
type serveProc struct {
	*proc
	url    string
	origin string
	vkey   string
	banner string
}

// startServe starts `indelible serve --data dir --listen 127.0.0.1:0 args...`
// and waits for its banner. It runs raw mode (POST /add) unless args say
// --mode.
func startServe(t testing.TB, dir string, args ...string) *serveProc {
	t.Helper()
	if !slices.Contains(args, "--mode") {
		args = append([]string{"--mode", "raw"}, args...)
	}
	p := &serveProc{}
	var banner strings.Builder
	p.proc = startProc(t, append([]string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, args...), func(line string) bool {
		banner.WriteString(line + "\n")
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "origin:":
			p.origin = f[1]
		case len(f) == 3 && f[0] == "verifier" && f[1] == "key:":
			p.vkey = f[2]
		case len(f) == 3 && f[0] == "listening" && f[1] == "on":
			p.url = f[2]
		}
		return strings.Contains(line, "indelible checkpoint --url")
	})
	if p.url == "" || p.vkey == "" || p.origin == "" {
		t.Fatalf("banner without url, origin or key:\n%s", banner.String())
	}
	p.banner = banner.String()
	return p
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *serveProc) stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("indelible serve did not stop within 20s of SIGTERM\nstderr:\n%s", p.stderr)
	}
	if p.err != nil {
		t.Fatalf("indelible serve exited with %v after SIGTERM\nstderr:\n%s", p.err, p.stderr)
	}
}

// run runs the binary with args and returns stdout, stderr and the exit code.
func run(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}

func httpGet(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func httpAdd(t testing.TB, url string, entry []byte) int64 {
	t.Helper()
	resp, err := http.Post(url+"/add", "application/octet-stream", bytes.NewReader(entry))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST /add: %s %s", resp.Status, b)
	}
	idx, err := strconv.ParseInt(strings.TrimSuffix(string(b), "\n"), 10, 64)
	if err != nil {
		t.Fatalf("POST /add reply %q", b)
	}
	return idx
}

// TestServeFirstStart runs the real binary on an empty data directory: it
// creates the log key (0600) and the verifier key, prints them and curl
// examples, serves the walk-through of the README, shuts down gracefully on
// SIGTERM, and restarts on the same log.
func TestServeFirstStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dir)
	if p.origin != defaultOrigin {
		t.Fatalf("origin %q, want %q", p.origin, defaultOrigin)
	}
	for _, want := range []string{"curl --data-binary", "/checkpoint", "/tile/entries/000.p/1", "/v1/proof/inclusion", "indelible checkpoint"} {
		if !strings.Contains(p.banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, p.banner)
		}
	}
	st, err := os.Stat(filepath.Join(dir, logKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("log.key: %v, mode %v; want 0600", err, st.Mode())
	}
	pub, err := os.ReadFile(filepath.Join(dir, logPubFile))
	if err != nil || strings.TrimSpace(string(pub)) != p.vkey {
		t.Fatalf("log.pub = %q, %v; banner says %q", pub, err, p.vkey)
	}
	skey, _ := os.ReadFile(filepath.Join(dir, logKeyFile))
	if strings.Contains(p.banner+p.stderr.String(), strings.TrimSpace(string(skey))) {
		t.Fatal("the signer key was printed")
	}
	v, err := note.NewVerifier(p.vkey)
	if err != nil {
		t.Fatal(err)
	}

	// The README walk-through: append, checkpoint, bundle, proof.
	for i := range 3 {
		if idx := httpAdd(t, p.url, []byte(fmt.Sprintf("hello %d", i))); idx != int64(i) {
			t.Fatalf("index %d, want %d", idx, i)
		}
	}
	status, body := httpGet(t, p.url+"/checkpoint")
	cp, _, err := itlog.OpenCheckpoint(body, v)
	if status != 200 || err != nil || cp.N != 3 {
		t.Fatalf("checkpoint: %d %v %+v", status, err, cp)
	}
	status, body = httpGet(t, p.url+"/tile/entries/000.p/3")
	entries, err := itlog.ParseBundle(body, 3)
	if status != 200 || err != nil || string(entries[1]) != "hello 1" {
		t.Fatalf("bundle: %d %v", status, err)
	}
	status, body = httpGet(t, p.url+"/v1/proof/inclusion?index=1&size=3")
	var proof struct {
		Index    int64    `json:"index"`
		TreeSize int64    `json:"tree_size"`
		Hashes   []string `json:"hashes"`
	}
	if status != 200 || json.Unmarshal(body, &proof) != nil || proof.Index != 1 || proof.TreeSize != 3 {
		t.Fatalf("proof: %d %s", status, body)
	}
	hashes := make([]tlog.Hash, len(proof.Hashes))
	for i, h := range proof.Hashes {
		hashes[i], _ = itlog.ParseHash(h)
	}
	if err := tlog.CheckRecord(hashes, 3, cp.Hash, 1, tlog.RecordHash([]byte("hello 1"))); err != nil {
		t.Fatalf("inclusion proof from the binary: %v", err)
	}

	// indelible checkpoint, with the key from the file and from the flag, and
	// the URL from the environment.
	for _, key := range []string{filepath.Join(dir, logPubFile), p.vkey} {
		out, errOut, code := run(t, []string{"INDELIBLE_URL=" + p.url}, "checkpoint", "--key", key)
		want := fmt.Sprintf("origin %s\nsize 3\nroot %s\n", p.origin, cp.Hash)
		if code != 0 || out != want {
			t.Fatalf("indelible checkpoint: exit %d\n%s\nwant\n%s\nstderr: %s", code, out, want, errOut)
		}
	}

	p.stop(t)
	if !strings.Contains(p.stderr.String(), "shutting down") {
		t.Errorf("no shutdown message:\n%s", p.stderr)
	}

	// Restart: same key, same log, same size.
	p2 := startServe(t, dir)
	if p2.vkey != p.vkey || !strings.Contains(p2.banner, "tree size 3") || strings.Contains(p2.banner, "new key") {
		t.Fatalf("restart banner:\n%s", p2.banner)
	}
	if idx := httpAdd(t, p2.url, []byte("after restart")); idx != 3 {
		t.Fatalf("index after restart %d, want 3", idx)
	}
	p2.stop(t)

	// A mismatching --origin is refused.
	_, errOut, code := run(t, nil, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--origin", "other.example/log")
	if code == 0 || !strings.Contains(errOut, "does not match") {
		t.Fatalf("serve with a different --origin: exit %d: %s", code, errOut)
	}
}

func TestServeKeyFlagAndModes(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "my.key")
	vkey, errOut, code := run(t, nil, "keygen", "example.com/mylog", "--out", keyFile)
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut)
	}
	vkey = strings.TrimSpace(vkey)
	p := startServe(t, filepath.Join(dir, "data"), "--key", keyFile, "--init")
	if p.origin != "example.com/mylog" || p.vkey != vkey {
		t.Fatalf("serve --key: origin %q vkey %q; want %q", p.origin, p.vkey, vkey)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", logKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("serve --key created log.key anyway: %v", err)
	}
	p.stop(t)

	_, errOut, code = run(t, nil, "serve", "--data", filepath.Join(dir, "d2"), "--mode", "bogus")
	if code == 0 || !strings.Contains(errOut, "want events or raw") {
		t.Fatalf("--mode bogus: exit %d: %s", code, errOut)
	}
	_, errOut, code = run(t, nil, "serve", "--data", filepath.Join(dir, "d2"), "--pprof", "0.0.0.0:0")
	if code == 0 || !strings.Contains(errOut, "loopback") {
		t.Fatalf("--pprof on a public address: exit %d: %s", code, errOut)
	}
	_, errOut, code = run(t, nil, "serve", "--data", filepath.Join(dir, "d2"), "--key", filepath.Join(dir, "missing.key"))
	if code == 0 || !strings.Contains(errOut, "missing.key") {
		t.Fatalf("--key missing file: exit %d: %s", code, errOut)
	}
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "w.key")
	pub := filepath.Join(dir, "w.pub")
	vkey, errOut, code := run(t, nil, "keygen", "witness.example/w1", "--out", out, "--pub", pub)
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut)
	}
	vkey = strings.TrimSpace(vkey)
	v, err := note.NewVerifier(vkey)
	if err != nil || v.Name() != "witness.example/w1" {
		t.Fatalf("keygen printed %q: %v", vkey, err)
	}
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("signer key file: %v mode %v", err, st.Mode())
	}
	// The key files work together: a note signed with one verifies with the other.
	s, gotVkey, err := keyfile.LoadSigner(out)
	if err != nil || gotVkey != vkey {
		t.Fatalf("loadSigner: %v, vkey %q want %q", err, gotVkey, vkey)
	}
	msg, err := note.Sign(&note.Note{Text: "hi\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("signature by the generated key does not verify: %v", err)
	}
	if b, _ := os.ReadFile(pub); strings.TrimSpace(string(b)) != vkey {
		t.Fatalf("--pub file %q", b)
	}
	if strings.Contains(errOut, "PRIVATE") {
		t.Fatal("keygen printed the signer key")
	}
	// No silent overwrite.
	if _, errOut, code := run(t, nil, "keygen", "witness.example/w1", "--out", out); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("keygen over an existing file: %d %s", code, errOut)
	}
	if _, _, code := run(t, nil, "keygen", "bad name+plus", "--out", filepath.Join(dir, "x.key")); code == 0 {
		t.Fatal("keygen accepted a name with '+'")
	}
}

// TestCheckpointVerifyFails checks that a wrong key or a server that is not
// there fail with distinct exit codes (1: does not verify, 2: trouble).
func TestCheckpointVerifyFails(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, filepath.Join(dir, "data"))
	// Same name, different key.
	other, _, code := run(t, nil, "keygen", defaultOrigin, "--out", filepath.Join(dir, "other.key"))
	if code != 0 {
		t.Fatal("keygen failed")
	}
	_, errOut, code := run(t, nil, "checkpoint", "--url", p.url, "--key", strings.TrimSpace(other))
	if code != 1 || !strings.Contains(errOut, "does not verify") {
		t.Fatalf("checkpoint with the wrong key: exit %d: %s", code, errOut)
	}
	_, errOut, code = run(t, nil, "checkpoint", "--url", p.url, "--key", "not-a-key")
	if code != 2 || !strings.Contains(errOut, "neither a verifier key nor a readable file") {
		t.Fatalf("checkpoint with a bad key: exit %d: %s", code, errOut)
	}
	p.stop(t)
	_, errOut, code = run(t, nil, "checkpoint", "--url", p.url, "--key", p.vkey)
	if code != 2 {
		t.Fatalf("checkpoint with no server: exit %d: %s", code, errOut)
	}
}

// TestBenchSmoke runs the load generator briefly against the real binary, in
// both loops and with both clients.
func TestBenchSmoke(t *testing.T) {
	p := startServe(t, filepath.Join(t.TempDir(), "data"))
	for _, args := range [][]string{
		{"--writers", "8", "--duration", "500ms"},
		{"--writers", "4", "--duration", "500ms", "--client", "std", "--size", "300"},
		{"--writers", "4", "--duration", "500ms", "--rate", "200", "--wait-checkpoint"},
	} {
		out, errOut, code := run(t, nil, append([]string{"bench", "append", "--url", p.url}, args...)...)
		if code != 0 {
			t.Fatalf("bench %v: exit %d\n%s%s", args, code, out, errOut)
		}
		var n int
		i := strings.Index(out, "appended ")
		if i < 0 {
			t.Fatalf("bench output:\n%s", out)
		}
		if _, err := fmt.Sscanf(out[i:], "appended %d entries in", &n); err != nil || n == 0 {
			t.Fatalf("bench %v output:\n%s", args, out)
		}
		if !strings.Contains(out, "latency: p50 ") || !strings.Contains(out, "(0 errors,") {
			t.Fatalf("bench %v output:\n%s", args, out)
		}
		if strings.Contains(out, "POST-to-checkpoint") != strings.Contains(strings.Join(args, " "), "wait-checkpoint") {
			t.Fatalf("bench %v output:\n%s", args, out)
		}
	}
	// The log holds what the bench appended.
	_, body := httpGet(t, p.url+"/checkpoint")
	if cp, err := itlog.ParseCheckpoint(string(body[:bytes.Index(body, []byte("\n\n"))+1])); err != nil || cp.N == 0 {
		t.Fatalf("checkpoint after bench: %v %+v", err, cp)
	}
	if _, errOut, code := run(t, nil, "bench", "append", "--url", p.url, "--size", "70000"); code == 0 || !strings.Contains(errOut, "--size") {
		t.Fatalf("bench --size 70000: %d %s", code, errOut)
	}
	// bench proof: every answer must be a proof for the asked index and size.
	out, errOut, code := run(t, nil, "bench", "proof", "--url", p.url, "--readers", "4", "--duration", "500ms")
	if code != 0 || !strings.Contains(out, " proofs/s (0 errors)") || !strings.Contains(out, "latency: p50 ") {
		t.Fatalf("bench proof: exit %d\n%s%s", code, out, errOut)
	}
}

// TestServeTLS serves HTTPS with a certificate made here and reads the
// checkpoint through a client that trusts only the test's CA.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	if _, errOut, code := run(t, nil, "serve", "--data", filepath.Join(dir, "x"), "--tls-cert", pki.certFile); code == 0 || !strings.Contains(errOut, "go together") {
		t.Fatalf("--tls-cert without --tls-key: exit %d: %s", code, errOut)
	}
	p := startServe(t, filepath.Join(dir, "data"), pki.args()...)
	if !strings.HasPrefix(p.url, "https://") {
		t.Fatalf("TLS server URL %q", p.url)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}}
	resp, err := c.Get(p.url + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	v, _ := note.NewVerifier(p.vkey)
	if _, _, err := itlog.OpenCheckpoint(body, v); resp.StatusCode != 200 || err != nil {
		t.Fatalf("checkpoint over TLS: %d %v", resp.StatusCode, err)
	}
	// Plain HTTP to the TLS port is refused.
	if resp, err := http.Get("http" + strings.TrimPrefix(p.url, "https") + "/checkpoint"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS port")
		}
	}
	p.stop(t)
}
