package httpapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	"indelible.dev/receipt"
	itlog "indelible.dev/tlog"
)

// ---------- the browser (shared by every console test of the package) ----------

var browser struct {
	once   sync.Once
	ctx    context.Context // the allocator's context; tabs are made from it
	cancel context.CancelFunc
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	os.Exit(code)
}

// chromiumPath finds a Chromium or Chrome binary.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newTab opens a new headless Chromium tab at 1280x800. Without a browser
// the test is skipped, except in CI (CI=true), where it fails: the browser
// tests must run there. On failure a full-page screenshot is saved and its
// path logged.
func newTab(t *testing.T) context.Context {
	t.Helper()
	noBrowser := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no browser: "+format, args...)
		}
		t.Skipf("no browser (install chromium to run the console tests): "+format, args...)
	}
	browser.once.Do(func() {
		path := chromiumPath()
		if path == "" {
			browser.err = errors.New("no chromium on PATH")
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.NoSandbox, // tests may run as root in containers
			chromedp.WindowSize(1280, 800),
			chromedp.Flag("disable-dev-shm-usage", true),
		)
		browser.ctx, browser.cancel = chromedp.NewExecAllocator(context.Background(), opts...)
		// Start it once here, so a broken install is reported once.
		ctx, cancel := chromedp.NewContext(browser.ctx)
		defer cancel()
		if err := chromedp.Do(ctx); err != nil {
			browser.err = err
		}
	})
	if browser.err != nil {
		noBrowser("%v", browser.err)
	}
	ctx, cancel := chromedp.NewContext(browser.ctx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		noBrowser("%v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		if t.Failed() {
			sctx, c := context.WithTimeout(ctx, 5*time.Second)
			if png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)); err == nil { // 100: PNG
				dir, err := os.MkdirTemp("", "indelible-console-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
				if err == nil {
					p := filepath.Join(dir, "failure.png")
					if os.WriteFile(p, png, 0o644) == nil {
						t.Logf("screenshot of the failure: %s", p)
					}
				}
			}
			c()
		}
		cancelTimeout()
		cancel()
	})
	return ctx
}

// ---------- receipts built in Go ----------

// receiptFixture is a small log of events built directly with x/mod's tlog
// (no server), a log key and two witness keys, and the receipts of its
// entries in a checkpoint signed by the log and cosigned by both witnesses.
type receiptFixture struct {
	logVKey      string
	witnessVKeys []string
	signers      []note.Signer // log first, then the witnesses
	n            int64
	hashes       []tlog.Hash // stored hashes
	openings     [][]byte    // salt || event bytes, by index
}

func commitmentOf(opening []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("indelible/event/v1"))
	h.Write([]byte{0})
	h.Write(opening)
	var c [32]byte
	h.Sum(c[:0])
	return c
}

func newReceiptFixture(t testing.TB, n int64) *receiptFixture {
	t.Helper()
	key := tlogtest.NewKey(t, "example.com/console-test")
	ls, vkey := key.Signer, key.VKey
	f := &receiptFixture{logVKey: vkey, signers: []note.Signer{ls}, n: n}
	for _, name := range []string{"witness.example/w1", "witness.example/w2"} {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		c, err := itlog.NewCosigner(name, priv, nil)
		if err != nil {
			t.Fatal(err)
		}
		f.signers = append(f.signers, c)
		f.witnessVKeys = append(f.witnessVKeys, c.VKey())
	}
	for i := int64(0); i < n; i++ {
		salt := make([]byte, 32)
		rand.Read(salt)
		ev := fmt.Sprintf(`{"action":"kubectl.exec","actor":{"id":"alice%s@example.com"},`+
			`"received_at":"2026-01-02T03:04:05.000000006Z","submitted_by":"ci","time":"2026-01-02T03:04:0%dZ"}`, strings.Repeat("x", int(i%3)), i%10)
		op := append(salt, ev...)
		f.openings = append(f.openings, op)
		c := commitmentOf(op)
		hs, err := tlog.StoredHashes(i, c[:], tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for j, x := range idx {
				out[j] = f.hashes[x]
			}
			return out, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		f.hashes = append(f.hashes, hs...)
	}
	return f
}

func (f *receiptFixture) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			out[j] = f.hashes[x]
		}
		return out, nil
	})
}

