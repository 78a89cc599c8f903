package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/audit/audittest"
	"indelible.dev/client"
	"indelible.dev/cmd/indelible/internal/keyfile"
	"indelible.dev/httpapi"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

// ledgerServer opens a ledger in a temporary directory, appends n entries
// in batches, and serves it with the real HTTP handlers on loopback.
func ledgerServer(t testing.TB, n int) (url, vkey string, l *ledger.Log, signer note.Signer) {
	t.Helper()
	key := tlogtest.NewKey(t, "example.com/audit-test")
	signer, vkey = key.Signer, key.VKey
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	appendN(t, l, 0, n)
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Log: l, Logger: quiet}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL, vkey, l, signer
}

// appendN appends entries from..from+n-1 ("audit entry i", 32 bytes) and
// waits for their checkpoint.
func appendN(t testing.TB, l *ledger.Log, from, n int) {
	t.Helper()
	ctx := context.Background()
	const batch = 4096
	for i := 0; i < n; i += batch {
		k := min(batch, n-i)
		es := make([]ledger.Entry, k)
		for j := range es {
			es[j].Data = []byte(fmt.Sprintf("audit entry %020d", from+i+j))
		}
		appendRetrying(t, ctx, l, es)
	}
	if _, _, err := l.WaitSize(ctx, int64(from+n)); err != nil {
		t.Fatal(err)
	}
}

// runAuditCmd runs a fresh `indelible audit` cobra command in-process and
// returns stdout, stderr and the exit code main would use.
func runAuditCmd(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	cmd := newAuditCmd()
	cmd.SetArgs(args)
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.ExecuteContext(context.Background())
	code := exitCode(err)
	if err != nil {
		fmt.Fprintln(&errb, "indelible:", err)
	}
	return out.String(), errb.String(), code
}

// TestAuditLedgerInProcess audits Indelible's own log, served by the real
// HTTP handlers, with the cobra command in-process: full, then incremental
// with the server's consistency proof, with --json.
func TestAuditLedgerInProcess(t *testing.T) {
	url, vkey, l, _ := ledgerServer(t, 3000)
	state := filepath.Join(t.TempDir(), "state.json")
	out, errOut, code := runAuditCmd(t, "--url", url, "--key", vkey, "--state", state, "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var r auditReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("json output %q: %v", out, err)
	}
	cp, _ := l.Checkpoint()
	if !r.OK || r.Size != 3000 || r.Entries != 3000 || r.From != 0 || r.Root != cp.Hash.String() || r.ExitCode != 0 {
		t.Fatalf("report %+v", r)
	}

	appendN(t, l, 3000, 1234)
	out, errOut, code = runAuditCmd(t, "--url", url, "--key", vkey, "--state", state, "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	r = auditReport{}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Size != 4234 || r.From != 3000 || r.ProofSource != "server" || r.Entries != 4234-2816 {
		t.Fatalf("incremental report %+v", r)
	}

	// Text output: summary lines.
	out, errOut, code = runAuditCmd(t, "--url", url, "--key", vkey)
	if code != 0 || !strings.Contains(out, "verified example.com/audit-test: size 4234") || !strings.Contains(out, "entries/s") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}

	// Usage and network trouble exit 2.
	for _, args := range [][]string{
		{"--url", url},
		{"--url", url, "--key", "not-a-key"},
		{"--url", url, "--key", vkey, "--quorum", "1"},
		{"--url", "ftp://x", "--key", vkey},
	} {
		if _, errOut, code := runAuditCmd(t, args...); code != exitTrouble {
			t.Fatalf("%v: exit %d, want 2\n%s", args, code, errOut)
		}
	}
}

// auditEnv is a log served by the real `indelible serve` binary behind a
// tampering proxy, with a witness that cosigns through the proxy.
type auditEnv struct {
	serve   *serveProc
	proxy   *audittest.Proxy
	signer  note.Signer // the log's key, read from its data directory
	witness note.Signer // cosignature/v1
	wvkey   string
}

