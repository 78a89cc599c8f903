package httpapi

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/alert"
	"indelible.dev/auth"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
)

// consoleFixture is a real events-mode server (ledger witnessed by two real
// witnesses over HTTP, events layer, tokens) with the console mounted,
// reached through a reverse proxy that can tamper with receipts.
type consoleFixture struct {
	t       *testing.T
	url     string // the proxy: what the browser loads
	proxy   *httptest.Server
	direct  string // the server itself
	tokens  *auth.Store
	read    string // a read-scoped token
	write   string // an append-scoped token
	policy  itlog.Policy
	tamper  atomic.Value // "", "event" or "proof" (receipts), "record" or "record-bytes" (records)
	started time.Time
}

func newConsoleFixture(t *testing.T, opts ...func(*Config)) *consoleFixture {
	t.Helper()
	const origin = "example.com/console"
	key := tlogtest.NewKey(t, origin)
	signer, verifier, vkey := key.Signer, key.Verifier, key.VKey
	logs := []witness.Log{{Origin: origin, Verifiers: []note.Verifier{verifier}}}
	var clients []ledger.Witness
	var wkeys []string
	for _, name := range []string{"w1.example", "w2.example"} {
		tw := newTestWitness(t, name, logs, nil, -1)
		c, err := witness.NewClient(tw.vkey, tw.ts.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		wkeys = append(wkeys, tw.vkey)
	}
	logger, _, secrets := checkedLogger(t) // token secrets in its log fail the test
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, Logger: logger, MinFreeBytes: -1,
		Witnessing: ledger.WitnessConfig{Witnesses: clients, Timeout: 2 * time.Second, Retry: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	layer, tokens, _ := newLayerAndTokens(t, l, logger, secrets)
	f := &consoleFixture{t: t, tokens: tokens, started: time.Now()}
	f.tamper.Store("")
	_, f.read, _ = tokens.Create("sre", []auth.Scope{auth.ScopeRead})
	_, f.write, _ = tokens.Create("ci", []auth.Scope{auth.ScopeAppend})
	f.policy, err = itlog.NewPolicy(vkey, wkeys, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Log: l, Events: layer, Tokens: tokens, Logger: logger, StreamHeartbeat: 200 * time.Millisecond,
		Console: &ConsoleConfig{LogVKey: vkey, WitnessVKeys: wkeys}}
	for _, o := range opts {
		o(&cfg)
	}
	srv := New(cfg)
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config = srv.HTTPServer("")
	hs.Start()
	f.direct = hs.URL
	target, _ := url.Parse(hs.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // the event stream
	proxy.ModifyResponse = func(r *http.Response) error {
		mode := f.tamper.Load().(string)
		if mode == "" || r.StatusCode != 200 {
			return nil
		}
		isRecord := r.Request.URL.Path == "/v1/events" || strings.HasPrefix(r.Request.URL.Path, "/v1/events/") && !strings.Contains(r.Request.URL.Path[len("/v1/events/"):], "/")
		if strings.HasPrefix(mode, "record") && !isRecord || !strings.HasPrefix(mode, "record") && !strings.HasSuffix(r.Request.URL.Path, "/receipt") {
			return nil
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		if strings.HasPrefix(mode, "record") {
			b = tamperRecords(f.t, b, mode)
		} else {
			b = tamperReceipt(b, mode)
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.Header.Set("Content-Length", fmt.Sprint(len(b)))
		return nil
	}
	ps := httptest.NewServer(proxy)
	f.url, f.proxy = ps.URL, ps
	t.Cleanup(func() {
		ps.Close()
		srv.SetShuttingDown()
		hs.Close()
		layer.Close()
		l.Close()
	})
	return f
}

// tamperRecords rewrites the records in a reply of GET /v1/events or GET
// /v1/events/{index} as a lying server would: every actor.id becomes
// mallory@example.com in the record's event ("record"), and in its
// event_bytes too ("record-bytes"); the salt and commitment stay, so the
// receipt still verifies.
func tamperRecords(t *testing.T, b []byte, mode string) []byte {
	forge := func(rec map[string]any) {
		ev, ok := rec["event"].(map[string]any)
		if !ok {
			return
		}
		if a, ok := ev["actor"].(map[string]any); ok {
			a["id"] = "mallory@example.com"
		}
		if mode == "record-bytes" {
			eb, _ := json.Marshal(ev) // keys sorted, like the canonical form
			rec["event_bytes"] = base64.StdEncoding.EncodeToString(eb)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Errorf("tampering: %v", err)
		return b
	}
	if list, ok := v["events"].([]any); ok {
		for _, r := range list {
			if rec, ok := r.(map[string]any); ok {
				forge(rec)
			}
		}
	} else {
		forge(v)
	}
	out, _ := json.Marshal(v)
	return out
}

// tamperReceipt flips one byte of the event (in the extra line) or of the
// first proof hash, keeping the receipt well formed.
func tamperReceipt(b []byte, mode string) []byte {
	lines := strings.Split(string(b), "\n")
	switch mode {
	case "event":
		x, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[1], "extra "))
		x[len(x)-3] ^= 0x01 // inside the event's JSON
		lines[1] = "extra " + base64.StdEncoding.EncodeToString(x)
	case "proof":
		lines[3] = b64Flip(lines[3], 7)
	}
	return []byte(strings.Join(lines, "\n"))
}

// post appends events (JSON array) and waits for a witnessed checkpoint
// covering them, so that their receipts exist.
func (f *consoleFixture) post(evs []map[string]any) {
	f.t.Helper()
	body, _ := json.Marshal(evs)
	req, _ := http.NewRequest(http.MethodPost, f.direct+"/v1/events?wait=checkpoint", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.write)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		f.t.Fatalf("POST /v1/events: %d %s", resp.StatusCode, b)
	}
}

// seed stores 160 events: 120 in the last 50 minutes (alice, bob, carol in
// turn; every 20th by dave), and 40 two to three days ago (erin).
func (f *consoleFixture) seed() {
	f.t.Helper()
	now := time.Now().UTC()
	var evs []map[string]any
	for i := 0; i < 120; i++ {
		actor := []string{"alice@example.com", "bob@example.com", "carol@example.com"}[i%3]
		if i%20 == 7 {
			actor = "dave@example.com"
		}
		evs = append(evs, map[string]any{
			"time":     now.Add(-time.Duration(i*25) * time.Second).Format(time.RFC3339Nano),
			"actor":    map[string]any{"id": actor, "type": "user"},
			"action":   []string{"kubectl.get", "kubectl.exec", "secrets.read"}[i%3],
			"resource": map[string]any{"type": "pod", "id": fmt.Sprintf("prod/payments-%d", i%4)},
			"outcome":  []string{"success", "success", "denied", "failure"}[i%4],
			"source":   "kube-apiserver/prod-eu1",
		})
	}
	for i := 0; i < 40; i++ {
		evs = append(evs, map[string]any{
			"time":   now.Add(-48*time.Hour - time.Duration(i)*time.Hour/2).Format(time.RFC3339Nano),
			"actor":  map[string]any{"id": "erin@example.com"},
			"action": "db.query", "outcome": "success", "source": "postgres/prod",
		})
	}
	f.post(evs)
	f.t.Logf("server up and %d events stored in %v", len(evs), time.Since(f.started).Round(time.Millisecond))
}

// ---------- browser helpers ----------

// js evaluates expr (awaiting a promise) and returns its value.
func js[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS polls expr until it is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash + " | status: " + document.getElementById("status").textContent + " | " + document.getElementById("empty").textContent`))
			t.Fatalf("timed out waiting for %s (%s): %v; page: %s", what, expr, err, page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do runs the steps, each within 30 s.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	for i, step := range steps {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := chromedp.Do(sctx, step)
		cancel()
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
}

// click clicks the element matching the CSS selector from script (the
// element's click(), as a keyboard activation would).
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	if !js[bool](t, ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true; })()`, sel)) {
		t.Fatalf("no element %s to click", sel)
	}
}

// seededConsole is the start of most browser tests: a seeded fixture and a
// tab signed in at hash.
func seededConsole(t *testing.T, hash string) (*consoleFixture, context.Context) {
	t.Helper()
	f := newConsoleFixture(t)
	f.seed()
	ctx := newTab(t)
	f.signIn(t, ctx, hash)
	return f, ctx
}

// signIn opens the console at hash and signs in with token.
func (f *consoleFixture) signIn(t *testing.T, ctx context.Context, hash string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(f.url+"/"+hash), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), f.read), chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)))
	waitJS(t, ctx, "the timeline", `!document.getElementById("view-events").hidden && document.getElementById("status").textContent.includes("shown")`)
}

