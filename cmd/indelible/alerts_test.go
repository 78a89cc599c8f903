package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"indelible.dev/internal/tlogtest"
)

const alertsSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"

// alertHook is a webhook receiver that answers 503 until accept is set,
// recording every delivery's headers; accepted deliveries are checked
// against the Standard Webhooks signature independently.
type alertHook struct {
	accept atomic.Bool
	mu     sync.Mutex
	tries  []http.Header
	ok     []map[string]any
	bad    []string
	srv    *httptest.Server
}

func newAlertHook(t *testing.T) *alertHook {
	h := &alertHook{}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(alertsSecret, "whsec_"))
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.tries = append(h.tries, r.Header.Clone())
		if !h.accept.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "."))
		mac.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		ts, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
		if !hmac.Equal([]byte(r.Header.Get("webhook-signature")), []byte(want)) || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
			h.bad = append(h.bad, r.Header.Get("webhook-id"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p map[string]any
		json.Unmarshal(body, &p)
		p["webhook-id"] = r.Header.Get("webhook-id")
		h.ok = append(h.ok, p)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func writeAlertRules(t *testing.T, dir, hookURL string, count int) string {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "hook.secret"), []byte(alertsSecret+"\n"), 0o600)
	p := filepath.Join(dir, "rules.yaml")
	body := fmt.Sprintf(`notifiers:
  - {name: hook, type: webhook, url: %q, secret_file: hook.secret}
rules:
  - name: denied-burst
    match: {action: secret.read, outcome: denied}
    threshold: {count: %d, window: 5m}
    group_by: [actor.id]
    cooldown: 30m
    notify: [hook]
`, hookURL, count)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func appendDenied(t *testing.T, p *eventsProc, n int) {
	t.Helper()
	var nd strings.Builder
	for range n {
		nd.WriteString(`{"action":"secret.read","outcome":"denied","actor":{"id":"alice"}}` + "\n")
	}
	if _, err := p.client(t).AppendNDJSON(context.Background(), []byte(nd.String()), false); err != nil {
		t.Fatal(err)
	}
}

// alertsOf returns GET /v1/alerts's records.
func alertsOf(t *testing.T, p *eventsProc) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", p.url+"/v1/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/alerts: %d %v", resp.StatusCode, err)
	}
	return page.Events
}

// TestAlertsKillBeforeDelivery: the real binary commits a firing, its
// webhook refuses the delivery, the server is SIGKILLed; after a restart
// the firing is delivered, signed, with the same webhook-id, and it is not
// recorded twice.
func TestAlertsKillBeforeDelivery(t *testing.T) {
	h := newAlertHook(t)
	work := t.TempDir()
	rules := writeAlertRules(t, work, h.srv.URL, 3)
	dir := filepath.Join(work, "data")
	p := startEvents(t, dir, "--rules", rules)
	appendDenied(t, p, 3)
	tlogtest.Eventually(t, 20*time.Second, "a refused delivery", func() (bool, string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.tries) > 0, ""
	})
	alerts := alertsOf(t, p)
	if len(alerts) != 1 {
		t.Fatalf("%d alerts", len(alerts))
	}
	index := int64(alerts[0]["index"].(float64))
	p.kill()
	h.mu.Lock()
	before := h.tries[0].Get("webhook-id")
	h.mu.Unlock()
	if !strings.HasSuffix(before, "-"+strconv.FormatInt(index, 10)) || len(before) != 16+1+len(strconv.FormatInt(index, 10)) {
		t.Fatalf("webhook-id %q for alert %d", before, index)
	}

	h.accept.Store(true)
	p = startEvents(t, dir, "--rules", rules)
	tlogtest.Eventually(t, 20*time.Second, "delivery after restart", func() (bool, string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.ok) > 0, fmt.Sprint(h.bad)
	})
	h.mu.Lock()
	got := h.ok[0]
	h.mu.Unlock()
	if got["webhook-id"] != before || got["rule"] != "denied-burst" || got["group"] != "alice" || got["alert_index"] != float64(index) || got["resolved"] != false {
		t.Fatalf("delivered %v, want webhook-id %s", got, before)
	}
	if n := len(alertsOf(t, p)); n != 1 {
		t.Fatalf("%d alerts after the restart", n)
	}
	p.stop(t)
	out := p.stderr.String()
	if strings.Contains(out, strings.TrimPrefix(alertsSecret, "whsec_")) {
		t.Fatal("the webhook secret is in the server's output")
	}
}