// cosign returns the signed checkpoint msg with the witness's cosignature added.
func (e *auditEnv) cosign(t testing.TB, msg []byte) []byte {
	t.Helper()
	v, err := note.NewVerifier(e.serve.vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	out, err := note.Sign(n, e.witness)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startServeSigner starts a raw-mode server with its data in dir/data and
// returns dir, the server and the log's signer (to forge what it serves).
func startServeSigner(t *testing.T) (string, *serveProc, note.Signer) {
	t.Helper()
	dir := t.TempDir()
	p := startServe(t, filepath.Join(dir, "data"))
	signer, _, err := keyfile.LoadSigner(filepath.Join(dir, "data", logKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return dir, p, signer
}

// TestAuditBinaryTamper drives the real binary against the real server:
// the untouched log exits 0, and every tampering exits 1 naming the problem.
func TestAuditBinaryTamper(t *testing.T) {
	dir, p, signer := startServeSigner(t)
	ws, wvkey := tlogtest.NewWitnessKey(t, "witness.example/w1")
	env := &auditEnv{serve: p, proxy: audittest.NewProxy(t, p.url), signer: signer, witness: ws, wvkey: wvkey}

	addN := func(n int) {
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 8 {
					httpAdd(t, p.url, []byte("binary audit entry "+strconv.Itoa(i)))
				}
			}()
		}
		wg.Wait()
	}
	getCheckpoint := func(size int64) []byte {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			_, b := httpGet(t, p.url+"/checkpoint")
			text, _, _ := itlog.SplitNote(b)
			if cp, err := itlog.ParseCheckpoint(string(text)); err == nil && cp.N == size {
				return b
			}
		}
		t.Fatalf("no checkpoint of size %d", size)
		return nil
	}
	addN(300)
	cp300 := getCheckpoint(300)
	addN(400) // 700: two full level-0 tiles and a partial one
	cp700 := getCheckpoint(700)

	// Cosign every checkpoint the proxy passes through.
	cosignAll := func(path string, status int, b []byte) (int, []byte) {
		if path == "checkpoint" && status == 200 {
			return status, env.cosign(t, b)
		}
		return status, b
	}
	then := func(m audittest.Mutator) audittest.Mutator {
		return func(path string, status int, b []byte) (int, []byte) {
			status, b = m(path, status, b)
			return cosignAll(path, status, b)
		}
	}
	state := filepath.Join(dir, "state.json")
	base := []string{"audit", "--url", env.proxy.URL, "--key", p.vkey, "--witness", wvkey}

	env.proxy.Set(cosignAll)
	out, errOut, code := run(t, nil, append(base, "--state", state)...)
	if code != 0 || !strings.Contains(out, "verified "+p.origin+": size 700") || !strings.Contains(out, "cosigned by witness.example/w1") {
		t.Fatalf("untouched log: exit %d\n%s\n%s", code, out, errOut)
	}

	forkRoot := func(size int64) []byte {
		msg, err := itlog.SignCheckpoint(itlog.Checkpoint{Origin: p.origin, Tree: tlog.Tree{N: size, Hash: tlog.Hash{0xf0, 0x0c}}}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	badCosig := func(path string, status int, b []byte) (int, []byte) {
		if path != "checkpoint" {
			return status, b
		}
		good := env.cosign(t, b)
		other := env.cosign(t, forkRoot(700))
		lines, olines := strings.Split(string(good), "\n"), strings.Split(string(other), "\n")
		for i := range lines {
			if strings.HasPrefix(lines[i], "— witness.example/w1 ") {
				lines[i] = olines[i]
			}
		}
		return status, []byte(strings.Join(lines, "\n"))
	}
	stateAt := func(t *testing.T, msg []byte) string {
		// Record a verified state at msg's size by auditing it.
		s := filepath.Join(t.TempDir(), "state.json")
		env.proxy.Set(then(audittest.Replace("checkpoint", msg)))
		if out, errOut, code := run(t, nil, append(base, "--state", s)...); code != 0 {
			t.Fatalf("recording state: exit %d\n%s\n%s", code, out, errOut)
		}
		return s
	}

	for _, tc := range []struct {
		name  string
		m     audittest.Mutator
		state []byte // checkpoint to record a state at first
		raw   bool   // serve what m returns without cosigning it
		want  string // in stderr
	}{
		{name: "flipped byte in a hash tile", m: audittest.FlipByte("tile/0/001", 4000), want: "tile/0/001: hash 125"},
		{name: "flipped byte in a bundle entry", m: audittest.FlipByte("tile/entries/000", 30), want: "entry 1 in tile/entries/000"},
		{name: "flipped byte in a partial tile", m: audittest.FlipByte("tile/0/002.p/188", -1), want: "tile/0/002.p/188: hash 187"},
		{name: "flipped byte in the partial level-1 tile", m: audittest.FlipByte("tile/1/000.p/2", 0), want: "tile/1/000.p/2: hash 0"},
		{name: "fork: right key, other root", m: audittest.Replace("checkpoint", forkRoot(700)), want: "the tiles of size 700 give root"},
		{name: "fork after a verified state", m: audittest.Replace("checkpoint", forkRoot(700)), state: cp300, want: "consistency proof 300->700"},
		{name: "checkpoint went backwards", m: audittest.Replace("checkpoint", cp300), state: cp700, want: "size 300 is smaller than the previously verified size 700"},
		{name: "missing tile", m: audittest.NotFound("tile/0/000"), want: "tile/0/000: missing (HTTP 404)"},
		{name: "bad witness cosignature", m: badCosig, raw: true, want: `cosignature by witness "witness.example/w1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string(nil), base...)
			if tc.state != nil {
				args = append(args, "--state", stateAt(t, tc.state))
			}
			if tc.raw {
				env.proxy.Set(tc.m)
			} else {
				env.proxy.Set(then(tc.m))
			}
			out, errOut, code := run(t, nil, args...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, want 1 with %q\nstdout:\n%s\nstderr:\n%s", code, tc.want, out, errOut)
			}
		})
	}

	// Not cosigned at all: the witness policy fails.
	env.proxy.Set(nil)
	if out, errOut, code := run(t, nil, base...); code != 1 || !strings.Contains(errOut, "cosigned by 0 of the 1 given witnesses") {
		t.Fatalf("uncosigned: exit %d\n%s\n%s", code, out, errOut)
	}
	// The server is gone: exit 2.
	p.kill()
	if out, errOut, code := run(t, nil, "audit", "--url", p.url, "--key", p.vkey); code != 2 {
		t.Fatalf("server down: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestAuditWatchAlertsAndGossips runs --watch in-process against a log that
// forks after the first run: the second run alerts on stderr, POSTs the
// alert to the webhook, and submits both checkpoints to the witness's
// observe endpoint.
func TestAuditWatchAlertsAndGossips(t *testing.T) {
	url, vkey, l, signer := ledgerServer(t, 500)
	proxy := audittest.NewProxy(t, url)
	var mu sync.Mutex
	var alerts, observed [][]byte
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/hook":
			alerts = append(alerts, b)
		case "/v1/witness/observe":
			observed = append(observed, b)
		default:
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("{}"))
	}))
	defer sink.Close()

	cp, _ := l.Checkpoint()
	fork, err := itlog.SignCheckpoint(itlog.Checkpoint{Origin: cp.Origin, Tree: tlog.Tree{N: cp.N, Hash: tlog.Hash{1}}}, signer)
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	proxy.Set(func(path string, status int, b []byte) (int, []byte) {
		if path == "checkpoint" {
			mu.Lock()
			runs++
			n := runs
			mu.Unlock()
			if n >= 2 {
				return 200, fork
			}
		}
		return status, b
	})
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newAuditCmd()
	cmd.SetArgs([]string{"--url", proxy.URL, "--key", vkey, "--state", filepath.Join(t.TempDir(), "s.json"),
		"--watch", "--interval", "1s", "--alert-webhook", sink.URL + "/hook", "--gossip", sink.URL})
	var out bytes.Buffer
	errb := &tlogtest.Buffer{}
	cmd.SetOut(&out)
	cmd.SetErr(errb)
	done := make(chan error)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		ok := len(alerts) >= 1 && len(observed) >= 2
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert and gossip after 20s\nstderr:\n%s", errb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A third run fails the same way: no second alert.
	tlogtest.Eventually(t, 10*time.Second, "a third run", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return runs >= 4, fmt.Sprint(runs, " runs")
	})
	cancel()
	err = <-done
	if exitCode(err) != exitFailure {
		t.Fatalf("watch ended with %v, want exit 1", err)
	}
	if !strings.Contains(errb.String(), "ALERT:") || !strings.Contains(out.String(), "verified ") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", &out, errb)
	}
	var a struct{ Kind, Checkpoint, Previous string }
	mu.Lock()
	defer mu.Unlock()
	if len(alerts) != 1 || len(observed) != 2 {
		t.Fatalf("%d alerts and %d gossip submissions for one fork seen %d times", len(alerts), len(observed), runs-1)
	}
	if err := json.Unmarshal(alerts[0], &a); err != nil || a.Kind != "fork" || a.Checkpoint != string(fork) || a.Previous == "" {
		t.Fatalf("alert %s: %v", alerts[0], err)
	}
	if !bytes.Equal(observed[1], fork) || !bytes.HasPrefix(observed[0], []byte(cp.Origin+"\n500\n")) {
		t.Fatalf("observed %q", observed)
	}
}

// TestAuditBench1M measures a full replay of a 1,000,000-entry ledger on
// loopback with the real binary under /usr/bin/time -v. It is the figure in
// BENCHMARKS.md; set INDELIBLE_AUDIT_BENCH=1 (or a size) to run it:
//
//	INDELIBLE_AUDIT_BENCH=1 go test ./cmd/indelible -run TestAuditBench1M -v
func TestAuditBench1M(t *testing.T) {
	env := os.Getenv("INDELIBLE_AUDIT_BENCH")
	if env == "" {
		t.Skip("set INDELIBLE_AUDIT_BENCH=1 to run the 1M-entry audit benchmark")
	}
	n := 1_000_000
	if v, err := strconv.Atoi(env); err == nil && v > 1 {
		n = v
	}
	start := time.Now()
	url, vkey, l, _ := ledgerServer(t, n)
	// Wait for the ledger's background leaf-hash indexer, so it does not
	// compete with the audit for CPU.
	last := tlog.RecordHash([]byte(fmt.Sprintf("audit entry %020d", n-1)))
	if _, _, err := l.InclusionProofByHash(last, int64(n)); err != nil {
		t.Fatal(err)
	}
	t.Logf("built and indexed a %d-entry ledger in %v", n, time.Since(start))
	const runs = 5
	rates := map[string][]float64{}
	var maxRSS float64
	for i := 0; i < 2*runs; i++ {
		mode := []string{"--compression=true", "--compression=false"}[i%2]
		args := []string{"-v", binPath, "audit", "--url", url, "--key", vkey, "--json", mode}
		cmd := exec.Command("/usr/bin/time", args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v\n%s\n%s", err, &stdout, &stderr)
		}
		var r auditReport
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || !r.OK || r.Entries != int64(n) {
			t.Fatalf("report %s: %v", &stdout, err)
		}
		rss := regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`).FindStringSubmatch(stderr.String())
		if rss == nil {
			t.Fatalf("no RSS in\n%s", &stderr)
		}
		kb, _ := strconv.Atoi(rss[1])
		maxRSS = max(maxRSS, float64(kb)/1024)
		rates[mode] = append(rates[mode], r.Rate)
		cpu := func(what string) string {
			m := regexp.MustCompile(what + ` time \(seconds\): ([0-9.]+)`).FindStringSubmatch(stderr.String())
			if m == nil {
				return "?"
			}
			return m[1]
		}
		t.Logf("audit %s: %d entries in %.3fs = %.0f entries/s, peak RSS %.1f MiB, audit CPU user %ss sys %ss",
			mode, r.Entries, r.Seconds, r.Rate, float64(kb)/1024, cpu("User"), cpu("System"))
	}
	for mode, rs := range rates {
		slices.Sort(rs)
		t.Logf("median of %d runs %s: %.0f entries/s (min %.0f, max %.0f); peak RSS at most %.1f MiB", runs, mode, rs[runs/2], rs[0], rs[runs-1], maxRSS)
	}
}

// TestAuditRealWitness runs the real log and the real witness binaries: the
// witness cosigns the log's checkpoint (the test submits it to
// /add-checkpoint, as a log would), the audit verifies that cosignature under
// a quorum, and when the log then shows a fork the audit submits both
// checkpoints to the witness, which answers that it recorded a fork.
func TestAuditRealWitness(t *testing.T) {
	dir, p, signer := startServeSigner(t)
	wdir, wvkey := newWitnessDir(t, "aw.example")
	w := startWitnessProc(t, wdir, "--listen", freeAddr(t), "--log", p.vkey+"="+p.url)
	for i := 0; i < 300; i++ {
		httpAdd(t, p.url, []byte("witnessed entry "+strconv.Itoa(i)))
	}
	var cp []byte
	tlogtest.Eventually(t, 10*time.Second, "checkpoint of size 300", func() (bool, string) {
		_, cp = httpGet(t, p.url+"/checkpoint")
		return bytes.HasPrefix(cp, []byte(p.origin+"\n300\n")), string(cp)
	})
	resp, err := http.Post(w.url+"/add-checkpoint", "text/plain", bytes.NewReader(append([]byte("old 0\n\n"), cp...)))
	if err != nil {
		t.Fatal(err)
	}
	cosig, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.HasPrefix(cosig, []byte("— aw.example ")) {
		t.Fatalf("add-checkpoint: %d %q", resp.StatusCode, cosig)
	}
	proxy := audittest.NewProxy(t, p.url)
	proxy.Set(audittest.Replace("checkpoint", append(bytes.Clone(cp), cosig...)))
	state := filepath.Join(dir, "state.json")
	out, errOut, code := run(t, nil, "audit", "--url", proxy.URL, "--key", p.vkey, "--witness", wvkey, "--quorum", "1", "--state", state)
	if code != 0 || !strings.Contains(out, "cosigned by aw.example (policy: 1 of 1)") {
		t.Fatalf("witnessed log: exit %d\n%s\n%s", code, out, errOut)
	}

	fork, err := itlog.SignCheckpoint(itlog.Checkpoint{Origin: p.origin, Tree: tlog.Tree{N: 300, Hash: tlog.Hash{0xfa}}}, signer)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Set(audittest.Replace("checkpoint", fork))
	out, errOut, code = run(t, nil, "audit", "--url", proxy.URL, "--key", p.vkey, "--state", state, "--gossip", w.url)
	if code != 1 || !strings.Contains(errOut, "submitted to witness "+w.url) || !strings.Contains(errOut, `"result":"fork"`) {
		t.Fatalf("fork: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestAuditServerProof checks the incremental audit against Indelible's
// consistency proof endpoint: a proof altered in transit is a failure
// naming the proof, even though the tiles are consistent; a log without the
// endpoint gets a proof built from its tiles instead.
func TestAuditServerProof(t *testing.T) {
	url, vkey, l, _ := ledgerServer(t, 1000)
	proxy := audittest.NewProxy(t, url)
	state := filepath.Join(t.TempDir(), "state.json")
	if out, errOut, code := runAuditCmd(t, "--url", proxy.URL, "--key", vkey, "--state", state); code != 0 {
		t.Fatalf("first run: exit %d\n%s\n%s", code, out, errOut)
	}
	appendN(t, l, 1000, 700)
	before, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Set(func(path string, status int, b []byte) (int, []byte) {
		if path == "v1/proof/consistency" {
			var p struct {
				From   int64    `json:"from"`
				To     int64    `json:"to"`
				Hashes [][]byte `json:"hashes"`
			}
			if err := json.Unmarshal(b, &p); err != nil || len(p.Hashes) == 0 {
				t.Errorf("proof %s: %v", b, err)
				return status, b
			}
			p.Hashes[0][7] ^= 1
			b, _ = json.Marshal(p)
		}
		return status, b
	})
	out, errOut, code := runAuditCmd(t, "--url", proxy.URL, "--key", vkey, "--state", state)
	if code != 1 || !strings.Contains(errOut, "consistency proof 1000->1700: the server proof does not verify") {
		t.Fatalf("altered proof: exit %d\n%s\n%s", code, out, errOut)
	}
	if after, _ := os.ReadFile(state); !bytes.Equal(after, before) {
		t.Fatal("a failed run changed the state")
	}
	proxy.Set(audittest.NotFound("v1/proof/consistency"))
	out, errOut, code = runAuditCmd(t, "--url", proxy.URL, "--key", vkey, "--state", state)
	if code != 0 || !strings.Contains(out, "tiles consistency proof verified") {
		t.Fatalf("no proof endpoint: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestClientProofsAgainstServer checks httpapi/client's proof calls against
// the real handlers: the proofs verify against the signed checkpoint.
func TestClientProofsAgainstServer(t *testing.T) {
	url, _, l, _ := ledgerServer(t, 1000)
	c, err := client.New(url, "", client.WithOptions(client.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cp, _ := l.Checkpoint()
	old, err := l.TreeHash(300)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{0, 5, 299, 999} {
		leaf := tlog.RecordHash([]byte(fmt.Sprintf("audit entry %020d", i)))
		p, err := c.InclusionProof(ctx, i, cp.N)
		if err != nil {
			t.Fatal(err)
		}
		if err := itlog.CheckInclusion(p, i, cp.N, leaf, cp.Hash); err != nil {
			t.Fatalf("index %d: %v", i, err)
		}
		j, p, err := c.InclusionProofByHash(ctx, leaf, cp.N)
		if err != nil || j != i {
			t.Fatalf("by hash: %d %v", j, err)
		}
		if err := itlog.CheckInclusion(p, i, cp.N, leaf, cp.Hash); err != nil {
			t.Fatalf("by hash %d: %v", i, err)
		}
	}
	if _, _, err := c.InclusionProofByHash(ctx, tlog.Hash{1}, cp.N); !errors.Is(err, client.ErrNotExist) {
		t.Fatalf("unknown leaf: %v", err)
	}
	p, err := c.ConsistencyProof(ctx, 300, cp.N)
	if err != nil {
		t.Fatal(err)
	}
	if err := itlog.CheckConsistency(p, 300, old, cp.N, cp.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tile(ctx, tlog.Tile{H: 8, L: 0, N: 9, W: 256}, nil); !errors.Is(err, client.ErrNotExist) {
		t.Fatalf("tile beyond the tree: %v", err)
	}
}

// TestAuditCompressionLoopback: against a log on a loopback address the
// audit does not ask for gzip-compressed bundles unless --compression is
// given (compressing costs both sides CPU and saves nothing there); the
// flag still turns it on, and other hosts keep the default.
func TestAuditCompressionLoopback(t *testing.T) {
	upstream, vkey, _, _ := ledgerServer(t, 600)
	target, err := neturl.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	gzipAsked := map[bool]int{}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/tile/entries/") {
			mu.Lock()
			gzipAsked[strings.Contains(r.Header.Get("Accept-Encoding"), "gzip")]++
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	localhost := strings.Replace(front.URL, "127.0.0.1", "localhost", 1)
	for _, tc := range []struct {
		url      string
		args     []string
		wantGzip bool
	}{
		{front.URL, nil, false},
		{localhost, nil, false},
		{front.URL, []string{"--compression=true"}, true},
		{localhost, []string{"--compression"}, true},
		{front.URL, []string{"--compression=false"}, false},
	} {
		mu.Lock()
		clear(gzipAsked)
		mu.Unlock()
		args := append([]string{"--url", tc.url, "--key", vkey, "--json"}, tc.args...)
		if out, errOut, code := runAuditCmd(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		mu.Lock()
		if gzipAsked[!tc.wantGzip] != 0 || gzipAsked[tc.wantGzip] == 0 {
			t.Errorf("%s %v: bundle requests asking for gzip: %d, not asking: %d; want all %v",
				tc.url, tc.args, gzipAsked[true], gzipAsked[false], tc.wantGzip)
		}
		mu.Unlock()
	}
	for u, want := range map[string]bool{
		"http://127.0.0.1:8080": true, "http://127.3.4.5": true, "http://[::1]:80/p": true, "https://LOCALHOST": true,
		"https://log.example.com": false, "http://192.0.2.1:8080": false, "http://[2001:db8::1]": false, "%": false,
	} {
		if got := loopbackURL(u); got != want {
			t.Errorf("loopbackURL(%q) = %v, want %v", u, got, want)
		}
	}
}

// appendRetrying appends es, waiting out pushback (a full queue).
func appendRetrying(t testing.TB, ctx context.Context, l *ledger.Log, es []ledger.Entry) {
	t.Helper()
	for {
		_, err := l.AppendEntries(ctx, es)
		if errors.Is(err, ledger.ErrPushback) {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
}