// receipt returns the receipt of entry i in the tree of size n, with the
// checkpoint signed by signers.
func (f *receiptFixture) receipt(t testing.TB, i, n int64, signers ...note.Signer) []byte {
	t.Helper()
	root, err := tlog.TreeHash(n, f.reader())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := itlog.SignCheckpoint(itlog.Checkpoint{Origin: "example.com/console-test", Tree: tlog.Tree{N: n, Hash: root}}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tlog.ProveRecord(n, i, f.reader())
	if err != nil {
		t.Fatal(err)
	}
	return []byte(itlog.Receipt{Extra: f.openings[i], Index: i, Proof: p, Checkpoint: cp}.String())
}

// goVerify is the Go verifier the browser's is held to: package receipt,
// which `indelible verify` uses too.
func goVerify(data []byte, p itlog.Policy) error {
	_, err := receipt.Verify(data, p)
	return err
}

// ---------- the console's static server ----------

// newConsoleServer serves the console (no events layer) on a loopback port.
func newConsoleServer(t testing.TB, cfg ConsoleConfig) *httptest.Server {
	t.Helper()
	s := New(Config{})
	s.MountConsole(cfg)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return hs
}

func TestConsoleAssetsHeaders(t *testing.T) {
	hs := newConsoleServer(t, ConsoleConfig{LogVKey: "example.com/log+01234567+AQ=="})
	for _, tc := range []struct {
		path, ctype string
		status      int
	}{
		{"/", "text/html; charset=utf-8", 200},
		{"/console/app.js", "text/javascript; charset=utf-8", 200},
		{"/console/verify.js", "text/javascript; charset=utf-8", 200},
		{"/console/style.css", "text/css; charset=utf-8", 200},
		{"/console/icon.svg", "image/svg+xml", 200},
		{"/console/nope.js", "", 404},
		{"/console/..%2fconsole.go", "", 404},
		{"/console/.hidden.js", "", 404},
	} {
		resp, err := http.Get(hs.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.status)
			continue
		}
		if tc.status != 200 {
			continue
		}
		h := resp.Header
		if got := h.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", tc.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP allows unsafe code: %q", tc.path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers %v", tc.path, h)
		}
		if tc.path == "/" {
			// No inline script or style, nothing from another origin.
			for _, bad := range []string{"<script>", "style=", "http://", "https://", " onclick="} {
				if bytes.Contains(body, []byte(bad)) {
					t.Errorf("index.html contains %q", bad)
				}
			}
		}
	}
}

// TestConsoleAssetsSelfContained checks that no asset loads anything from
// another origin (no CDN, no external fonts) or uses inline handlers.
func TestConsoleAssetsSelfContained(t *testing.T) {
	entries, err := consoleFS.ReadDir(consoleAssetPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := consoleFS.ReadFile(consoleAssetPrefix + "/" + e.Name())
		s := string(b)
		for _, bad := range []string{"https://", "http://", "@import", "eval(", "new Function", "innerHTML", "onclick=\"", "localStorage.setItem(TOKEN", "console.log"} {
			if strings.Contains(s, bad) && !(bad == "http://" && strings.Contains(s, "http://www.w3.org/2000/svg") && strings.Count(s, "http://") == strings.Count(s, "http://www.w3.org/2000/svg")) {
				t.Errorf("%s contains %q", e.Name(), bad)
			}
		}
	}
}

