package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
)

// witnessProc is a running `indelible witness`.
type witnessProc struct {
	*proc
	dir  string
	url  string
	vkey string
}

// startWitnessProc starts `indelible witness --data dir args...` and waits
// for its banner.
func startWitnessProc(t testing.TB, dir string, args ...string) *witnessProc {
	t.Helper()
	p := &witnessProc{dir: dir}
	p.proc = startProc(t, append([]string{"witness", "--data", dir}, args...), func(line string) bool {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "verifier" && f[1] == "key:":
			p.vkey = f[2]
		case len(f) == 3 && f[0] == "listening" && f[1] == "on":
			p.url = f[2]
		}
		return p.url != ""
	})
	return p
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newWitnessDir creates a witness data directory with a fresh key, so its
// verifier key is known before it starts.
func newWitnessDir(t testing.TB, name string) (dir, vkey string) {
	dir = filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := os.WriteFile(filepath.Join(dir, witnessKeyFile), []byte(itlog.CosignerKey(name, priv)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, itlog.CosignatureVKey(name, priv.Public().(ed25519.PublicKey))
}

// newLogKey writes a log signer key and returns its file and verifier key.
func newLogKey(t testing.TB, origin string) (file, vkey string) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "log.key")
	if err := os.WriteFile(file, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, vkey
}

// cosigners returns which of the witness vkeys validly cosign signed, after
// checking the log signature.
func cosigners(t testing.TB, signed []byte, origin, logVKey string, vkeys ...string) (itlog.Checkpoint, []string) {
	t.Helper()
	lv, _ := note.NewVerifier(logVKey)
	cp, _, err := itlog.OpenCheckpoint(signed, lv)
	if err != nil {
		t.Fatalf("checkpoint does not verify: %v\n%s", err, signed)
	}
	var out []string
	for _, vk := range vkeys {
		fv, err := fnote.NewVerifierForCosignatureV1(vk)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := note.Open(signed, note.VerifierList(fv)); err == nil && len(n.Sigs) == 1 {
			out = append(out, fv.Name())
		}
	}
	return cp, out
}

// TestWitnessQuorumProcesses runs real binaries: one log, three witnesses,
// quorum 2. Killing one witness does not stop ingestion and /checkpoint
// keeps carrying 2 valid cosignatures; restarted, it catches up.
func TestWitnessQuorumProcesses(t *testing.T) {
	const origin = "example.com/witnessed-log"
	keyFile, logVKey := newLogKey(t, origin)
	var ws []*witnessProc
	var vkeys, addrs []string
	for i := 0; i < 3; i++ {
		dir, vkey := newWitnessDir(t, fmt.Sprintf("w%d.example", i))
		addr := freeAddr(t)
		ws = append(ws, startWitnessProc(t, dir, "--listen", addr, "--log", logVKey))
		if ws[i].vkey != vkey {
			t.Fatalf("witness printed %q, want %q", ws[i].vkey, vkey)
		}
		vkeys = append(vkeys, vkey)
		addrs = append(addrs, addr)
	}
	args := []string{"--key", keyFile, "--init", "--witness-quorum", "2"}
	for i := range ws {
		args = append(args, "--witness", vkeys[i]+"="+ws[i].url)
	}
	log := startServe(t, filepath.Join(t.TempDir(), "log"), args...)

	add := func(n int, tag string) int64 {
		var last int64
		for i := 0; i < n; i++ {
			last = httpAdd(t, log.url, []byte(fmt.Sprintf("%s %d", tag, i)))
		}
		return last + 1
	}
	waitCosigned := func(size int64, want []string) {
		t.Helper()
		tlogtest.Eventually(t, 20*time.Second, fmt.Sprintf("size >= %d cosigned by %v", size, want), func() (bool, string) {
			_, body := httpGet(t, log.url+"/checkpoint")
			cp, names := cosigners(t, body, origin, logVKey, vkeys...)
			got := map[string]bool{}
			for _, n := range names {
				got[n] = true
			}
			for _, w := range want {
				if !got[w] {
					return false, fmt.Sprintf("size %d cosigned by %v", cp.N, names)
				}
			}
			return cp.N >= size, fmt.Sprintf("size %d cosigned by %v", cp.N, names)
		})
	}
	n := add(20, "before")
	waitCosigned(n, []string{"w0.example", "w1.example", "w2.example"})

	ws[2].kill()
	n = add(30, "during")
	waitCosigned(n, []string{"w0.example", "w1.example"})
	_, body := httpGet(t, log.url+"/checkpoint")
	if _, names := cosigners(t, body, origin, logVKey, vkeys...); len(names) != 2 {
		t.Fatalf("checkpoint carries %d valid cosignatures, want 2", len(names))
	}
	// The log reports the lag and the failures.
	_, metrics := httpGet(t, log.url+"/metrics")
	if !strings.Contains(string(metrics), `indelible_witness_failures_total{witness="w2.example"}`) {
		t.Fatalf("/metrics lacks witness failures:\n%s", metrics)
	}

	// Restart the killed witness on the same address and data: it catches up.
	ws[2] = startWitnessProc(t, ws[2].dir, "--listen", addrs[2], "--log", logVKey)
	n = add(5, "after")
	waitCosigned(n, []string{"w0.example", "w1.example", "w2.example"})
	_, mon := httpGet(t, ws[2].url+"/"+witness.OriginHash(origin)+"/checkpoint")
	if cp, names := cosigners(t, mon, origin, logVKey, vkeys...); cp.N < n || len(names) != 1 || names[0] != "w2.example" {
		t.Fatalf("restarted witness monitoring checkpoint: size %d, cosigned by %v", cp.N, names)
	}
}

// TestWitnessForkProcesses runs two log processes sharing one key but
// holding different entries (a split view), each witnessed by its own
// witness process. The witnesses gossip; both record fork evidence within a
// few intervals and refuse to cosign the origin until an operator clears it
// with `indelible witness clear-fork` (through the running witness, and on
// the store of a stopped one).
func TestWitnessForkProcesses(t *testing.T) {
	const origin = "example.com/split-view"
	const interval = 200 * time.Millisecond
	keyFile, logVKey := newLogKey(t, origin)
	logAddr := []string{freeAddr(t), freeAddr(t)}
	witAddr := []string{freeAddr(t), freeAddr(t)}
	var dirs, vkeys []string
	for i := 0; i < 2; i++ {
		d, v := newWitnessDir(t, fmt.Sprintf("fw%d.example", i))
		dirs, vkeys = append(dirs, d), append(vkeys, v)
	}
	var ws []*witnessProc
	for i := 0; i < 2; i++ {
		peer := 1 - i
		ws = append(ws, startWitnessProc(t, dirs[i], "--listen", witAddr[i],
			"--log", logVKey+"=http://"+logAddr[i],
			"--peer", vkeys[peer]+"=http://"+witAddr[peer],
			"--gossip-interval", interval.String()))
	}
	var logs []*serveProc
	for i := 0; i < 2; i++ {
		logs = append(logs, startServeAt(t, filepath.Join(t.TempDir(), fmt.Sprintf("log%d", i)), logAddr[i],
			"--key", keyFile, "--init", "--witness", vkeys[i]+"="+ws[i].url, "--witness-quorum", "1"))
	}
	start := time.Now()
	for i, n := range []int{3, 5} {
		for j := 0; j < n; j++ {
			httpAdd(t, logs[i].url, []byte(fmt.Sprintf("view %d entry %d", i, j)))
		}
	}
	forksOf := func(dir string) []witness.Evidence {
		out, errOut, code := run(t, nil, "witness", "forks", "--data", dir)
		if code != 0 {
			t.Fatalf("witness forks: %d %s", code, errOut)
		}
		var list struct {
			Forks []witness.Evidence `json:"forks"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("witness forks output %q: %v", out, err)
		}
		return list.Forks
	}
	lv, _ := note.NewVerifier(logVKey)
	tlogtest.Eventually(t, 20*interval+10*time.Second, "fork evidence on both witnesses", func() (bool, string) {
		f0, f1 := forksOf(dirs[0]), forksOf(dirs[1])
		return len(f0) > 0 && len(f1) > 0, fmt.Sprintf("w0 %d records, w1 %d records", len(f0), len(f1))
	})
	t.Logf("both witnesses hold fork evidence %v after the split view began (gossip interval %v)", time.Since(start).Round(time.Millisecond), interval)
	for i := range dirs {
		for _, e := range forksOf(dirs[i]) {
			if err := witness.VerifyEvidence(e, lv); err != nil {
				t.Fatalf("witness %d holds evidence that does not verify: %v", i, err)
			}
		}
		if !strings.Contains(ws[i].stderr.String(), "level=ERROR") || !strings.Contains(ws[i].stderr.String(), "FORK") {
			t.Fatalf("witness %d did not log the fork at error level:\n%s", i, ws[i].stderr)
		}
	}

	// Neither cosigns the origin any more: resubmitting the checkpoint it
	// cosigned last gets a 403 naming the fork.
	for i := range ws {
		_, mon := httpGet(t, ws[i].url+"/"+witness.OriginHash(origin)+"/checkpoint")
		cp, _ := cosigners(t, mon, origin, logVKey)
		resp, err := http.Post(ws[i].url+"/add-checkpoint", "", strings.NewReader(fmt.Sprintf("old %d\n\n%s", cp.N, mon)))
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 512)
		nb, _ := resp.Body.Read(b)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(b[:nb]), "fork") {
			t.Fatalf("witness %d after the fork: %d %s", i, resp.StatusCode, b[:nb])
		}
	}

	// Stop witness 1 and its gossip; clear the fork on the running witness 0
	// (loopback admin with the token from its data directory): log 0's
	// witnessing resumes and its served checkpoint grows past the fork.
	ws[1].kill()
	logs[1].kill()
	out, errOut, code := run(t, nil, "witness", "clear-fork", origin, "--data", dirs[0])
	if code != 0 || !strings.Contains(out, `"cleared"`) {
		t.Fatalf("clear-fork on the running witness: %d %s %s", code, out, errOut)
	}
	httpAdd(t, logs[0].url, []byte("after clearing"))
	tlogtest.Eventually(t, 20*time.Second, "log 0 witnessed past size 3", func() (bool, string) {
		_, body := httpGet(t, logs[0].url+"/checkpoint")
		cp, names := cosigners(t, body, origin, logVKey, vkeys[0])
		return cp.N == 4 && len(names) == 1, fmt.Sprintf("size %d cosigned by %v", cp.N, names)
	})
	// The stopped witness's store is changed directly; every open record
	// is cleared (gossip may have recorded the split view more than once).
	open := 0
	for _, e := range forksOf(dirs[1]) {
		if !e.Cleared {
			open++
		}
	}
	out, errOut, code = run(t, nil, "witness", "clear-fork", origin, "--data", dirs[1])
	if code != 0 || open == 0 || !strings.Contains(out, fmt.Sprintf(`"cleared": %d`, open)) {
		t.Fatalf("clear-fork on the stopped witness: %d %s %s", code, out, errOut)
	}
	for _, e := range forksOf(dirs[1]) {
		if !e.Cleared {
			t.Fatalf("evidence not marked cleared: %+v", e)
		}
	}
}

// startServeAt is startServe on a fixed address.
func startServeAt(t testing.TB, dir, addr string, args ...string) *serveProc {
	t.Helper()
	return startServe(t, dir, append([]string{"--listen", addr}, args...)...)
}

// TestWitnessFirstStart: the first start creates the witness key (0600) and
// writes its cosignature/v1 verifier key beside it; the secret is never
// printed; a restart keeps the key, and a different --name is refused.
func TestWitnessFirstStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	_, logVKey := newLogKey(t, "example.com/first-start")
	p := startWitnessProc(t, dir, "--listen", "127.0.0.1:0", "--name", "witness.example/first", "--log", logVKey)
	st, err := os.Stat(filepath.Join(dir, witnessKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("witness.key: %v, mode %v; want 0600", err, st.Mode())
	}
	if st, err := os.Stat(filepath.Join(dir, witnessTokenFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v; want mode 0600", err)
	}
	vk, err := os.ReadFile(filepath.Join(dir, witnessVKeyFile))
	if err != nil || strings.TrimSpace(string(vk)) != p.vkey {
		t.Fatalf("witness.vkey = %q, %v; banner says %q", vk, err, p.vkey)
	}
	if _, err := fnote.NewVerifierForCosignatureV1(p.vkey); err != nil || !strings.HasPrefix(p.vkey, "witness.example/first+") {
		t.Fatalf("printed verifier key %q: %v", p.vkey, err)
	}
	skey, _ := os.ReadFile(filepath.Join(dir, witnessKeyFile))
	if strings.Contains(p.stderr.String(), strings.TrimSpace(string(skey))) {
		t.Fatal("the witness key was logged")
	}
	if code, _ := httpGet(t, p.url+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if code, body := httpGet(t, p.url+"/metrics"); code != 200 || !strings.Contains(string(body), "indelible_witness_known_logs 1") {
		t.Fatalf("/metrics: %d", code)
	}
	p.kill()
	p2 := startWitnessProc(t, dir, "--listen", "127.0.0.1:0")
	if p2.vkey != p.vkey {
		t.Fatalf("restart changed the key: %s", p2.vkey)
	}
	p2.kill()
	if _, errOut, code := run(t, nil, "witness", "--data", dir, "--listen", "127.0.0.1:0", "--name", "other.example/w"); code == 0 || !strings.Contains(errOut, "does not match") {
		t.Fatalf("--name mismatch: exit %d, %s", code, errOut)
	}
	if _, errOut, code := run(t, nil, "witness", "--data", dir, "--listen", "127.0.0.1:0", "--peer", logVKey); code == 0 || !strings.Contains(errOut, "VKEY=URL") {
		t.Fatalf("--peer without URL: exit %d, %s", code, errOut)
	}
}
