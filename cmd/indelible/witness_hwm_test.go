package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"indelible.dev/internal/tlogtest"
	"indelible.dev/witness"
)

// TestWitnessWipedStoreProcesses runs the real binaries: a witness cosigns a
// log; its store is wiped while its key and high-water mark stay. Restarted,
// the witness refuses to start and names the log (it would otherwise take
// the log as first seen and could cosign a second root for a size it
// cosigned). With --resume-from-hwm it continues from the mark and the log
// is witnessed again.
func TestWitnessWipedStoreProcesses(t *testing.T) {
	const origin = "example.com/hwm-log"
	keyFile, logVKey := newLogKey(t, origin)
	wdir, wvkey := newWitnessDir(t, "hwm.example")
	waddr := freeAddr(t)
	w := startWitnessProc(t, wdir, "--listen", waddr, "--log", logVKey)
	log := startServe(t, filepath.Join(t.TempDir(), "log"), "--key", keyFile, "--init", "--witness", wvkey+"="+w.url)
	monitored := func(url string) int64 {
		code, body := httpGet(t, url+"/"+witness.OriginHash(origin)+"/checkpoint")
		if code != 200 {
			return -1
		}
		cp, _ := cosigners(t, body, origin, logVKey)
		return cp.N
	}
	for i := 0; i < 3; i++ {
		httpAdd(t, log.url, []byte(fmt.Sprintf("entry %d", i)))
	}
	tlogtest.Eventually(t, 20*time.Second, "the witness cosigned size 3", func() (bool, string) {
		n := monitored(w.url)
		return n == 3, fmt.Sprintf("witness at size %d", n)
	})
	w.kill()
	if st, err := os.Stat(filepath.Join(wdir, witnessHWMFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("high-water mark: %v, %v", st, err)
	}
	if err := os.RemoveAll(filepath.Join(wdir, witnessStoreDir)); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, nil, "witness", "--data", wdir, "--listen", waddr, "--log", logVKey)
	if code == 0 || !strings.Contains(errOut, "behind the witness's high-water mark") || !strings.Contains(errOut, origin) || !strings.Contains(errOut, "--resume-from-hwm") {
		t.Fatalf("restart with a wiped store: exit %d\n%s", code, errOut)
	}

	w = startWitnessProc(t, wdir, "--listen", waddr, "--log", logVKey, "--resume-from-hwm")
	// stderr is copied by its own goroutine: it may trail the banner.
	tlogtest.Eventually(t, 5*time.Second, "a warning about resuming", func() (bool, string) {
		return strings.Contains(w.stderr.String(), "resuming from the high-water mark"), w.stderr.String()
	})
	httpAdd(t, log.url, []byte("after the restore"))
	tlogtest.Eventually(t, 20*time.Second, "the witness cosigned size 4", func() (bool, string) {
		n := monitored(w.url)
		return n == 4, fmt.Sprintf("witness at size %d", n)
	})
	tlogtest.Eventually(t, 20*time.Second, "the log serves size 4 cosigned", func() (bool, string) {
		_, body := httpGet(t, log.url+"/checkpoint")
		cp, names := cosigners(t, body, origin, logVKey, wvkey)
		return cp.N == 4 && len(names) == 1, fmt.Sprintf("size %d cosigned by %v", cp.N, names)
	})
}

// TestWitnessRateLimitFlag: indelible witness --rate-limit answers 429 with
// Retry-After past the rate.
func TestWitnessRateLimitFlag(t *testing.T) {
	dir, _ := newWitnessDir(t, "rl.example")
	_, logVKey := newLogKey(t, "example.com/rl")
	w := startWitnessProc(t, dir, "--listen", "127.0.0.1:0", "--log", logVKey, "--rate-limit", "1")
	limited := 0
	for i := 0; i < 10; i++ {
		resp, err := http.Get(w.url + "/v1/witness/forks")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "" {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("10 quick requests at --rate-limit 1: none answered 429")
	}
	if _, errOut, code := run(t, nil, "witness", "--data", dir, "--listen", "127.0.0.1:0", "--rate-limit", "-1"); code == 0 || !strings.Contains(errOut, "--rate-limit") {
		t.Fatalf("negative --rate-limit: exit %d %s", code, errOut)
	}
}

// TestServeRefusesWitnessNamedLikeOrigin: serve refuses a --witness key
// whose name is the log's origin, and the same witness key twice.
func TestServeRefusesWitnessNamedLikeOrigin(t *testing.T) {
	const origin = "example.com/named"
	keyFile, _ := newLogKey(t, origin)
	_, impostor := newWitnessDir(t, origin)
	_, other := newWitnessDir(t, "other.example")
	dir := filepath.Join(t.TempDir(), "log")
	_, errOut, code := run(t, nil, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--key", keyFile, "--witness", impostor+"=http://127.0.0.1:1")
	if code == 0 || !strings.Contains(errOut, "log's own name") {
		t.Fatalf("witness named like the origin: exit %d %s", code, errOut)
	}
	_, errOut, code = run(t, nil, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--key", keyFile,
		"--witness", other+"=http://127.0.0.1:1", "--witness", other+"=http://127.0.0.1:2")
	if code == 0 || !strings.Contains(errOut, "given twice") {
		t.Fatalf("witness twice: exit %d %s", code, errOut)
	}
}