func TestKeysRoute(t *testing.T) {
	f := newReceiptFixture(t, 1)
	hs := newConsoleServer(t, ConsoleConfig{LogVKey: f.logVKey, WitnessVKeys: f.witnessVKeys, Quorum: 1})
	resp, err := http.Get(hs.URL + "/v1/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got keysBody
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := keysBody{Origin: "example.com/console-test", Log: f.logVKey, Witnesses: f.witnessVKeys, Quorum: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("GET /v1/keys = %+v, want %+v", got, want)
	}
}

// ---------- the browser's verifier against Go's ----------

// mutation is one way of breaking (or not) a receipt.
type mutation struct {
	name string
	data []byte
	step string // the step the browser must report as failed ("" if it may vary)
}

// b64Flip decodes the base64 field s, flips byte i of it, and re-encodes.
func b64Flip(s string, i int) string {
	b, _ := base64.StdEncoding.DecodeString(s)
	b[i%len(b)] ^= 0x01
	return base64.StdEncoding.EncodeToString(b)
}

// nonCanonical sets the lowest unused bit of padded base64 s: the same
// bytes to a lenient decoder, a malformed encoding to a strict one.
func nonCanonical(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := len(strings.TrimRight(s, "=")) - 1
	v := strings.IndexByte(alphabet, s[i])
	return s[:i] + string(alphabet[v|1]) + s[i+1:]
}

// receiptMutations returns the named mutation classes the Go tests reject,
// each at a few positions, plus a receipt with one cosignature missing.
func receiptMutations(t testing.TB, rc []byte) []mutation {
	t.Helper()
	text := string(rc)
	lines := strings.Split(text, "\n")
	var ms []mutation
	replaceLine := func(name string, li int, nl string, step string) {
		c := append([]string(nil), lines...)
		c[li] = nl
		ms = append(ms, mutation{name, []byte(strings.Join(c, "\n")), step})
	}
	// lines: 0 header, 1 extra, 2 index, 3.. proof, blank, origin, size, root, blank, sigs...
	extra := strings.TrimPrefix(lines[1], "extra ")
	for _, i := range []int{0, 31, 32, 40, -1} {
		if i < 0 {
			i = len(extra)*3/4 - 2
		}
		replaceLine(fmt.Sprintf("extra byte %d flipped", i), 1, "extra "+b64Flip(extra, i), "inclusion")
	}
	replaceLine("extra not canonical base64", 1, "extra "+nonCanonical(extra), "format")
	var idx int64
	fmt.Sscanf(lines[2], "index %d", &idx)
	blank := 3
	for lines[blank] != "" {
		blank++
	}
	for li := 3; li < blank; li++ {
		for _, i := range []int{0, 17, 31} {
			replaceLine(fmt.Sprintf("proof hash %d byte %d flipped", li-3, i), li, b64Flip(lines[li], i), "inclusion")
		}
	}
	replaceLine("proof hash not canonical base64", 3, nonCanonical(lines[3]), "format")
	root := blank + 3
	replaceLine("root not canonical base64", root, nonCanonical(lines[root]), "logsig")
	for _, i := range []int{0, 31} {
		replaceLine(fmt.Sprintf("checkpoint root byte %d flipped", i), root, b64Flip(lines[root], i), "logsig")
	}
	// Signature lines: the log's first, then the two witnesses'.
	for k, step := range map[int]string{0: "logsig", 1: "cosignatures", 2: "cosignatures"} {
		li := root + 2 + k
		name, sig, _ := strings.Cut(strings.TrimPrefix(lines[li], "— "), " ")
		for _, i := range []int{4, 40, 70} {
			if k == 0 && i >= 68 {
				i = 67
			}
			replaceLine(fmt.Sprintf("signature %d byte %d flipped", k, i), li, "— "+name+" "+b64Flip(sig, i), step)
		}
		replaceLine(fmt.Sprintf("signature %d not canonical base64", k), li, "— "+name+" "+nonCanonical(sig), "note")
		// A timestamp change breaks a cosignature too.
		if k > 0 {
			replaceLine(fmt.Sprintf("cosignature %d timestamp changed", k), li, "— "+name+" "+b64Flip(sig, 11), step)
		}
	}
	for _, d := range []int64{-1, 1, 1000} {
		if idx+d >= 0 {
			replaceLine(fmt.Sprintf("index %+d", d), 2, fmt.Sprintf("index %d", idx+d), "inclusion")
		}
	}
	if blank > 3 {
		drop := func(name string, li int) {
			c := append(append([]string(nil), lines[:li]...), lines[li+1:]...)
			ms = append(ms, mutation{name, []byte(strings.Join(c, "\n")), "inclusion"})
		}
		drop("truncated proof (last hash dropped)", blank-1)
		drop("truncated proof (first hash dropped)", 3)
		c := append(append(append([]string(nil), lines[:blank]...), lines[3]), lines[blank:]...)
		ms = append(ms, mutation{"proof with an extra hash", []byte(strings.Join(c, "\n")), "inclusion"})
	}
	// Quorum: drop one witness's cosignature (policy requires both).
	c := append(append([]string(nil), lines[:root+3]...), lines[root+4:]...)
	ms = append(ms, mutation{"one cosignature missing", []byte(strings.Join(c, "\n")), "cosignatures"})
	// The log's signature missing.
	c = append(append([]string(nil), lines[:root+2]...), lines[root+3:]...)
	ms = append(ms, mutation{"log signature missing", []byte(strings.Join(c, "\n")), "logsig"})
	ms = append(ms, mutation{"no extra line", []byte(strings.Join(append([]string{lines[0]}, lines[2:]...), "\n")), "opening"})
	ms = append(ms, mutation{"truncated receipt", rc[:len(rc)/2], "format"})
	return ms
}

// jsVerdict is what the browser's verifier said about one receipt.
type jsVerdict struct {
	OK     bool   `json:"ok"`
	Failed string `json:"failed"`
	Err    string `json:"err"`
}

// runJSVerifier verifies every receipt in the browser with verify.js and
// the given keys.
func runJSVerifier(t *testing.T, ctx context.Context, base string, keys map[string]any, receipts [][]byte) []jsVerdict {
	t.Helper()
	enc := make([]string, len(receipts))
	for i, r := range receipts {
		enc[i] = base64.StdEncoding.EncodeToString(r)
	}
	in, _ := json.Marshal(map[string]any{"keys": keys, "receipts": enc})
	script := `(async (input) => {
		const v = await import("/console/verify.js");
		const one = async (r) => {
			const bin = atob(r);
			const data = new Uint8Array(bin.length);
			for (let i = 0; i < bin.length; i++) data[i] = bin.charCodeAt(i);
			try {
				const res = await v.verifyReceipt(data, input.keys);
				return {ok: res.ok, failed: res.failed || ""};
			} catch (e) {
				return {ok: false, failed: "", err: String(e)};
			}
		};
		return Promise.all(input.receipts.map(one));
	})(` + string(in) + `)`
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]jsVerdict](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("running verify.js: %v", err)
	}
	if len(out) != len(receipts) {
		t.Fatalf("verify.js returned %d verdicts for %d receipts", len(out), len(receipts))
	}
	return out
}