// waitLoaded waits until the rows shown were loaded for the current URL,
// which contains want.
func waitLoaded(t *testing.T, ctx context.Context, what, want string) {
	t.Helper()
	waitJS(t, ctx, what, fmt.Sprintf(`location.hash.includes(%q) && (document.body.dataset.loaded || "").endsWith(":" + location.hash)`, want))
}

// seededRows is a JS expression: the rows shown that are not the
// indelible.read events the console's own reads add to the log.
const seededRows = `[...document.querySelectorAll("#rows tr")].filter(r => !r.textContent.includes("indelible.read")).length`

// rowIndexes returns the indexes of the rows shown, top to bottom.
func rowIndexes(t *testing.T, ctx context.Context) []int64 {
	return js[[]int64](t, ctx, `[...document.querySelectorAll("#rows tr")].map(r => Number(r.dataset.index))`)
}

// rowTimes returns the times of the rows shown (RFC 3339), top to bottom.
func rowTimes(t *testing.T, ctx context.Context) []string {
	return js[[]string](t, ctx, `[...document.querySelectorAll("#rows tr td:first-child")].map(td => td.title)`)
}

func checkNewestFirst(t *testing.T, times []string) {
	t.Helper()
	for i := 1; i < len(times); i++ {
		a, _ := time.Parse(time.RFC3339Nano, times[i-1])
		b, _ := time.Parse(time.RFC3339Nano, times[i])
		if a.Before(b) {
			t.Fatalf("row %d (%s) is older than row %d (%s): not newest first", i-1, times[i-1], i, times[i])
		}
	}
}

// ---------- the acceptance tests ----------

