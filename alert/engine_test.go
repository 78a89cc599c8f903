package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

// stack is a real ledger and events layer in a temporary directory, and
// an engine over them.
type stack struct {
	t      *testing.T
	dir    string
	key    tlogtest.Key
	master []byte
	log    *ledger.Log
	l      *eventstore.Layer
	eng    *Engine
	cfg    Config
	logBuf *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newStack(t *testing.T, cfg Config) *stack {
	master := make([]byte, eventstore.MasterKeySize)
	rand.Read(master)
	s := &stack{t: t, dir: t.TempDir(), key: tlogtest.NewKey(t, "example.com/alert-test"), master: master, cfg: cfg, logBuf: &syncBuf{}}
	s.open()
	t.Cleanup(s.close)
	return s
}

func (s *stack) open() {
	s.t.Helper()
	log, err := ledger.Open(s.dir, ledger.Options{Signer: s.key.Signer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		s.t.Fatal(err)
	}
	kr, _ := eventstore.NewKeyring(s.master)
	l, err := eventstore.Open(eventstore.Config{Log: log, Keyring: kr})
	if err != nil {
		s.t.Fatal(err)
	}
	s.log, s.l = log, l
	cfg := s.cfg
	cfg.Events = l
	cfg.Logger = slog.New(slog.NewTextHandler(s.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if s.eng, err = Start(cfg); err != nil {
		s.t.Fatal(err)
	}
}

func (s *stack) close() {
	if s.eng != nil {
		s.eng.Close()
		s.l.Close()
		s.log.Close()
		s.eng = nil
	}
}

func (s *stack) restart() { s.close(); s.open() }

func (s *stack) append(evs ...event.Event) []int64 {
	s.t.Helper()
	out, err := s.l.Append(context.Background(), "writer", evs)
	if err != nil {
		s.t.Fatal(err)
	}
	idx := make([]int64, len(out))
	for i, a := range out {
		idx[i] = a.Index
	}
	return idx
}

// alerts returns the alert events (fired and resolved) in index order.
func (s *stack) alerts(action string) []eventstore.Record {
	page, err := s.l.List(eventstore.Query{Action: action, Limit: 1000})
	if err != nil {
		s.t.Fatal(err)
	}
	recs := page.Records
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
	return recs
}

func (s *stack) waitAlerts(action string, n int) []eventstore.Record {
	s.t.Helper()
	var recs []eventstore.Record
	tlogtest.Eventually(s.t, 10*time.Second, action, func() (bool, string) {
		recs = s.alerts(action)
		return len(recs) >= n, fmt.Sprintf("%d of %d", len(recs), n)
	})
	return recs
}

// caughtUp waits until the engine evaluated everything published.
func (s *stack) caughtUp() {
	s.t.Helper()
	tlogtest.Eventually(s.t, 10*time.Second, "watermark", func() (bool, string) {
		cp, _ := s.log.Published()
		return s.eng.Watermark() >= cp.N, fmt.Sprintf("%d of %d", s.eng.Watermark(), cp.N)
	})
}

func denied(actor string) event.Event {
	return event.Event{Actor: &event.Actor{ID: actor}, Action: "secret.read", Outcome: "denied", Metadata: json.RawMessage(`{"namespace":"prod-eu"}`)}
}

const secretB64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func engineRules(t *testing.T, hookURL string) *Rules {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hook.secret"), []byte("whsec_"+secretB64+"\n"), 0o600)
	body := fmt.Sprintf(`
notifiers:
  - {name: hook, type: webhook, url: %q, secret_file: hook.secret}
rules:
  - name: burst
    match: {action: secret.read, outcome: denied}
    where: 'event.metadata.namespace.startsWith("prod-")'
    threshold: {count: 3, window: 5m}
    group_by: [actor.id]
    cooldown: 30m
    severity: high
    notify: [hook]
`, hookURL)
	p := filepath.Join(dir, "rules.yaml")
	os.WriteFile(p, []byte(body), 0o600)
	rs, err := LoadPath(p)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// verifier is an independent Standard Webhooks verifier, written from the
// spec (standardwebhooks.com): the signed content is id.timestamp.body,
// HMAC-SHA256 under the base64-decoded part of whsec_..., compared in
// constant time against each space-separated v1,<sig>; the timestamp must
// be within the tolerance of now; and a message id is accepted once
// (replays rejected).
type verifier struct {
	key       []byte
	tolerance time.Duration
	now       func() time.Time
	mu        sync.Mutex
	seen      map[string]bool
}

func newVerifier(secret string) *verifier {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	return &verifier{key: k, tolerance: 5 * time.Minute, now: time.Now, seen: map[string]bool{}}
}

func (v *verifier) verify(h http.Header, body []byte) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("missing headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp")
	}
	if d := v.now().Sub(time.Unix(sec, 0)); d > v.tolerance || d < -v.tolerance {
		return fmt.Errorf("stale timestamp (%s off)", d)
	}
	mac := hmac.New(sha256.New, v.key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	ok := false
	for _, s := range strings.Fields(sigs) {
		ver, b64, found := strings.Cut(s, ",")
		if !found || ver != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("no valid signature")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen[id] {
		return fmt.Errorf("replayed message %s", id)
	}
	v.seen[id] = true
	return nil
}

// hook is a webhook receiver that verifies every delivery.
type hook struct {
	v       *verifier
	mu      sync.Mutex
	got     []WebhookPayload
	ids     []string
	raw     []*http.Request
	bodies  [][]byte
	fail    int // answer 500 to this many deliveries first
	tries   int
	srv     *httptest.Server
	refused []error
}

func newHook(t *testing.T) *hook {
	h := &hook{v: newVerifier("whsec_" + secretB64)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.tries++
		h.ids = append(h.ids, r.Header.Get("webhook-id"))
		h.raw, h.bodies = append(h.raw, r), append(h.bodies, body)
		if h.fail > 0 {
			h.fail--
			w.WriteHeader(500)
			return
		}
		if err := h.v.verify(r.Header, body); err != nil {
			h.refused = append(h.refused, err)
			w.WriteHeader(401)
			return
		}
		var p WebhookPayload
		json.Unmarshal(body, &p)
		h.got = append(h.got, p)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) delivered() []WebhookPayload {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]WebhookPayload(nil), h.got...)
}

// TestEngineFiresAndDelivers: three denied reads by one actor are recorded
// as an indelible.alert.fired event (actor indelible, resource the rule,
// the contract's metadata) and delivered once, signed, to the webhook.
func TestEngineFiresAndDelivers(t *testing.T) {
	h := newHook(t)
	s := newStack(t, Config{Rules: engineRules(t, h.srv.URL)})
	ev := s.append(denied("alice"), denied("bob"), denied("alice"))
	s.append(event.Event{Actor: &event.Actor{ID: "alice"}, Action: "secret.read", Outcome: "denied", Metadata: json.RawMessage(`{"namespace":"dev"}`)})
	ev = append(ev, s.append(denied("alice"))...)
	recs := s.waitAlerts(ActionFired, 1)
	r := recs[0]
	if r.Event.Actor.ID != "indelible" || r.Event.Resource.Type != "rule" || r.Event.Resource.ID != "burst" || r.Event.SubmittedBy != "indelible" {
		t.Fatalf("fired event %+v", r.Event)
	}
	var md Metadata
	if err := json.Unmarshal(r.Event.Metadata, &md); err != nil {
		t.Fatal(err)
	}
	want := Metadata{Rule: "burst", Severity: "high", Group: "alice", Count: 3, Window: "5m", Evidence: []int64{ev[0], ev[2], ev[3]}, FirstIndex: ev[0], LastIndex: ev[3]}
	if fmt.Sprint(md) != fmt.Sprint(want) {
		t.Fatalf("metadata %+v, want %+v", md, want)
	}
	var got []WebhookPayload
	tlogtest.Eventually(t, 10*time.Second, "delivery", func() (bool, string) {
		got = h.delivered()
		return len(got) == 1, fmt.Sprint(got)
	})
	p := got[0]
	if p.Rule != "burst" || p.Group != "alice" || p.Count != 3 || p.AlertIndex != r.Index || p.Resolved || p.Window != "5m" || len(p.Evidence) != 3 {
		t.Fatalf("payload %+v", p)
	}
	sum := sha256.Sum256([]byte(s.log.Origin()))
	if id := h.ids[0]; id != fmt.Sprintf("%x-%d", sum[:8], r.Index) || id != WebhookID(s.log.Origin(), r.Index) {
		t.Fatalf("webhook-id %q", id)
	}
	// The outbox empties once delivered.
	tlogtest.Eventually(t, 5*time.Second, "outbox empty", func() (bool, string) {
		n := 0
		s.log.ScanExt([]byte{prefixAlert, kindOutbox}, []byte{prefixAlert, kindOutbox + 1}, false, func(k, v []byte) bool { n++; return true })
		return n == 0, fmt.Sprint(n)
	})
	// The independent verifier rejects a replay of the very delivery, and
	// a stale one.
	h.mu.Lock()
	hdr, body := h.raw[0].Header.Clone(), h.bodies[0]
	h.mu.Unlock()
	if err := h.v.verify(hdr, body); err == nil || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("replay: %v", err)
	}
	stale := hdr.Clone()
	old := time.Now().Add(-10 * time.Minute).Unix()
	stale.Set("webhook-id", "other-1")
	stale.Set("webhook-timestamp", strconv.FormatInt(old, 10))
	stale.Set("webhook-signature", Sign(h.v.key, "other-1", old, body))
	if err := h.v.verify(stale, body); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("stale: %v", err)
	}
	tampered := hdr.Clone()
	tampered.Set("webhook-id", "other-2")
	if err := h.v.verify(tampered, body); err == nil || !strings.Contains(err.Error(), "no valid signature") {
		t.Fatalf("tampered: %v", err)
	}
	if len(h.refused) != 0 {
		t.Fatalf("refused deliveries: %v", h.refused)
	}
	// No second firing in the cooldown.
	s.append(denied("alice"), denied("alice"), denied("alice"))
	s.caughtUp()
	if n := len(s.alerts(ActionFired)); n != 1 {
		t.Fatalf("%d firings in the cooldown", n)
	}
	// Nothing secret in the log lines; nothing plaintext in the files.
	if out := s.logBuf.String(); strings.Contains(out, secretB64) {
		t.Fatalf("the secret is logged:\n%s", out)
	}
	s.close()
	checkNoPlaintext(t, s.dir, "alice")
}

// checkNoPlaintext fails if any file under dir holds needle.
func checkNoPlaintext(t *testing.T, dir, needle string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(needle)) {
			t.Errorf("%s holds %q in plaintext", p, needle)
		}
		return nil
	})
}