func TestConsoleVerifierMatchesGo(t *testing.T) {
	ctx := newTab(t)
	f := newReceiptFixture(t, 13)
	hs := newConsoleServer(t, ConsoleConfig{LogVKey: f.logVKey, WitnessVKeys: f.witnessVKeys})
	if err := chromedp.Do(ctx, chromedp.Navigate(hs.URL+"/")); err != nil {
		t.Fatal(err)
	}
	policy, err := itlog.NewPolicy(f.logVKey, f.witnessVKeys, 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]any{"log": f.logVKey, "witnesses": f.witnessVKeys, "quorum": 0}

	// Valid receipts: every entry of several tree sizes, both verifiers accept.
	var valid [][]byte
	for _, n := range []int64{1, 2, 7, 13} {
		for i := int64(0); i < n; i++ {
			valid = append(valid, f.receipt(t, i, n, f.signers...))
		}
	}
	for i, v := range runJSVerifier(t, ctx, hs.URL, keys, valid) {
		if err := goVerify(valid[i], policy); err != nil {
			t.Fatalf("Go rejects valid receipt %d: %v", i, err)
		}
		if !v.OK {
			t.Fatalf("browser rejects valid receipt %d (step %q, %s):\n%s", i, v.Failed, v.Err, valid[i])
		}
	}

	// The named mutation classes: both reject, and the browser names the
	// step that failed.
	// An entry whose extra data has base64 padding, so that a
	// non-canonical encoding of it exists.
	mi := int64(5)
	for len(f.openings[mi])%3 == 0 {
		mi++
	}
	base := f.receipt(t, mi, 13, f.signers...)
	ms := receiptMutations(t, base)
	data := make([][]byte, len(ms))
	for i, m := range ms {
		data[i] = m.data
	}
	for i, v := range runJSVerifier(t, ctx, hs.URL, keys, data) {
		gerr := goVerify(ms[i].data, policy)
		if gerr == nil {
			t.Errorf("%s: Go accepts it; the mutation is not one the Go verifier rejects", ms[i].name)
			continue
		}
		if v.OK {
			t.Errorf("%s: browser accepts what Go rejects (%v)", ms[i].name, gerr)
			continue
		}
		if ms[i].step != "" && v.Failed != ms[i].step {
			t.Errorf("%s: browser reports step %q failed, want %q (Go: %v)", ms[i].name, v.Failed, ms[i].step, gerr)
		}
	}

	// Every byte of the receipt flipped (one bit), and every truncation at a
	// line boundary: the verdicts agree exactly.
	var sweep [][]byte
	for i := range base {
		m := bytes.Clone(base)
		m[i] ^= 0x01
		sweep = append(sweep, m)
	}
	for i := range base {
		if base[i] == '\n' {
			sweep = append(sweep, bytes.Clone(base[:i+1]), bytes.Clone(base[:i]))
		}
	}
	// A quorum of 1 accepts a receipt with one cosignature removed.
	lines := strings.Split(string(base), "\n")
	oneCosig := []byte(strings.Join(append(append([]string(nil), lines[:len(lines)-3]...), lines[len(lines)-2:]...), "\n"))
	disagree := 0
	startSweep := time.Now()
	sweepV := runJSVerifier(t, ctx, hs.URL, keys, sweep)
	t.Logf("sweep in the browser: %v", time.Since(startSweep))
	for i, v := range sweepV {
		gok := goVerify(sweep[i], policy) == nil
		if gok != v.OK {
			disagree++
			if disagree <= 5 {
				t.Errorf("mutation %d: Go ok=%v, browser ok=%v (step %q %s):\n%q", i, gok, v.OK, v.Failed, v.Err, sweep[i])
			}
		}
	}
	if disagree > 0 {
		t.Errorf("%d of %d byte flips and truncations judged differently", disagree, len(sweep))
	}
	p1, _ := itlog.NewPolicy(f.logVKey, f.witnessVKeys, 1)
	k1 := map[string]any{"log": f.logVKey, "witnesses": f.witnessVKeys, "quorum": 1}
	v := runJSVerifier(t, ctx, hs.URL, k1, [][]byte{oneCosig})[0]
	if gerr := goVerify(oneCosig, p1); gerr != nil || !v.OK {
		t.Errorf("quorum 1 with one cosignature: Go %v, browser ok=%v step %q", gerr, v.OK, v.Failed)
	}
	t.Logf("%d valid receipts, %d named mutations, %d byte flips and truncations: verdicts agree", len(valid), len(ms), len(sweep))
}