// TestConsoleTimeline: sign in, page through results as you scroll, filter
// by actor (typed, and by clicking a value), by a time range, see the
// histogram, and keep the token out of the URL.
func TestConsoleTimeline(t *testing.T) {
	f, ctx := seededConsole(t, "#/events?range=1h")

	// The last hour: 120 events, 100 per page; scrolling loads the rest
	// (with the cursor of the same resolved range).
	if n := len(rowIndexes(t, ctx)); n != 100 {
		t.Fatalf("first page: %d rows, want 100", n)
	}
	do(t, ctx, chromedp.ScrollIntoView(chromedp.ID("sentinel")))
	waitJS(t, ctx, "the second page", seededRows+` === 120 && document.getElementById("more").hidden && document.getElementById("status").textContent.includes("shown")`)
	checkNewestFirst(t, rowTimes(t, ctx))
	// Beside each actor, the token that wrote the event (the seed's "ci").
	if subs := js[[]string](t, ctx, `[...document.querySelectorAll("#rows tr")].filter(r => !r.textContent.includes("indelible.read")).map(r => r.querySelector("td.submitter").textContent)`); len(subs) != 120 || slices.ContainsFunc(subs, func(s string) bool { return s != "ci" }) {
		t.Errorf("submitted_by column: %v, want ci on every seeded row", subs)
	}
	if h := js[string](t, ctx, `document.querySelector("thead tr th:nth-child(3)").textContent`); h != "Submitted by" {
		t.Errorf("third column %q, want Submitted by", h)
	}

	// All time: 160 events.
	do(t, ctx, chromedp.Navigate(f.url+"/#/events?range=all"))
	waitLoaded(t, ctx, "all time", "range=all")
	if n := len(rowIndexes(t, ctx)); n != 100 {
		t.Fatalf("first page: %d rows, want 100", n)
	}
	do(t, ctx, chromedp.ScrollIntoView(chromedp.ID("sentinel")))
	waitJS(t, ctx, "the second page", seededRows+` === 160 && document.getElementById("more").hidden`)
	idx := rowIndexes(t, ctx)
	seen := map[int64]bool{}
	for _, i := range idx {
		if seen[i] {
			t.Fatalf("index %d shown twice", i)
		}
		seen[i] = true
	}
	checkNewestFirst(t, rowTimes(t, ctx))
	if js[bool](t, ctx, `!document.getElementById("more").hidden`) {
		t.Error("Load more still shown on the last page")
	}

	// Filter by actor, typed into the form.
	do(t, ctx, chromedp.SendKeys(chromedp.ID("f-actor"), "bob@example.com"), chromedp.Click(chromedp.CSS(`#filters button[type=submit]`)))
	waitLoaded(t, ctx, "bob's rows", "actor=bob%40example.com")
	actors := js[[]string](t, ctx, `[...document.querySelectorAll("#rows tr td:nth-child(2)")].map(td => td.textContent)`)
	if len(actors) != 38 {
		t.Errorf("actor=bob: %d rows, want 38", len(actors))
	}
	for _, a := range actors {
		if a != "bob@example.com" {
			t.Fatalf("actor filter shows a row by %q", a)
		}
	}
	// Clicking a value filters by it too.
	do(t, ctx, chromedp.Click(chromedp.CSS(`#rows tr:first-child td:nth-child(6) .val`)))
	waitLoaded(t, ctx, "the outcome filter", "outcome=")
	outcomes := js[[]string](t, ctx, `[...document.querySelectorAll("#rows tr td:nth-child(6)")].map(td => td.textContent)`)
	for _, o := range outcomes {
		if o != outcomes[0] {
			t.Fatalf("outcome filter shows %q and %q", outcomes[0], o)
		}
	}

	// A time range: the last hour (quick pick) drops erin's old events.
	do(t, ctx, chromedp.Navigate(f.url+"/#/events?actor=erin%40example.com&range=all"))
	waitJS(t, ctx, "erin's rows", `document.querySelectorAll("#rows tr").length === 40`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`.quick button[data-range="1h"]`)))
	waitLoaded(t, ctx, "the last hour", "range=1h")
	if !js[bool](t, ctx, `!document.getElementById("empty").hidden && document.querySelectorAll("#rows tr").length === 0`) {
		t.Error("erin's events shown in the last hour")
	}
	// And an explicit range, in the form: 72 h ago to 24 h ago.
	from := time.Now().Add(-72 * time.Hour).Local().Format("2006-01-02T15:04:05")
	to := time.Now().Add(-24 * time.Hour).Local().Format("2006-01-02T15:04:05")
	js[bool](t, ctx, fmt.Sprintf(`(() => { document.getElementById("f-actor").value = ""; document.getElementById("f-since").value = %q; document.getElementById("f-until").value = %q; return true; })()`, from, to))
	do(t, ctx, chromedp.Click(chromedp.CSS(`#filters button[type=submit]`)))
	waitLoaded(t, ctx, "the explicit range", "since=")
	if n := len(rowIndexes(t, ctx)); n != 40 {
		t.Errorf("range 72h..24h ago: %d rows, want 40", n)
	}
	for _, a := range js[[]string](t, ctx, `[...document.querySelectorAll("#rows tr td:nth-child(2)")].map(td => td.textContent)`) {
		if a != "erin@example.com" {
			t.Fatalf("range 72h..24h ago shows a row by %q", a)
		}
	}
	// The histogram counts the same 40 events.
	waitJS(t, ctx, "the histogram", `document.querySelectorAll("#hist-body rect.bar").length > 0`)
	if c := js[string](t, ctx, `document.getElementById("hist-caption").textContent`); !strings.HasPrefix(c, "40 events") {
		t.Errorf("histogram caption %q, want 40 events", c)
	}

	// A shared view: the URL carries the filters, never the token.
	hash := js[string](t, ctx, `location.href`)
	if strings.Contains(hash, f.read) || strings.Contains(hash, "token") {
		t.Fatalf("the URL carries the token: %s", hash)
	}
	// Keyboard: focus the first row, arrow down, Enter opens the event.
	do(t, ctx, chromedp.Focus(chromedp.CSS(`#rows tr:first-child`)), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, "the event panel", `!document.getElementById("panel").hidden && location.hash.includes("event=")`)
	second := js[string](t, ctx, `document.querySelector("#rows tr:nth-child(2)").dataset.index`)
	if !strings.Contains(js[string](t, ctx, `location.hash`), "event="+second) {
		t.Errorf("arrow down + Enter opened %s, want event %s", js[string](t, ctx, `location.hash`), second)
	}
	do(t, ctx, chromedp.KeyEvent(kb.Escape))
	waitJS(t, ctx, "the panel closed", `document.getElementById("panel").hidden`)

	// A phone-width window: nothing wider than the screen but the table,
	// which scrolls in its own box. Dark mode follows the system.
	do(t, ctx, chromedp.EmulateViewport(390, 844))
	if w := js[int](t, ctx, `document.documentElement.scrollWidth - innerWidth`); w > 0 {
		wide := js[[]string](t, ctx, `[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > innerWidth + 1 && !e.closest(".timeline-wrap") && e.offsetParent !== null).slice(0, 5).map(e => e.tagName + "#" + e.id + "." + e.className)`)
		t.Errorf("at 390 px the page is %d px wider than the window: %v", w, wide)
	}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	if bg := js[string](t, ctx, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(13, 17, 23)" {
		t.Errorf("dark mode background %q", bg)
	}
	do(t, ctx, chromedp.EmulateViewport(1280, 800))

	// Sign out forgets the token.
	do(t, ctx, chromedp.Click(chromedp.ID("signout")))
	waitJS(t, ctx, "the sign-in form", `!document.getElementById("signin").hidden && sessionStorage.length === 0`)
}

// verifyIn opens the event at index and presses Verify; it returns the
// verdict ("ok" or "bad") and the failed step.
func verifyIn(t *testing.T, ctx context.Context, base string, index int64) (string, string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/#/events?range=all&event=%d", base, index)))
	waitJS(t, ctx, "the event panel", `document.getElementById("verify")`)
	do(t, ctx, chromedp.Click(chromedp.ID("verify")))
	waitJS(t, ctx, "the verdict", `document.getElementById("verify-result").dataset.verdict`)
	return js[string](t, ctx, `document.getElementById("verify-result").dataset.verdict`),
		js[string](t, ctx, `document.getElementById("verify-result").dataset.failed`)
}