// TestEngineRestartMidWindow: a restart between the second and third
// event of a window neither loses the first two nor, after the firing,
// repeats it.
func TestEngineRestartMidWindow(t *testing.T) {
	h := newHook(t)
	s := newStack(t, Config{Rules: engineRules(t, h.srv.URL)})
	s.append(denied("alice"), denied("alice"))
	s.caughtUp()
	s.restart()
	s.append(denied("alice"))
	s.waitAlerts(ActionFired, 1)
	s.restart()
	s.append(denied("carol"))
	s.caughtUp()
	s.restart()
	s.caughtUp()
	if n := len(s.alerts(ActionFired)); n != 1 {
		t.Fatalf("%d firings, want 1", n)
	}
	tlogtest.Eventually(t, 10*time.Second, "one delivery", func() (bool, string) {
		return len(h.delivered()) == 1, fmt.Sprint(len(h.delivered()))
	})
}

// TestEngineCrashBeforeSnapshot: events evaluated but not yet in a
// snapshot are evaluated again after a restart from the stored state, with
// the same result (the snapshot interval is long here, so the restart
// replays them).
func TestEngineReplaysAfterSnapshot(t *testing.T) {
	h := newHook(t)
	s := newStack(t, Config{Rules: engineRules(t, h.srv.URL), SnapshotEvery: time.Hour})
	s.append(denied("alice"), denied("alice"))
	s.caughtUp()
	// Simulate a crash: drop the engine without its last snapshot.
	s.eng.crashed.Store(true)
	s.close()
	s.open()
	s.append(denied("alice"))
	s.waitAlerts(ActionFired, 1)
	s.caughtUp()
	if n := len(s.alerts(ActionFired)); n != 1 {
		t.Fatalf("%d firings", n)
	}
}