// get sends GET path to the fixture's server with token ("" for none).
func (f *consoleFixture) get(path, token string) (int, []byte) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.direct+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestHistogramRoute checks GET /v1/events/histogram over real stored
// events: counts per bucket, filters, auth, and every bad parameter.
func TestHistogramRoute(t *testing.T) {
	f := newConsoleFixture(t)
	base := time.Now().UTC().Truncate(5 * time.Minute).Add(-30 * time.Minute)
	var evs []map[string]any
	for i := 0; i < 90; i++ {
		evs = append(evs, map[string]any{"action": "a", "actor": map[string]any{"id": []string{"x", "y", "z"}[i%3]},
			"time": base.Add(time.Duration(i*20) * time.Second).Format(time.RFC3339)})
	}
	f.post(evs)
	q := url.Values{"since": {base.Format(time.RFC3339)}, "until": {base.Add(30 * time.Minute).Format(time.RFC3339)}, "bucket": {"5m"}}
	status, b := f.get("/v1/events/histogram?"+q.Encode(), f.read)
	if status != 200 {
		t.Fatalf("histogram: %d %s", status, b)
	}
	var h histogramBody
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if h.Total != 90 || len(h.Buckets) != 6 || !h.Complete || h.Bucket != "5m0s" {
		t.Fatalf("histogram: %s", b)
	}
	for i, bk := range h.Buckets {
		if bk.Count != 15 || !bk.Start.Equal(base.Add(time.Duration(i)*5*time.Minute)) {
			t.Errorf("bucket %d: %+v, want 15 events from %v", i, bk, base.Add(time.Duration(i)*5*time.Minute))
		}
	}
	q.Set("actor", "y")
	q.Set("bucket", "30m")
	if _, b := f.get("/v1/events/histogram?"+q.Encode(), f.read); !strings.Contains(string(b), `"total":30`) {
		t.Errorf("actor=y: %s", b)
	}
	if status, _ := f.get("/v1/events/histogram?"+q.Encode(), ""); status != 401 {
		t.Errorf("no token: %d, want 401", status)
	}
	if status, _ := f.get("/v1/events/histogram?"+q.Encode(), f.write); status != 403 {
		t.Errorf("append-only token: %d, want 403", status)
	}
	since := base.Format(time.RFC3339)
	for _, bad := range []string{
		"since=" + since,                          // no bucket
		"since=" + since + "&bucket=fast",         // bad bucket
		"since=" + since + "&bucket=500ms",        // under a second
		"since=" + since + "&bucket=1500ms",       // not whole seconds
		"since=" + since + "&bucket=1m&bucket=2m", // twice
		"bucket=1m",                                                // no since
		"since=yesterday&bucket=1m",                                // bad time
		"since=" + since + "&bucket=1m&limit=5",                    // limit
		"since=" + since + "&bucket=1m&cursor=abc",                 // cursor
		"since=" + since + "&bucket=1m&colour=blue",                // unknown parameter
		"since=2000-01-01T00:00:00Z&bucket=1m",                     // too many buckets
		"since=" + since + "&until=2000-01-01T00:00:00Z&bucket=1m", // reversed
	} {
		status, b := f.get("/v1/events/histogram?"+bad, f.read)
		if status != 400 || !strings.Contains(string(b), `"error"`) {
			t.Errorf("%s: %d %s, want 400 with an error", bad, status, b)
		}
	}
	// Centuries: past what a time.Duration holds (292 years), the bucket
	// count overflowed and the handler panicked.
	for _, bad := range []string{
		"since=1000-01-01T00:00:00Z&until=2900-01-01T00:00:00Z&bucket=1s",
		"since=0001-01-02T00:00:00Z&until=9999-12-31T00:00:00Z&bucket=1m",
	} {
		status, b := f.get("/v1/events/histogram?"+bad, f.read)
		if status != 400 || !strings.Contains(string(b), "at most 2000") {
			t.Errorf("%s: %d %s, want 400 naming the limit", bad, status, b)
		}
	}
	q = url.Values{"since": {"1000-01-01T00:00:00Z"}, "until": {"2900-01-01T00:00:00Z"}, "bucket": {"876600h"}}
	q.Set("action", "a")
	if status, b := f.get("/v1/events/histogram?"+q.Encode(), f.read); status != 200 || !strings.Contains(string(b), `"total":90,`) {
		t.Errorf("centuries by the century: %d %s, want the 90 events", status, b)
	}
}

// TestLogStatusRoute checks GET /v1/log/status: the witnesses as the log
// sees them, behind the read scope.
func TestLogStatusRoute(t *testing.T) {
	f := newConsoleFixture(t)
	f.post([]map[string]any{{"action": "a"}})
	if status, _ := f.get("/v1/log/status", ""); status != 401 {
		t.Fatalf("no token: %d", status)
	}
	status, b := f.get("/v1/log/status", f.read)
	var st logStatusBody
	if status != 200 || json.Unmarshal(b, &st) != nil {
		t.Fatalf("status: %d %s", status, b)
	}
	if st.Origin != "example.com/console" || st.Published < 1 || st.Witnessed == nil || *st.Witnessed < 1 || len(st.Witnesses) != 2 ||
		st.Witnesses[0].Name != "w1.example" || st.Witnesses[0].Known < 1 {
		t.Fatalf("status: %s", b)
	}
}