// TestConsoleVerify: open an event, Verify shows every step green; through
// a proxy that flips a byte of the event or of a proof hash, Verify shows
// which step failed; a pinned key that stops matching raises the alarm.
func TestConsoleVerify(t *testing.T) {
	f, ctx := seededConsole(t, "#/events?range=all")
	const index = 42

	verdict, failed := verifyIn(t, ctx, f.url, index)
	steps := js[[]map[string]string](t, ctx, `[...document.querySelectorAll("#verify-result .steps > li")].map(li => ({step: li.dataset.step, ok: li.dataset.ok}))`)
	if verdict != "ok" || failed != "" || len(steps) != 10 {
		t.Fatalf("Verify: verdict %q, failed %q, steps %v", verdict, failed, steps)
	}
	for _, s := range steps {
		if s["ok"] != "true" {
			t.Errorf("step %s is %s, want green", s["step"], s["ok"])
		}
	}
	if w := js[string](t, ctx, `document.querySelector('[data-step="cosignatures"]').textContent`); !strings.Contains(w, "w1.example: cosignature verified") || !strings.Contains(w, "w2.example: cosignature verified") {
		t.Errorf("cosignature step: %q", w)
	}
	// The panel shows the canonical JSON the commitment covers, decoded
	// from the verified receipt.
	rec := f.record(index)
	if got := js[string](t, ctx, `document.getElementById("canonical").textContent`); got != string(rec.bytes) {
		t.Errorf("canonical JSON shown %q, want %q", got, rec.bytes)
	}
	if src := js[string](t, ctx, `document.getElementById("panel-event").dataset.source`); src != "receipt" {
		t.Errorf("after Verify the panel shows the event from %q, want the receipt", src)
	}
	// No key is pinned: the verdict itself says the keys came from the
	// server.
	if text, keys := js[string](t, ctx, `document.getElementById("verdict").textContent`), js[string](t, ctx, `document.getElementById("verify-result").dataset.keys`); keys != "server" ||
		!strings.Contains(text, "with keys the server itself sent (no keys are pinned)") || strings.Contains(text, "pinned in this browser") {
		t.Errorf("unpinned verdict (keys %q): %q, want it to say the keys came from the server", keys, text)
	}
	if screenshot := os.Getenv("INDELIBLE_SCREENSHOT"); screenshot == "1" {
		saveDocsScreenshot(t, ctx, f.url, index)
	}

	for _, tc := range []struct{ mode, step string }{{"event", "commitment"}, {"proof", "inclusion"}} {
		f.tamper.Store(tc.mode)
		verdict, failed := verifyIn(t, ctx, f.url, index)
		if verdict != "bad" || failed != tc.step {
			t.Errorf("tampered %s: verdict %q, failed step %q, want bad at %q", tc.mode, verdict, failed, tc.step)
		}
		text := js[string](t, ctx, `document.getElementById("verdict").textContent`)
		if !strings.Contains(text, "FAILED") {
			t.Errorf("tampered %s: verdict text %q", tc.mode, text)
		}
	}
	f.tamper.Store("")

	// Pin the keys, then pretend the server changed its log key: alarm, and
	// verification still uses the pinned keys.
	do(t, ctx, chromedp.Navigate(f.url+"/#/keys"))
	waitJS(t, ctx, "the keys view", `document.getElementById("k-log").value !== ""`)
	do(t, ctx, chromedp.Click(chromedp.ID("k-server")))
	waitJS(t, ctx, "pinned", `localStorage.getItem("indelible.keys.pinned")`)
	if js[bool](t, ctx, `!document.getElementById("alarm").hidden`) {
		t.Fatal("alarm raised while the pinned keys match")
	}
	verdict, _ = verifyIn(t, ctx, f.url, index)
	if text, keys := js[string](t, ctx, `document.getElementById("verdict").textContent`), js[string](t, ctx, `document.getElementById("verify-result").dataset.keys`); verdict != "ok" || keys != "pinned" ||
		!strings.Contains(text, "with the keys pinned in this browser") || strings.Contains(text, "server itself sent") {
		t.Errorf("pinned verdict %q (keys %q): %q", verdict, keys, text)
	}
	_, otherVKey, _ := note.GenerateKey(rand.Reader, "example.com/console")
	js[bool](t, ctx, fmt.Sprintf(`(() => { const p = JSON.parse(localStorage.getItem("indelible.keys.pinned")); p.log = %q; localStorage.setItem("indelible.keys.pinned", JSON.stringify(p)); return true; })()`, otherVKey))
	verdict, failed = verifyIn(t, ctx, f.url, index)
	if verdict != "bad" || failed != "logsig" {
		t.Errorf("with another pinned log key: verdict %q failed %q, want bad at logsig", verdict, failed)
	}
	if !js[bool](t, ctx, `!document.getElementById("alarm").hidden && document.getElementById("alarm").textContent.includes("different verification keys")`) {
		t.Error("no alarm when the pinned key stops matching the server's")
	}

	// Log health, in plain words: verified checkpoint, both witnesses.
	js[bool](t, ctx, `(localStorage.removeItem("indelible.keys.pinned"), true)`)
	do(t, ctx, chromedp.Navigate(f.url+"/#/health"))
	waitJS(t, ctx, "the health view", `document.getElementById("health-plain")`)
	plain := js[string](t, ctx, `document.getElementById("health-plain").textContent`)
	if !strings.Contains(plain, "signed by the log's key (verified in this browser)") || !strings.Contains(plain, "cosigned by 2 of 2 witnesses") || !strings.Contains(plain, "No fork evidence") {
		t.Errorf("health: %q", plain)
	}
	// Fork evidence: the browser remembers a checkpoint of the same size
	// with another root.
	js[bool](t, ctx, `(() => { const s = JSON.parse(localStorage.getItem("indelible.checkpoint.seen")); for (const o in s) s[o].root = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; localStorage.setItem("indelible.checkpoint.seen", JSON.stringify(s)); return true; })()`)
	do(t, ctx, chromedp.Click(chromedp.ID("health-refresh")))
	waitJS(t, ctx, "fork evidence", `document.getElementById("health-plain") && document.getElementById("health-plain").textContent.includes("FORK EVIDENCE")`)
}