// TestDeliveryRetry: failures are retried with backoff, with the same
// webhook-id, until delivered.
func TestDeliveryRetry(t *testing.T) {
	h := newHook(t)
	h.fail = 3
	s := newStack(t, Config{Rules: engineRules(t, h.srv.URL), RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	s.append(denied("alice"), denied("alice"), denied("alice"))
	tlogtest.Eventually(t, 10*time.Second, "delivery", func() (bool, string) {
		return len(h.delivered()) == 1, fmt.Sprint(len(h.delivered()))
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tries != 4 {
		t.Fatalf("%d tries", h.tries)
	}
	// The metrics count per rule and notifier.
	m := s.eng.m
	tlogtest.Eventually(t, 5*time.Second, "metrics", func() (bool, string) {
		f := testutil.ToFloat64(m.deliveries.WithLabelValues("burst", "hook", "failed"))
		d := testutil.ToFloat64(m.deliveries.WithLabelValues("burst", "hook", "delivered"))
		return f == 3 && d == 1, fmt.Sprint(f, d)
	})
	if n := testutil.ToFloat64(m.firings.WithLabelValues("burst", "fired")); n != 1 {
		t.Fatalf("firings metric %v", n)
	}
	for _, id := range h.ids {
		if id != h.ids[0] {
			t.Fatalf("webhook-ids %q", h.ids)
		}
	}
}

// TestUndelivered: past the retry window, indelible.alert.undelivered is
// recorded and the outbox entry goes.
func TestUndelivered(t *testing.T) {
	h := newHook(t)
	h.fail = 1 << 30
	s := newStack(t, Config{Rules: engineRules(t, h.srv.URL), RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond, RetryFor: 200 * time.Millisecond})
	s.append(denied("alice"), denied("alice"), denied("alice"))
	fired := s.waitAlerts(ActionFired, 1)
	recs := s.waitAlerts(ActionUndelivered, 1)
	var md struct {
		AlertIndex int64  `json:"alert_index"`
		Notifier   string `json:"notifier"`
		Attempts   int    `json:"attempts"`
		Error      string `json:"error"`
	}
	json.Unmarshal(recs[0].Event.Metadata, &md)
	if md.AlertIndex != fired[0].Index || md.Notifier != "hook" || md.Attempts < 2 || md.Error != "HTTP 500" || recs[0].Event.Resource.ID != "burst" {
		t.Fatalf("undelivered %+v %s", md, recs[0].EventBytes)
	}
	s.restart()
	time.Sleep(200 * time.Millisecond)
	if n := len(s.alerts(ActionUndelivered)); n != 1 {
		t.Fatalf("%d undelivered after restart", n)
	}
}

// TestEngineAbsent: an absent rule fires within for + tick on a silent
// source and resolves on the next matching event; both are events.
func TestEngineAbsent(t *testing.T) {
	rs, err := Parse("rules.yaml", []byte(`
rules:
  - name: silent
    kind: absent
    match: {source: payments}
    for: 300ms
`))
	if err != nil {
		t.Fatal(err)
	}
	// The engine's silence starts when it starts, inside newStack: the
	// lower bound below is measured from before it (taken after, a slow
	// set-up under load made the rule look early).
	start := time.Now()
	s := newStack(t, Config{Rules: rs, Tick: 20 * time.Millisecond})
	fired := s.waitAlerts(ActionFired, 1)
	if d := time.Since(start); d > 300*time.Millisecond+5*time.Second {
		t.Fatalf("fired after %s", d)
	}
	if d := fired[0].Event.ReceivedAt.Sub(start); d < 300*time.Millisecond {
		t.Fatalf("fired after only %s", d)
	}
	i := s.append(event.Event{Action: "pay", Source: "payments"})
	res := s.waitAlerts(ActionResolved, 1)
	var md Metadata
	json.Unmarshal(res[0].Event.Metadata, &md)
	if md.Rule != "silent" || len(md.Evidence) != 1 || md.Evidence[0] != i[0] {
		t.Fatalf("resolve %+v", md)
	}
	// A restart while resolved and active keeps it quiet.
	s.append(event.Event{Action: "pay", Source: "payments"})
	s.restart()
	s.caughtUp()
	if n := len(s.alerts(ActionResolved)); n != 1 {
		t.Fatalf("%d resolves", n)
	}
}

// newBenchStack is newStack for benchmarks; engine false leaves the engine
// out.
func newBenchStack(b *testing.B, rs *Rules, engine bool) *stack {
	master := make([]byte, eventstore.MasterKeySize)
	rand.Read(master)
	s := &stack{dir: b.TempDir(), key: tlogtest.NewKey(b, "example.com/alert-bench"), master: master}
	log, err := ledger.Open(s.dir, ledger.Options{Signer: s.key.Signer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	kr, _ := eventstore.NewKeyring(master)
	l, err := eventstore.Open(eventstore.Config{Log: log, Keyring: kr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	s.log, s.l = log, l
	if engine {
		if s.eng, err = Start(Config{Events: l, Rules: rs, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		if s.eng != nil {
			s.eng.Close()
		}
		l.Close()
		log.Close()
	})
	return s
}

// TestAbsentAlertmanagerAndSlack: an absent rule's firing goes to
// Alertmanager with no endsAt and is re-sent while it fires; its resolve is
// sent with endsAt; Slack gets a text naming the rule and the console link.
func TestAbsentAlertmanagerAndSlack(t *testing.T) {
	var mu sync.Mutex
	var am []amAlert
	var slack []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/api/v2/alerts":
			var as []amAlert
			if err := json.Unmarshal(b, &as); err != nil || len(as) != 1 {
				t.Errorf("alertmanager body %s", b)
			}
			am = append(am, as...)
		case "/slack":
			var m map[string]string
			json.Unmarshal(b, &m)
			slack = append(slack, m["text"])
		default:
			t.Errorf("path %s", r.URL.Path)
		}
	}))
	defer srv.Close()
	rs, err := Parse("rules.yaml", []byte(fmt.Sprintf(`
notifiers:
  - {name: am, type: alertmanager, url: %q}
  - {name: chat, type: slack, url: %q}
rules:
  - name: silent
    kind: absent
    match: {source: payments}
    for: 200ms
    severity: critical
    notify: [am, chat]
`, srv.URL+"/", srv.URL+"/slack")))
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, Config{Rules: rs, Tick: 20 * time.Millisecond, ResendEvery: 100 * time.Millisecond, ConsoleURL: "https://console.example"})
	fired := s.waitAlerts(ActionFired, 1)
	tlogtest.Eventually(t, 10*time.Second, "re-sends", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(am) >= 3, fmt.Sprint(len(am))
	})
	s.append(event.Event{Action: "pay", Source: "payments"})
	res := s.waitAlerts(ActionResolved, 1)
	tlogtest.Eventually(t, 10*time.Second, "resolve sent", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(am) > 0 && am[len(am)-1].EndsAt != "" && len(slack) == 2, fmt.Sprint(am, slack)
	})
	mu.Lock()
	defer mu.Unlock()
	for _, a := range am[:len(am)-1] {
		if a.EndsAt != "" || a.Labels["alertname"] != "silent" || a.Labels["severity"] != "critical" || a.Annotations["alert_index"] != strconv.FormatInt(fired[0].Index, 10) {
			t.Fatalf("firing sent as %+v", a)
		}
	}
	last := am[len(am)-1]
	if last.Annotations["alert_index"] != strconv.FormatInt(res[0].Index, 10) || last.Labels["alertname"] != "silent" {
		t.Fatalf("resolve sent as %+v", last)
	}
	if !strings.Contains(slack[0], "rule silent (critical)") || !strings.Contains(slack[0], "https://console.example/#/events/"+strconv.FormatInt(fired[0].Index, 10)) ||
		!strings.Contains(slack[1], "resolved") {
		t.Fatalf("slack %q", slack)
	}
}
