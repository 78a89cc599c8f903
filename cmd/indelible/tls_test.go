package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"indelible.dev/client"
	"indelible.dev/internal/tlogtest"
)

// testPKI is a certificate authority made by a test and a server
// certificate it issued for 127.0.0.1 and localhost, in PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool // holding only the CA
}

// newTestPKI creates a CA and a leaf certificate for 127.0.0.1, ::1 and
// localhost in dir.
func newTestPKI(t testing.TB, dir string) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "indelible test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	p := testPKI{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"),
		pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	for _, f := range []struct {
		name, typ string
		der       []byte
		perm      os.FileMode
	}{{p.caFile, "CERTIFICATE", caDER, 0o644}, {p.certFile, "CERTIFICATE", leafDER, 0o644}, {p.keyFile, "PRIVATE KEY", keyDER, 0o600}} {
		if err := os.WriteFile(f.name, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.perm); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// args returns the server flags serving HTTPS with the leaf certificate.
func (p testPKI) args() []string { return []string{"--tls-cert", p.certFile, "--tls-key", p.keyFile} }

// checkHTTPS checks the server at base (an https URL) speaks HTTP/2 over TLS
// 1.2 or later to a client trusting the CA, refuses a TLS 1.1 client, and
// refuses plain HTTP on the same port.
func checkHTTPS(t *testing.T, pki testPKI, base string) {
	t.Helper()
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("server URL %q is not https", base)
	}
	hc := &http.Client{Transport: client.NewTransport(pki.pool), Timeout: 10 * time.Second}
	resp, err := hc.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET %s/healthz over TLS: %v", base, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("GET %s/healthz: %d %s, TLS %+v: want 200 over h2, TLS 1.2+", base, resp.StatusCode, resp.Proto, resp.TLS)
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool, MaxVersion: tls.VersionTLS11}}, Timeout: 10 * time.Second}
	if resp, err := old.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a TLS 1.1 client was served: %s", resp.Proto)
	}
	// Plain HTTP to the TLS port: net/http answers 400 and serves nothing.
	resp, err = http.Get("http://" + strings.TrimPrefix(base, "https://") + "/healthz")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(b), "ok") {
			t.Fatalf("plain HTTP to the TLS port %s: %d %q, want 400", base, resp.StatusCode, b)
		}
	}
}