// TestConsoleVerifyCoversShown: a server that sends a record whose event
// differs from what its receipt opens (the fields alone, or the fields and
// event_bytes, with the true salt and commitment, so the receipt itself
// verifies) is caught: the verdict fails at the "shown" step, and the panel
// then shows the event the log committed to, not the server's.
func TestConsoleVerifyCoversShown(t *testing.T) {
	f, ctx := seededConsole(t, "#/events?range=all")
	const index = 42 // alice@example.com's
	rec := f.record(index)
	for _, mode := range []string{"record", "record-bytes"} {
		f.tamper.Store(mode)
		do(t, ctx, chromedp.Navigate("about:blank")) // no record cached from before
		do(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/#/events?range=all&event=%d", f.url, index)))
		waitJS(t, ctx, "the event panel", `document.getElementById("verify")`)
		if got := js[string](t, ctx, `document.getElementById("panel-body").textContent`); !strings.Contains(got, "mallory@example.com") {
			t.Fatalf("%s: the forged record is not what the panel shows before Verify: %q", mode, got)
		}
		do(t, ctx, chromedp.Click(chromedp.ID("verify")))
		waitJS(t, ctx, "the verdict", `document.getElementById("verify-result").dataset.verdict`)
		verdict := js[string](t, ctx, `document.getElementById("verify-result").dataset.verdict`)
		failed := js[string](t, ctx, `document.getElementById("verify-result").dataset.failed`)
		text := js[string](t, ctx, `document.getElementById("verdict").textContent`)
		detail := js[string](t, ctx, `document.querySelector('[data-step="shown"]')?.textContent || ""`)
		if verdict != "bad" || failed != "shown" || !strings.Contains(text, "FAILED") {
			t.Errorf("%s: verdict %q failed %q (%q), want bad at the shown step", mode, verdict, failed, text)
		}
		if !strings.Contains(detail, "differs in actor") || mode == "record-bytes" && !strings.Contains(detail, "event_bytes are not") {
			t.Errorf("%s: the shown step does not say what differs: %q", mode, detail)
		}
		// The receipt's own steps passed: only the record lied.
		if n := js[int](t, ctx, `document.querySelectorAll('#verify-result .steps > li[data-ok="true"]').length`); n != 9 {
			t.Errorf("%s: %d receipt steps passed, want 9", mode, n)
		}
		shown := js[string](t, ctx, `(document.getElementById("panel-event") || document.getElementById("panel-body")).textContent`)
		if js[string](t, ctx, `(document.getElementById("panel-event") || document.body).dataset.source || ""`) != "receipt" || strings.Contains(shown, "mallory") || !strings.Contains(shown, "alice@example.com") {
			t.Errorf("%s: after Verify the panel shows %q, want the committed event (alice), not the server's", mode, shown)
		}
		if got := js[string](t, ctx, `document.getElementById("canonical").textContent`); got != string(rec.bytes) {
			t.Errorf("%s: canonical JSON shown %q, want the committed %q", mode, got, rec.bytes)
		}
		// The token that wrote it, right after the actor's fields.
		if got := js[[]string](t, ctx, `[...document.querySelectorAll("#panel-body table.kv th")].map(th => th.textContent)`); !slices.Contains(got, "Submitted by") || slices.Index(got, "Submitted by") != slices.Index(got, "Actor type")+1 {
			t.Errorf("%s: panel fields %v, want Submitted by after the actor", mode, got)
		}
		if got := js[string](t, ctx, `document.querySelector("#panel-body table.kv").textContent`); !strings.Contains(got, "Submitted byci (the token that wrote the event") {
			t.Errorf("%s: panel does not show submitted_by ci: %q", mode, got)
		}
	}
}

type testRecord struct {
	bytes []byte
}

// record fetches the record at index directly.
func (f *consoleFixture) record(index int64) testRecord {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/events/%d", f.direct, index), nil)
	req.Header.Set("Authorization", "Bearer "+f.read)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		EventBytes []byte `json:"event_bytes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		f.t.Fatal(err)
	}
	return testRecord{bytes: r.EventBytes}
}

// saveDocsScreenshot writes docs/console.png: the console at 1280x800, the
// last 24 hours with the histogram, and an event verified step by step.
func saveDocsScreenshot(t *testing.T, ctx context.Context, base string, index int64) {
	t.Helper()
	do(t, ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(fmt.Sprintf("%s/#/events?range=1h&event=%d", base, index)))
	waitJS(t, ctx, "the histogram", `document.querySelectorAll("#hist-body rect.bar").length > 0`)
	waitJS(t, ctx, "the event panel", `document.getElementById("verify")`)
	do(t, ctx, chromedp.Click(chromedp.ID("verify")))
	waitJS(t, ctx, "the verdict", `document.getElementById("verify-result").dataset.verdict === "ok"`)
	js[bool](t, ctx, `(document.getElementById("panel").scrollTop = 330, document.activeElement.blur(), true)`)
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, quantize(img)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join("..", "docs", "console.png")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", p, out.Len())
}

// quantize maps img to its 256 most frequent colours (each pixel to the
// nearest), which keeps a flat UI screenshot sharp and the PNG small.
func quantize(img image.Image) *image.Paletted {
	b := img.Bounds()
	counts := map[color.RGBA]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			counts[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	cs := make([]color.RGBA, 0, len(counts))
	for c := range counts {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b color.RGBA) int { return counts[b] - counts[a] })
	pal := make(color.Palette, 0, 256)
	for _, c := range cs[:min(256, len(cs))] {
		pal = append(pal, c)
	}
	out := image.NewPaletted(b, pal)
	nearest := map[color.RGBA]uint8{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			i, ok := nearest[c]
			if !ok {
				i = uint8(pal.Index(c))
				nearest[c] = i
			}
			out.SetColorIndex(x, y, i)
		}
	}
	return out
}

// TestConsoleLiveTail: with live tail on, an event posted during the test
// appears at the top; with the event panel open the console holds new
// events back and says how many.
func TestConsoleLiveTail(t *testing.T) {
	f, ctx := seededConsole(t, "#/events?range=all")
	do(t, ctx, chromedp.Click(chromedp.ID("live")))
	waitJS(t, ctx, "the stream", `document.getElementById("status").textContent.includes("Live: connected")`)
	time.Sleep(300 * time.Millisecond) // let the stream's request reach the server
	f.post([]map[string]any{{"action": "live.tail.one", "actor": map[string]any{"id": "zoe@example.com"}}})
	waitJS(t, ctx, "the live event on top", `document.querySelector("#rows tr:first-child td:nth-child(4)").textContent === "live.tail.one"`)

	// Paused (the panel is open): "1 new event", then shown on demand.
	do(t, ctx, chromedp.Click(chromedp.CSS(`#rows tr:nth-child(3) td:nth-child(8)`)))
	waitJS(t, ctx, "the event panel", `!document.getElementById("panel").hidden`)
	f.post([]map[string]any{{"action": "live.tail.two"}})
	waitJS(t, ctx, "the pending count", `!document.getElementById("pending").hidden && document.getElementById("pending").textContent.startsWith("1 new event")`)
	do(t, ctx, chromedp.KeyEvent(kb.Escape), chromedp.Click(chromedp.ID("pending")))
	waitJS(t, ctx, "the held event on top", `document.querySelector("#rows tr:first-child td:nth-child(4)").textContent === "live.tail.two"`)
	do(t, ctx, chromedp.Click(chromedp.ID("live")))
	waitJS(t, ctx, "live off", `document.getElementById("live").getAttribute("aria-pressed") === "false"`)
}

// TestConsoleLiveTailLifetime: the server ends each stream after its
// lifetime (here 600 ms); the live tail reconnects at once, resuming after
// the last index it saw (or where the first stream started), and shows every
// event posted meanwhile exactly once.
func TestConsoleLiveTailLifetime(t *testing.T) {
	f := newConsoleFixture(t, func(c *Config) { c.StreamMaxAge = 600 * time.Millisecond })
	f.post([]map[string]any{{"action": "seed"}})
	ctx := newTab(t)
	f.signIn(t, ctx, "#/events?range=all&source=life")
	do(t, ctx, chromedp.Click(chromedp.ID("live")))
	waitJS(t, ctx, "the stream", `document.getElementById("status").textContent.includes("Live: connected")`)
	time.Sleep(900 * time.Millisecond) // past the first stream's lifetime, with no event
	var want []string
	for i := range 6 {
		a := fmt.Sprintf("life.%d", i)
		want = append(want, a)
		f.post([]map[string]any{{"action": a, "source": "life"}})
		time.Sleep(250 * time.Millisecond)
	}
	waitJS(t, ctx, "every event", `document.querySelectorAll("#rows tr").length >= 6`)
	time.Sleep(700 * time.Millisecond) // a duplicate would show by now
	got := js[[]string](t, ctx, `[...document.querySelectorAll("#rows tr td:nth-child(4)")].map(td => td.textContent).reverse()`)
	if !slices.Equal(got, want) {
		t.Fatalf("live rows (oldest first) %v, want %v", got, want)
	}
}

// downloads makes the tab save downloads in dir and returns a function that
// waits for the next completed download and returns its bytes.
func downloads(t *testing.T, ctx context.Context) func() []byte {
	t.Helper()
	dir := t.TempDir()
	progress := chromedp.Events(ctx, cdpbrowser.DownloadProgress)
	_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptrTo(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	next, stop := iter.Pull2(progress)
	t.Cleanup(stop)
	return func() []byte {
		t.Helper()
		for {
			ev, err, ok := next()
			if !ok || err != nil {
				t.Fatalf("waiting for a download: %v", err)
			}
			if ev.State == cdpbrowser.DownloadProgressStateCompleted {
				b, err := os.ReadFile(filepath.Join(dir, ev.GUID))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		}
	}
}

// TestConsoleExport: the NDJSON export holds exactly the rows shown, and
// the zip holds one verifying receipt per row, named <index>.tlog-proof.
func TestConsoleExport(t *testing.T) {
	f, ctx := seededConsole(t, "#/events?range=all&actor=dave%40example.com")
	waitJS(t, ctx, "dave's rows", `document.querySelectorAll("#rows tr").length === 6`)
	shown := rowIndexes(t, ctx)
	next := downloads(t, ctx)

	do(t, ctx, chromedp.Click(chromedp.ID("export-ndjson")))
	nd := next()
	var got []int64
	for _, line := range strings.Split(strings.TrimSuffix(string(nd), "\n"), "\n") {
		var r struct {
			Index int64 `json:"index"`
			Event struct {
				Actor struct{ ID string } `json:"actor"`
			} `json:"event"`
			EventBytes []byte `json:"event_bytes"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("NDJSON line %q: %v", line, err)
		}
		if r.Event.Actor.ID != "dave@example.com" || len(r.EventBytes) == 0 {
			t.Errorf("exported record %+v", r)
		}
		got = append(got, r.Index)
	}
	if fmt.Sprint(got) != fmt.Sprint(shown) {
		t.Fatalf("NDJSON export has indexes %v, the rows shown are %v", got, shown)
	}

	do(t, ctx, chromedp.Click(chromedp.ID("export-zip")))
	zb := next()
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatalf("the receipts zip: %v", err)
	}
	if len(zr.File) != len(shown) {
		t.Fatalf("zip has %d files, want %d", len(zr.File), len(shown))
	}
	for i, zf := range zr.File {
		if zf.Name != fmt.Sprintf("%d.tlog-proof", shown[i]) || zf.Method != zip.Store {
			t.Errorf("zip entry %d: %q method %d", i, zf.Name, zf.Method)
		}
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc) // checks the CRC-32
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", zf.Name, err)
		}
		if err := goVerify(b, f.policy); err != nil {
			t.Errorf("%s does not verify: %v", zf.Name, err)
		}
	}
}

// TestConsoleErrorStates: a revoked token sends the user back to sign-in
// with a message; a server that is gone is said so; no results is said so.
func TestConsoleErrorStates(t *testing.T) {
	f, ctx := seededConsole(t, "#/events?range=all&actor=nobody")
	waitJS(t, ctx, "the empty state", `!document.getElementById("empty").hidden && document.getElementById("empty").textContent.includes("No events match")`)

	if err := f.tokens.Revoke("sre"); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, `.quick button[data-range="1h"]`)
	waitJS(t, ctx, "sign-in after revocation", `!document.getElementById("signin").hidden && document.getElementById("signin-msg").textContent.includes("no longer accepts this token")`)
	if js[int](t, ctx, `sessionStorage.length`) != 0 {
		t.Error("the revoked token is still in sessionStorage")
	}
	// A navigation afterwards (or a request answered late) keeps the reason.
	js[bool](t, ctx, `(location.hash = "#/health", true)`)
	time.Sleep(200 * time.Millisecond)
	if !js[bool](t, ctx, `document.getElementById("signin-msg").textContent.includes("no longer accepts this token")`) {
		t.Error("the sign-out reason vanished on the next navigation")
	}
	js[bool](t, ctx, `(location.hash = "#/events?range=all", true)`)
	// A bad token at sign-in is refused with a message.
	do(t, ctx, chromedp.SendKeys(chromedp.ID("token"), "not-a-token"), chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)))
	waitJS(t, ctx, "the refusal", `document.getElementById("signin-msg").textContent.includes("not accepted")`)

	// The server goes away under a signed-in console.
	_, f.read, _ = f.tokens.Create("sre2", []auth.Scope{auth.ScopeRead})
	js[bool](t, ctx, `(document.getElementById("token").value = "", true)`)
	do(t, ctx, chromedp.SendKeys(chromedp.ID("token"), f.read), chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)))
	waitJS(t, ctx, "signed in again", `!document.getElementById("view-events").hidden && document.getElementById("status").textContent.includes("shown")`)
	f.proxy.CloseClientConnections()
	f.proxy.Close()
	click(t, ctx, `.quick button[data-range="7d"]`)
	waitJS(t, ctx, "the server-gone state", `document.getElementById("empty").textContent.includes("The server is not answering")`)
}

func ptrTo[T any](v T) *T { return &v }

// TestConsoleAlerts: a real alert engine over the fixture's events layer,
// with a real rules file: an alert fires, the header's badge shows 1 on
// every view, the list shows the rule, its link opens the alert's event and
// an evidence link the event it cites; an absent rule's alert moves to
// resolved when its resolve is recorded; a group holding markup is shown as
// text; the rows follow the console's keyboard conventions.
func TestConsoleAlerts(t *testing.T) {
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(`rules:
  - name: denied-burst
    match: {action: secret.read, outcome: denied}
    threshold: {count: 2, window: 1h}
    group_by: [actor.id]
    severity: high
  - name: payments-silent
    kind: absent
    match: {source: payments}
    group_by: [source]
    for: 4s
    severity: critical
`), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := alert.LoadPath(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var eng *alert.Engine
	f := newConsoleFixture(t, func(c *Config) {
		var err error
		eng, err = alert.Start(alert.Config{Events: c.Events, Rules: rules, Logger: c.Logger})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { eng.Close() }) // before the fixture closes the layer
	// alertsOf polls GET /v1/alerts (and resolves) until n records are there.
	waitAlerts := func(action string, n int) []int64 {
		t.Helper()
		var idx []int64
		tlogtest.Eventually(t, 20*time.Second, action, func() (bool, string) {
			req, _ := http.NewRequest(http.MethodGet, f.direct+"/v1/events?action="+action, nil)
			req.Header.Set("Authorization", "Bearer "+f.read)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			var page struct {
				Events []struct{ Index int64 } `json:"events"`
			}
			json.NewDecoder(resp.Body).Decode(&page)
			idx = idx[:0]
			for _, e := range page.Events {
				idx = append(idx, e.Index)
			}
			return len(idx) >= n, fmt.Sprint(len(idx))
		})
		return idx
	}
	now := time.Now().UTC()
	denied := func(actor string, k int) map[string]any {
		return map[string]any{"time": now.Add(time.Duration(k) * time.Second).Format(time.RFC3339Nano), "actor": map[string]any{"id": actor},
			"action": "secret.read", "outcome": "denied", "resource": map[string]any{"type": "secret", "id": "prod/db-password"}}
	}
	f.post([]map[string]any{{"action": "warm.up"}})
	f.post([]map[string]any{denied("alice@example.com", 0), denied("alice@example.com", 1)})
	fired := waitAlerts("indelible.alert.fired", 1)

	ctx := newTab(t)
	f.signIn(t, ctx, "#/events?range=1h")
	js[any](t, ctx, `import("/console/alerts.js").then(m => m.setRefreshInterval(300))`)
	waitJS(t, ctx, "the badge on the events view", `document.getElementById("alerts-badge").dataset.firing === "1" && !document.getElementById("alerts-badge").hidden`)
	if got := js[string](t, ctx, `document.getElementById("alerts-badge").textContent`); got != "1 alert firing" {
		t.Fatalf("badge %q", got)
	}
	do(t, ctx, chromedp.Navigate(f.url+"/#/health"))
	waitJS(t, ctx, "the badge on the health view", `!document.getElementById("view-health").hidden && document.getElementById("alerts-badge").dataset.firing === "1"`)

	// The badge leads to the list, which shows the rule.
	click(t, ctx, "#alerts-badge")
	waitJS(t, ctx, "the alert in the list", `!document.getElementById("view-alerts").hidden && document.querySelector("#alert-rows tr td.rule")?.textContent === "denied-burst"`)
	row := js[map[string]string](t, ctx, `(() => { const tds = document.querySelectorAll("#alert-rows tr:first-child td"); return {state: tds[0].textContent, severity: tds[2].textContent, group: tds[3].textContent, count: tds[6].textContent, index: document.querySelector("#alert-rows tr").dataset.index}; })()`)
	if row["state"] != "firing" || row["severity"] != "high" || row["group"] != "alice@example.com" || row["count"] != "2 in 1h" || row["index"] != fmt.Sprint(fired[0]) {
		t.Fatalf("alert row %v (fired at %d)", row, fired[0])
	}
	// Its link opens the alert's own event in the event panel...
	click(t, ctx, "#alert-rows tr:first-child a.alert-link")
	waitJS(t, ctx, "the alert's event", fmt.Sprintf(`!document.getElementById("panel").hidden && document.getElementById("panel-title").textContent === "Event %d" && document.getElementById("panel-body").textContent.includes("indelible.alert.fired")`, fired[0]))
	// ... and its evidence links the events it cites.
	do(t, ctx, chromedp.KeyEvent(kb.Escape))
	do(t, ctx, chromedp.Navigate(f.url+"/#/alerts"))
	waitJS(t, ctx, "the list again", `document.querySelectorAll("#alert-rows a.evidence-link").length === 2`)
	ev := js[string](t, ctx, `document.querySelector("#alert-rows a.evidence-link").dataset.index`)
	click(t, ctx, "#alert-rows a.evidence-link")
	waitJS(t, ctx, "the evidence event", fmt.Sprintf(`!document.getElementById("panel").hidden && document.getElementById("panel-title").textContent === "Event %s" && document.getElementById("panel-body").textContent.includes("secret.read") && document.getElementById("panel-body").textContent.includes("alice@example.com")`, ev))
	do(t, ctx, chromedp.KeyEvent(kb.Escape))

	// An absent rule: payments goes silent (fires), then speaks (resolves).
	f.post([]map[string]any{{"action": "pay", "source": "payments"}})
	waitAlerts("indelible.alert.fired", 2)
	do(t, ctx, chromedp.Navigate(f.url+"/#/alerts?show=firing"))
	waitJS(t, ctx, "two alerts firing", `document.getElementById("alerts-badge").dataset.firing === "2" && document.querySelectorAll("#alert-rows tr").length === 2`)
	f.post([]map[string]any{{"action": "pay", "source": "payments"}})
	waitAlerts("indelible.alert.resolved", 1)
	waitJS(t, ctx, "the resolved alert leaves the firing list", `document.getElementById("alerts-badge").dataset.firing === "1" && document.querySelectorAll("#alert-rows tr").length === 1`)
	click(t, ctx, `#alerts-show button[data-show="resolved"]`)
	waitJS(t, ctx, "the resolved list", `location.hash === "#/alerts?show=resolved" && document.querySelector("#alert-rows tr")?.dataset.state === "resolved" && document.querySelector("#alert-rows tr td.rule").textContent === "payments-silent" && document.querySelector("#alert-rows tr td:nth-child(6)").textContent !== ""`)
	if got := js[string](t, ctx, `document.querySelector('#alerts-show button[aria-pressed="true"]').dataset.show`); got != "resolved" {
		t.Fatalf("pressed filter %q", got)
	}

	// Markup in a group value is text, never markup.
	const evil = `<img src=x onerror="window.__xss=1">`
	f.post([]map[string]any{denied(evil, 2), denied(evil, 3)})
	waitAlerts("indelible.alert.fired", 3)
	do(t, ctx, chromedp.Navigate(f.url+"/#/alerts?show=all"))
	waitJS(t, ctx, "the markup group", fmt.Sprintf(`[...document.querySelectorAll("#alert-rows td.group")].some(td => td.textContent === %q)`, evil))
	if n := js[int](t, ctx, `document.querySelectorAll("#view-alerts img, #alerts-badge img").length`); n != 0 {
		t.Fatalf("%d img elements in the alerts view", n)
	}
	if xss := js[bool](t, ctx, `window.__xss === 1`); xss {
		t.Fatal("the group's markup ran")
	}

	// Keyboard: one row in the tab order; arrows move; Enter opens the alert's event.
	if n := js[int](t, ctx, `[...document.querySelectorAll("#alert-rows tr")].filter(r => r.tabIndex === 0).length`); n != 1 {
		t.Fatalf("%d rows in the tab order", n)
	}
	js[any](t, ctx, `document.querySelector("#alert-rows tr").focus()`)
	do(t, ctx, chromedp.KeyEvent(kb.ArrowDown))
	second := js[string](t, ctx, `document.activeElement.dataset.index`)
	if want := js[string](t, ctx, `document.querySelectorAll("#alert-rows tr")[1].dataset.index`); second != want {
		t.Fatalf("ArrowDown focused %q, want the second row %q", second, want)
	}
	time.Sleep(700 * time.Millisecond) // refreshes keep the focus
	if got := js[string](t, ctx, `document.activeElement.dataset.index`); got != second {
		t.Fatalf("a refresh moved the focus to %q", got)
	}
	do(t, ctx, chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, "Enter opens the alert's event", fmt.Sprintf(`!document.getElementById("panel").hidden && document.getElementById("panel-title").textContent === "Event %s"`, second))
	if n := js[int](t, ctx, `document.querySelectorAll("img:not([src^='/console/'])").length`); n != 0 {
		t.Fatalf("%d foreign img elements on the page", n)
	}

	// With the live tail on, an alert event refreshes the badge at once
	// (the timer is set to an hour here).
	do(t, ctx, chromedp.KeyEvent(kb.Escape))
	waitJS(t, ctx, "the panel closed", `document.getElementById("panel").hidden`)
	do(t, ctx, chromedp.Navigate(f.url+"/#/events?range=all"))
	waitJS(t, ctx, "the timeline", `!document.getElementById("view-events").hidden && document.getElementById("status").textContent.includes("shown")`)
	js[any](t, ctx, `import("/console/alerts.js").then(m => m.setRefreshInterval(3600e3))`)
	time.Sleep(300 * time.Millisecond) // the refresh setRefreshInterval starts
	before := js[string](t, ctx, `document.getElementById("alerts-badge").dataset.firing`)
	do(t, ctx, chromedp.Click(chromedp.ID("live")))
	waitJS(t, ctx, "the stream", `document.getElementById("status").textContent.includes("Live: connected")`)
	time.Sleep(300 * time.Millisecond)
	f.post([]map[string]any{denied("bob@example.com", 4), denied("bob@example.com", 5)})
	waitJS(t, ctx, "the badge after a live alert", fmt.Sprintf(`Number(document.getElementById("alerts-badge").dataset.firing) > %s`, before))
}
