package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"indelible.dev/cmd/indelible/internal/keyfile"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

// TestBuildLog fills a raw-mode data directory that `indelible serve --mode
// raw --data DIR` serves, in-process and in big batches (HTTP appends are
// far slower), for the benchmarks in BENCHMARKS.md. It is opt-in:
//
//	INDELIBLE_BUILD_LOG=/tmp/big INDELIBLE_BUILD_N=10000000 go test -run TestBuildLog -timeout 1h ./cmd/indelible
//
// Entry i is 128 bytes: "indelible bench entry <i>" and a SHA-256 derived
// filler, so the same N gives the same entries (the key is new each time).
// An existing directory is extended up to N.
func TestBuildLog(t *testing.T) {
	dir := os.Getenv("INDELIBLE_BUILD_LOG")
	if dir == "" {
		t.Skip("set INDELIBLE_BUILD_LOG=DIR (and INDELIBLE_BUILD_N) to build a raw-mode log for the benchmarks")
	}
	n := int64(10_000_000)
	if v := os.Getenv("INDELIBLE_BUILD_N"); v != "" {
		var err error
		if n, err = strconv.ParseInt(v, 10, 64); err != nil || n < 1 {
			t.Fatalf("INDELIBLE_BUILD_N=%q: want a positive count", v)
		}
	}
	if err := os.MkdirAll(dir, dataPerm); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, logKeyFile)
	init := false
	if _, err := os.Stat(keyFile); errors.Is(err, os.ErrNotExist) {
		if _, err := keyfile.Generate(defaultOrigin, keyFile, filepath.Join(dir, logPubFile), false); err != nil {
			t.Fatal(err)
		}
		init = true
	}
	signer, _, err := keyfile.LoadSigner(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := ledger.Open(filepath.Join(dir, ledgerDir), ledger.Options{Signer: signer, KeyGuard: keyGuard(keyFile, init), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	}()
	cp, _ := l.Published()
	start, from := time.Now(), cp.N
	ctx := context.Background()
	const batch = ledger.DefaultMaxBatch
	es := make([]ledger.Entry, batch)
	for i := from; i < n; i += batch {
		k := min(batch, n-i)
		for j := range k {
			es[j].Data = benchEntry(i + j)
		}
		appendRetrying(t, ctx, l, es[:k])
		if (i/batch)%64 == 0 {
			t.Logf("%d entries, %.0f/s", i+k, float64(i+k-from)/time.Since(start).Seconds())
		}
	}
	if _, _, err := l.WaitSize(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Logf("log of %d entries in %s (appended %d in %v)", n, dir, n-from, time.Since(start))
}

// benchEntry is entry i of TestBuildLog: 128 bytes.
func benchEntry(i int64) []byte {
	b := fmt.Appendf(make([]byte, 0, 128), "indelible bench entry %020d ", i)
	sum := sha256.Sum256(b)
	for len(b) < 128 {
		b = append(b, sum[:min(len(sum), 128-len(b))]...)
	}
	return b
}

// TestServeCacheSize: serve --cache-size sets the store's block cache (a
// log served with a small one still serves tiles and proofs); a negative
// size is refused.
func TestServeCacheSize(t *testing.T) {
	if _, errOut, code := run(t, nil, "serve", "--mode", "raw", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--cache-size", "-1"); code == 0 || !strings.Contains(errOut, "--cache-size -1") {
		t.Fatalf("negative --cache-size: exit %d %s", code, errOut)
	}
	p := startServe(t, filepath.Join(t.TempDir(), "data"), "--cache-size", "1")
	for i := range 300 {
		httpAdd(t, p.url, []byte("cached entry "+strconv.Itoa(i)))
	}
	tlogtest.Eventually(t, 10*time.Second, "checkpoint of size 300", func() (bool, string) {
		_, cp := httpGet(t, p.url+"/checkpoint")
		return bytes.HasPrefix(cp, []byte(p.origin+"\n300\n")), string(cp)
	})
	for _, path := range []string{"/v1/proof/inclusion?index=7&size=300", "/tile/0/000", "/tile/entries/001.p/44"} {
		if code, body := httpGet(t, p.url+path); code != http.StatusOK {
			t.Errorf("GET %s with --cache-size 1: %d %s", path, code, body)
		}
	}
}