// metricValue returns the value of the metric name in a Prometheus text
// exposition, or -1.
func metricValue(text, name string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestTLSEndToEnd runs everything over HTTPS with a certificate made here:
// a witness and an events-mode log (HTTP/2, TLS 1.2+, plain HTTP refused),
// the log's witnessing through --ca, witness gossip to a TLS peer and
// consistency proofs fetched from the TLS log, and every client command with
// --ca (or $INDELIBLE_CA); without it, each fails at once with a certificate
// error that says what to do.
func TestTLSEndToEnd(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	const origin = "example.com/tls-log"
	keyFile, logVKey := newLogKey(t, origin)
	logAddr, witAddr := freeAddr(t), freeAddr(t)
	wdir, wvkey := newWitnessDir(t, "wa.example")
	w := startWitnessProc(t, wdir, append([]string{"--listen", witAddr, "--log", logVKey + "=https://" + logAddr, "--ca", pki.caFile}, pki.args()...)...)
	checkHTTPS(t, pki, w.url)
	// Peers of the TLS witness: one trusting the CA, one not.
	peer := func(name string, ca ...string) *witnessProc {
		d, _ := newWitnessDir(t, name)
		return startWitnessProc(t, d, append([]string{"--listen", "127.0.0.1:0", "--log", logVKey, "--peer", wvkey + "=" + w.url, "--gossip-interval", "100ms"}, ca...)...)
	}
	good, bad := peer("wb.example", "--ca", pki.caFile), peer("wc.example")

	p := startEvents(t, filepath.Join(dir, "log"), append([]string{"--listen", logAddr, "--key", keyFile, "--init",
		"--witness", wvkey + "=" + w.url, "--ca", pki.caFile}, pki.args()...)...)
	checkHTTPS(t, pki, p.url)
	if !strings.Contains(p.banner, "--cacert CA.pem") || !strings.Contains(p.banner, "curl") || strings.Contains(p.banner, "http://") {
		t.Fatalf("TLS banner:\n%s", p.banner)
	}

	env := []string{"INDELIBLE_URL=" + p.url, "INDELIBLE_TOKEN=" + p.token, "INDELIBLE_CA="}
	ca := []string{"--ca", pki.caFile}
	with := func(args ...string) string { return mustRun(t, env, append(args, ca...)...) }

	// The events commands.
	out := with("append", "--action", "tls.test", "--actor", "alice")
	idx, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("append over TLS printed %q, want an index", out)
	}
	if recs := queryJSON(t, env, append([]string{"--action", "tls.test"}, ca...)...); len(recs) != 1 || recs[0].Index != idx {
		t.Fatalf("query over TLS: %+v, want index %d", recs, idx)
	}
	if out := mustRun(t, append(env, "INDELIBLE_CA="+pki.caFile), "tail", "-n", "1", "--action", "tls.test"); !strings.Contains(out, "tls.test") {
		t.Fatalf("tail with $INDELIBLE_CA: %q", out)
	}
	out = with("token", "create", "--name", "reader", "--scope", "read")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	readTok := lines[len(lines)-1]
	if out := with("token", "list"); !strings.Contains(out, "reader") {
		t.Fatalf("token list over TLS: %q", out)
	}
	if out := mustRun(t, []string{"INDELIBLE_URL=" + p.url, "INDELIBLE_TOKEN=" + readTok, "INDELIBLE_CA="}, append([]string{"query"}, ca...)...); !strings.Contains(out, "tls.test") {
		t.Fatalf("query with the new read token: %q", out)
	}
	if out := with("token", "revoke", "reader"); !strings.Contains(out, "revoked") {
		t.Fatalf("token revoke over TLS: %q", out)
	}
	if out := with("erase", fmt.Sprint(idx), "--reason", "tls test"); !strings.Contains(out, fmt.Sprint(idx)) {
		t.Fatalf("erase over TLS: %q", out)
	}

	// tail -f: the event stream over HTTP/2.
	followed := startLines(t, env, append([]string{"tail", "-n", "0", "-f", "--action", "tls.follow"}, ca...)...)
	tlogtest.Eventually(t, 15*time.Second, "tail -f over TLS prints an appended event", func() (bool, string) {
		with("append", "--action", "tls.follow", "--actor", "bob")
		select {
		case l := <-followed:
			return strings.Contains(l, "tls.follow") || strings.HasPrefix(l, "TIME") && strings.Contains(<-followed, "tls.follow"), l
		case <-time.After(300 * time.Millisecond):
			return false, "nothing yet"
		}
	})

	// Witnessing over TLS: the served checkpoint carries the witness's
	// cosignature (serve --ca trusts the witness's certificate).
	hc := &http.Client{Transport: client.NewTransport(pki.pool), Timeout: 10 * time.Second}
	get := func(u string) []byte {
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
		}
		return b
	}
	var first []byte
	tlogtest.Eventually(t, 15*time.Second, "a checkpoint cosigned by the TLS witness", func() (bool, string) {
		first = get(p.url + "/checkpoint")
		cp, names := cosigners(t, first, origin, logVKey, wvkey)
		return cp.N >= 2 && len(names) == 1, fmt.Sprintf("size %d cosigned by %v", cp.N, names)
	})
	with("append", "--action", "tls.more")
	tlogtest.Eventually(t, 15*time.Second, "a larger cosigned checkpoint", func() (bool, string) {
		cp0, _ := cosigners(t, first, origin, logVKey)
		cp, names := cosigners(t, get(p.url+"/checkpoint"), origin, logVKey, wvkey)
		return cp.N > cp0.N && len(names) == 1, fmt.Sprintf("size %d cosigned by %v", cp.N, names)
	})
	// The older checkpoint, observed by the witness, is proven consistent
	// with what it cosigned since: from the log's URL, over TLS.
	resp, err := hc.Post(w.url+"/v1/witness/observe", "text/plain", bytes.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	obs, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(obs), `"consistent"`) {
		t.Fatalf("observe an older checkpoint on the TLS witness: %d %s", resp.StatusCode, obs)
	}
	// Gossip to the TLS peer: rounds without errors with --ca, errors
	// without it.
	tlogtest.Eventually(t, 15*time.Second, "gossip rounds over TLS", func() (bool, string) {
		_, gm := httpGet(t, good.url+"/metrics")
		_, bm := httpGet(t, bad.url+"/metrics")
		gr, ge := metricValue(string(gm), "indelible_witness_gossip_rounds_total"), metricValue(string(gm), "indelible_witness_gossip_errors_total")
		be := metricValue(string(bm), "indelible_witness_gossip_errors_total")
		return gr >= 3 && ge == 0 && be >= 1, fmt.Sprintf("with --ca: %v rounds, %v errors; without: %v errors", gr, ge, be)
	})

	// checkpoint, audit, bench proof, and the witness admin commands.
	if out := with("checkpoint", "--key", logVKey); !strings.Contains(out, "origin "+origin) {
		t.Fatalf("checkpoint over TLS: %q", out)
	}
	if out := with("audit", "--key", logVKey, "--witness", wvkey, "--no-progress"); !strings.HasPrefix(out, "verified "+origin) {
		t.Fatalf("audit over TLS: %q", out)
	}
	if out := with("bench", "proof", "--readers", "2", "--duration", "300ms"); !strings.Contains(out, "(0 errors)") {
		t.Fatalf("bench proof over TLS: %q", out)
	}
	if out := with("witness", "forks", "--data", wdir); !strings.Contains(out, `"forks"`) {
		t.Fatalf("witness forks over TLS: %q", out)
	}
	if out := with("witness", "clear-fork", origin, "--data", wdir); !strings.Contains(out, `"cleared"`) {
		t.Fatalf("witness clear-fork over TLS: %q", out)
	}

	// Without --ca (and without $INDELIBLE_CA) every one fails promptly
	// with a certificate error and the hint, never hanging on retries.
	for _, args := range [][]string{
		{"append", "--action", "x"},
		{"query"},
		{"tail", "-n", "0", "-f"},
		{"token", "list"},
		{"token", "create", "--name", "n", "--scope", "read"},
		{"token", "revoke", "n"},
		{"erase", "1", "--reason", "x"},
		{"checkpoint", "--key", logVKey},
		{"audit", "--key", logVKey, "--no-progress"},
		{"bench", "proof", "--readers", "1", "--duration", "100ms"},
		{"witness", "forks", "--data", wdir},
		{"witness", "clear-fork", origin, "--data", wdir},
	} {
		// Bounded, so a command that retries forever fails the test
		// instead of hanging it.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, binPath, args...)
		cmd.Env = append(os.Environ(), env...)
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		start := time.Now()
		err := cmd.Run()
		cancel()
		if el := time.Since(start); err == nil || !strings.Contains(errOut.String(), "certificate") || !strings.Contains(errOut.String(), "--ca FILE") || el > 5*time.Second {
			t.Errorf("%s without --ca: %v after %v:\n%s", strings.Join(args, " "), err, el.Round(time.Millisecond), errOut.String())
		}
	}
	// A --ca file that holds no certificate is refused as such.
	if _, errOut, code := run(t, env, "query", "--ca", keyFile); code == 0 || !strings.Contains(errOut, "no PEM certificate") {
		t.Errorf("query --ca <not a certificate>: exit %d %s", code, errOut)
	}
	// The servers refuse half a TLS configuration.
	for _, args := range [][]string{
		{"serve", "--data", filepath.Join(dir, "x"), "--tls-cert", pki.certFile},
		{"witness", "--data", filepath.Join(dir, "y"), "--tls-key", pki.keyFile},
	} {
		if _, errOut, code := run(t, nil, args...); code == 0 || !strings.Contains(errOut, "--tls-cert and --tls-key go together") {
			t.Errorf("%s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
	}
	p.stop(t)
}

// TestPrivateLogEndToEnd runs serve --private-log with a witness: the
// checkpoint, tiles and proofs answer 401 without a token, 403 to an
// append-only token and 200 to a read token; witnessing goes on (the log
// pushes to the witness); checkpoint, audit and bench proof work with a read
// token and fail without one. Raw mode refuses the flag.
func TestPrivateLogEndToEnd(t *testing.T) {
	dir := t.TempDir()
	if _, errOut, code := run(t, nil, "serve", "--mode", "raw", "--private-log", "--data", filepath.Join(dir, "raw")); code == 0 || !strings.Contains(errOut, "--private-log needs --mode events") {
		t.Fatalf("raw mode with --private-log: exit %d: %s", code, errOut)
	}
	const origin = "example.com/private-log"
	keyFile, logVKey := newLogKey(t, origin)
	wdir, wvkey := newWitnessDir(t, "wp.example")
	w := startWitnessProc(t, wdir, "--listen", "127.0.0.1:0", "--log", logVKey)
	p := startEvents(t, filepath.Join(dir, "log"), "--token-rate", "0", "--private-log", "--key", keyFile, "--init", "--witness", wvkey+"="+w.url)
	if !strings.Contains(p.banner, "private log:") {
		t.Fatalf("banner does not say the log is private:\n%s", p.banner)
	}
	env := p.env()
	mustRun(t, env, "append", "--action", "private.a")
	mustRun(t, env, "append", "--action", "private.b")
	tokenOf := func(name, scope string) string {
		lines := strings.Split(strings.TrimSpace(mustRun(t, env, "token", "create", "--name", name, "--scope", scope)), "\n")
		return lines[len(lines)-1]
	}
	readTok, appendTok := tokenOf("auditor", "read"), tokenOf("writer", "append")
	get := func(path, token string) (int, []byte) { return httpDo(t, http.MethodGet, p.url+path, token) }
	tlogtest.Eventually(t, 15*time.Second, "a checkpoint of 2 entries cosigned by the witness", func() (bool, string) {
		status, body := get("/checkpoint", readTok)
		if status != 200 {
			return false, fmt.Sprintf("%d %s", status, body)
		}
		cp, names := cosigners(t, body, origin, logVKey, wvkey)
		return cp.N >= 2 && len(names) == 1, fmt.Sprintf("size %d cosigned by %v", cp.N, names)
	})
	for _, path := range []string{"/checkpoint", "/tile/0/000.p/2", "/tile/entries/000.p/2", "/v1/proof/inclusion?index=0&size=2", "/v1/proof/consistency?from=1&to=2", "/metrics"} {
		for _, c := range []struct {
			who, token string
			want       int
		}{{"no token", "", 401}, {"an append token", appendTok, 403}, {"a read token", readTok, 200}} {
			if status, body := get(path, c.token); status != c.want {
				t.Errorf("private log: GET %s with %s: %d %s, want %d", path, c.who, status, body, c.want)
			}
		}
	}
	// Still open: health and the console's page.
	for _, path := range []string{"/healthz", "/"} {
		if status, _ := get(path, ""); status != 200 {
			t.Errorf("private log: GET %s without a token: %d, want 200", path, status)
		}
	}

	readEnv := []string{"INDELIBLE_URL=" + p.url, "INDELIBLE_TOKEN="}
	if out := mustRun(t, readEnv, "audit", "--key", logVKey, "--witness", wvkey, "--no-progress", "--token", readTok); !strings.HasPrefix(out, "verified "+origin) {
		t.Fatalf("audit with a read token: %q", out)
	}
	if out := mustRun(t, readEnv, "checkpoint", "--key", logVKey, "--token", readTok); !strings.Contains(out, "origin "+origin) {
		t.Fatalf("checkpoint with a read token: %q", out)
	}
	if out := mustRun(t, []string{"INDELIBLE_URL=" + p.url, "INDELIBLE_TOKEN=" + readTok}, "bench", "proof", "--readers", "1", "--duration", "200ms"); !strings.Contains(out, "(0 errors)") {
		t.Fatalf("bench proof with $INDELIBLE_TOKEN: %q", out)
	}
	for _, args := range [][]string{
		{"audit", "--key", logVKey, "--no-progress"},
		{"checkpoint", "--key", logVKey},
		{"audit", "--key", logVKey, "--no-progress", "--token", appendTok},
	} {
		if _, errOut, code := run(t, readEnv, args...); code == 0 || !(strings.Contains(errOut, "HTTP 401") || strings.Contains(errOut, "HTTP 403")) {
			t.Errorf("%s on a private log: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
	}
	p.stop(t)
}