// TestServeRulesReload: serve refuses a bad rules file at start; SIGHUP
// with a bad file keeps the old rules (logged), with a good one switches.
func TestServeRulesReload(t *testing.T) {
	h := newAlertHook(t)
	h.accept.Store(true)
	work := t.TempDir()
	rules := writeAlertRules(t, work, h.srv.URL, 3)
	good, _ := os.ReadFile(rules)
	os.WriteFile(rules, []byte(strings.Replace(string(good), "window: 5m", "window: 5 minutes", 1)), 0o600)
	dir := filepath.Join(work, "data")
	_, stderr, code := run(t, nil, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--rules", rules)
	if code == 0 || !strings.Contains(stderr, "rules.yaml:6: threshold.window \"5 minutes\"") {
		t.Fatalf("serve with a bad rules file: exit %d, %s", code, stderr)
	}
	os.WriteFile(rules, good, 0o600)
	p := startEvents(t, dir, "--rules", rules)
	// A bad file on SIGHUP: refused, the old rules (count 3) stay.
	os.WriteFile(rules, []byte(strings.Replace(string(good), "notify: [hook]", "notify: [pager]", 1)), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	tlogtest.Eventually(t, 10*time.Second, "reload refused", func() (bool, string) {
		return strings.Contains(p.stderr.String(), "reload refused"), p.stderr.String()
	})
	if !strings.Contains(p.stderr.String(), `rules.yaml:9: notify: unknown notifier \"pager\"`) {
		t.Fatalf("the refusal does not name the line:\n%s", p.stderr)
	}
	appendDenied(t, p, 2)
	time.Sleep(300 * time.Millisecond)
	if n := len(alertsOf(t, p)); n != 0 {
		t.Fatalf("%d alerts with count 3 after 2 events", n)
	}
	appendDenied(t, p, 1)
	tlogtest.Eventually(t, 10*time.Second, "old rules fire", func() (bool, string) { return len(alertsOf(t, p)) == 1, "" })
	// A good file: count 1 (a changed rule starts afresh), bob fires at once.
	os.WriteFile(rules, []byte(strings.Replace(strings.Replace(string(good), "count: 3", "count: 1", 1), "actor.id]", "actor.id, outcome]", 1)), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	tlogtest.Eventually(t, 10*time.Second, "reloaded", func() (bool, string) {
		return strings.Contains(p.stderr.String(), "alert rules reloaded"), ""
	})
	appendDenied(t, p, 1)
	tlogtest.Eventually(t, 10*time.Second, "new rules fire", func() (bool, string) {
		n := len(alertsOf(t, p))
		return n == 2, strconv.Itoa(n)
	})
	p.stop(t)
}

// TestRulesCommands: rules check and rules test exit 0, 1 (naming the
// line) or 2.
func TestRulesCommands(t *testing.T) {
	work := t.TempDir()
	rules := writeAlertRules(t, work, "https://hooks.example/x", 2)
	out, _, code := run(t, nil, "rules", "check", rules)
	if code != 0 || !strings.Contains(out, "ok: 1 rules, 1 notifiers") {
		t.Fatalf("check: %d %s", code, out)
	}
	good, _ := os.ReadFile(rules)
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown field", "cooldown: 30m", "cooldown: 30m\n    colour: red", `:9: unknown field "colour"`},
		{"bad duration", "window: 5m", "window: 5", `:6: threshold.window "5"`},
		{"bad cel", "group_by:", "where: 'event.actor.id == '\n    group_by:", `:7: rule "denied-burst": where:`},
		{"unknown notifier", "notify: [hook]", "notify: [hook, pager]", `:9: notify: unknown notifier "pager"`},
		{"duplicate name", "rules:\n", "rules:\n  - {name: denied-burst, match: {action: x}, threshold: {count: 1, window: 1m}}\n", `:5: rule "denied-burst" defined twice`},
	} {
		bad := filepath.Join(work, "bad.yaml")
		os.WriteFile(bad, []byte(strings.Replace(string(good), tc.from, tc.to, 1)), 0o600)
		_, stderr, code := run(t, nil, "rules", "check", bad)
		if code != 1 || !strings.Contains(stderr, "bad.yaml"+tc.want) {
			t.Errorf("%s: exit %d, %s", tc.name, code, stderr)
		}
	}
	if _, _, code := run(t, nil, "rules", "check", filepath.Join(work, "missing.yaml")); code != 2 {
		t.Errorf("missing file: exit %d", code)
	}
	// Inline tests: one passes, one expects the wrong thing.
	os.WriteFile(filepath.Join(work, "burst.ndjson"), []byte(strings.Repeat(`{"action":"secret.read","outcome":"denied","actor":{"id":"alice"}}`+"\n", 2)), 0o600)
	withTests := string(good) + "    tests:\n      - {name: two fire, events: burst.ndjson, expect: {fires: 1, groups: [alice]}}\n"
	os.WriteFile(rules, []byte(withTests), 0o600)
	if out, stderr, code := run(t, nil, "rules", "test", rules); code != 0 || !strings.Contains(out, "1 rule tests passed") {
		t.Fatalf("rules test: %d %s %s", code, out, stderr)
	}
	os.WriteFile(rules, []byte(strings.Replace(withTests, "fires: 1", "fires: 2", 1)), 0o600)
	if out, _, code := run(t, nil, "rules", "test", rules); code != 1 || !strings.Contains(out, "FAIL denied-burst / two fire: 1 firings, expected 2") {
		t.Fatalf("failing rules test: %d %s", code, out)
	}
}

// TestAlertsDocRules: the ready rules file of docs/alerts.md is
// testdata/alerts/rules.yaml verbatim, and rules check and rules test pass
// on it.
func TestAlertsDocRules(t *testing.T) {
	file := filepath.Join("..", "..", "testdata", "alerts", "rules.yaml")
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## A ready rules file")
	if !ok {
		t.Fatal("docs/alerts.md has no ready rules file section")
	}
	_, block, ok := strings.Cut(rest, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```\n")
	if !ok || !ok2 || block != string(want) {
		t.Fatalf("docs/alerts.md's ready rules file differs from %s", file)
	}
	if out, stderr, code := run(t, nil, "rules", "check", file); code != 0 {
		t.Fatalf("rules check: %d %s %s", code, out, stderr)
	}
	out, stderr, code := run(t, nil, "rules", "test", file)
	if code != 0 || !strings.Contains(out, "5 rule tests passed") {
		t.Fatalf("rules test: %d %s %s", code, out, stderr)
	}
}

// TestAlertConsoleLink: an alert's console link (here in a Slack message)
// is built on --public-url when it is given, else on the address the
// server listens on.
func TestAlertConsoleLink(t *testing.T) {
	texts := make(chan string, 4)
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Text string }
		json.NewDecoder(r.Body).Decode(&m)
		texts <- m.Text
	}))
	t.Cleanup(slack.Close)
	for _, public := range []string{"", "https://ledger.example/audit/"} {
		work := t.TempDir()
		rules := filepath.Join(work, "rules.yaml")
		os.WriteFile(rules, []byte(fmt.Sprintf(`notifiers:
  - {name: chat, type: slack, url: %q}
rules:
  - {name: denied, match: {action: secret.read, outcome: denied}, threshold: {count: 1, window: 1m}, notify: [chat]}
`, slack.URL)), 0o600)
		args := []string{"--rules", rules}
		if public != "" {
			args = append(args, "--public-url", public)
		}
		p := startEvents(t, filepath.Join(work, "data"), args...)
		appendDenied(t, p, 1)
		var text string
		select {
		case text = <-texts:
		case <-time.After(20 * time.Second):
			t.Fatalf("public URL %q: no Slack message", public)
		}
		alerts := alertsOf(t, p)
		if len(alerts) != 1 {
			t.Fatalf("%d alerts", len(alerts))
		}
		base := public
		if base == "" {
			base = p.url + "/"
		}
		want := base + "#/events/" + strconv.FormatInt(int64(alerts[0]["index"].(float64)), 10)
		if !strings.HasSuffix(text, ": "+want) {
			t.Errorf("public URL %q: Slack text %q, want a link to %s", public, text, want)
		}
		p.stop(t)
	}
}
