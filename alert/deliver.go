package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/ledger"
)

// delivery is one firing still to deliver to one notifier: an outbox entry
// (or, resend, a one-shot re-send of an absent rule still firing).
type delivery struct {
	key      string // the outbox key
	index    int64  // the firing event's index
	notifier string
	resend   bool
	attempts int
	next     time.Time // the next attempt, not before
	busy     bool      // an attempt is running
	lastErr  string
	rec      *firingRecord // read once
}

// firingRecord is a firing as read back from the log.
type firingRecord struct {
	Index    int64
	Resolved bool
	At       time.Time // the firing event's received_at
	MD       Metadata
}

func (e *Engine) enqueue(i int64, notifier string, next time.Time) {
	k := string(outboxKey(i, notifier))
	e.dmu.Lock()
	if e.pending[k] == nil {
		e.pending[k] = &delivery{key: k, index: i, notifier: notifier, next: next}
		e.m.pending.Inc()
	}
	e.dmu.Unlock()
	e.poke()
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// loadOutbox queues every outbox entry: after a restart they are retried
// at once, with the same webhook-id.
func (e *Engine) loadOutbox() error {
	lo, hi := []byte{prefixAlert, kindOutbox}, []byte{prefixAlert, kindOutbox + 1}
	var bad error
	err := e.log.ScanExt(lo, hi, false, func(k, _ []byte) bool {
		if len(k) < 11 {
			bad = fmt.Errorf("alert: outbox key %x", k)
			return false
		}
		i := int64(binary.BigEndian.Uint64(k[2:10]))
		d := &delivery{key: string(k), index: i, notifier: string(k[10:])}
		e.pending[d.key] = d
		e.m.pending.Inc()
		return true
	})
	if err == nil {
		err = bad
	}
	return err
}

// queueResends queues a one-shot re-send, to each Alertmanager notifier of
// its rule, of every absent firing still active: Alertmanager resolves an
// alert it has not heard of for resolve_timeout.
func (e *Engine) queueResends() {
	active := e.ev.firingAbsent()
	if len(active) == 0 {
		return
	}
	rs := e.rules.Load()
	e.dmu.Lock()
	for i, rule := range active {
		for _, r := range rs.Rules {
			if r.Name != rule {
				continue
			}
			for _, nt := range r.Notify {
				if n := rs.Notifier(nt); n != nil && n.Type == TypeAlertmanager {
					e.resend = append(e.resend, &delivery{key: string(outboxKey(i, nt)), index: i, notifier: nt, resend: true})
				}
			}
		}
	}
	e.dmu.Unlock()
	e.poke()
}

// deliverLoop starts an attempt for each due delivery, one at a time per
// delivery, until the engine stops.
func (e *Engine) deliverLoop() {
	defer e.done.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-e.stop
		cancel()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := e.cfg.Now()
		wait := time.Second
		e.dmu.Lock()
		for _, d := range e.pending {
			if d.busy {
				continue
			}
			if !now.Before(d.next) {
				d.busy = true
				e.done.Add(1)
				go e.attempt(ctx, d)
			} else if w := d.next.Sub(now); w < wait {
				wait = w
			}
		}
		resend := e.resend
		e.resend = nil
		e.dmu.Unlock()
		for _, d := range resend {
			e.done.Add(1)
			go e.attempt(ctx, d)
		}
		timer.Reset(wait)
		select {
		case <-e.stop:
			return
		case <-e.wake:
		case <-timer.C:
		}
	}
}

// attempt tries one delivery once.
func (e *Engine) attempt(ctx context.Context, d *delivery) {
	defer e.done.Done()
	err := e.tryDeliver(ctx, d)
	if d.resend {
		if err != nil {
			e.cfg.Logger.Warn("alert: re-send failed", "notifier", d.notifier, "index", d.index, "err", err)
		}
		return
	}
	now := e.cfg.Now()
	if err == nil {
		if werr := e.log.WriteExt(func(w ledger.Writer) error { return w.Delete([]byte(d.key)) }); werr != nil {
			// Delivered, but the outbox still holds it: delivered again
			// later (at least once).
			e.cfg.Logger.Error("alert: dropping a delivered outbox entry", "err", werr)
		}
		e.m.delivery(d, "delivered")
		e.done1(d)
		return
	}
	if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
		return // stopping: the outbox keeps it
	}
	d.attempts++
	d.lastErr = err.Error()
	e.m.delivery(d, "failed")
	e.cfg.Logger.Warn("alert: delivery failed; will retry", "notifier", d.notifier, "index", d.index, "attempt", d.attempts, "err", err)
	if d.rec != nil && now.Sub(d.rec.At) >= e.cfg.RetryFor || errors.Is(err, errUndeliverable) {
		e.giveUp(d)
		return
	}
	backoff := min(e.cfg.RetryMin<<min(d.attempts-1, 30), e.cfg.RetryMax)
	e.dmu.Lock()
	d.next, d.busy = now.Add(backoff), false
	e.dmu.Unlock()
	e.poke()
}

// done1 drops a finished delivery from the pending set.
func (e *Engine) done1(d *delivery) {
	e.dmu.Lock()
	if e.pending[d.key] == d {
		delete(e.pending, d.key)
		e.m.pending.Dec()
	}
	e.dmu.Unlock()
}

// errUndeliverable is a delivery that can never succeed (its notifier is
// gone from the rules, or its firing event was erased).
var errUndeliverable = errors.New("undeliverable")

// giveUp records indelible.alert.undelivered, dropping the outbox entry in
// the same batch.
func (e *Engine) giveUp(d *delivery) {
	md, _ := json.Marshal(struct {
		AlertIndex int64  `json:"alert_index"`
		Notifier   string `json:"notifier"`
		Attempts   int    `json:"attempts"`
		Error      string `json:"error"`
	}{d.index, d.notifier, d.attempts, d.lastErr})
	rule := ""
	if d.rec != nil {
		rule = d.rec.MD.Rule
	}
	ev := event.Event{
		Actor:    &event.Actor{ID: eventstore.ServerActor},
		Action:   ActionUndelivered,
		Resource: &event.Resource{Type: "rule", ID: rule},
		Outcome:  event.OutcomeFailure,
		Source:   eventstore.ServerActor,
		Metadata: md,
	}
	if rule == "" {
		ev.Resource = nil
	}
	if _, err := e.appendServer([]event.Event{ev}, func(_ int64, w ledger.Writer) error { return w.Delete([]byte(d.key)) }); err != nil {
		e.cfg.Logger.Error("alert: recording an undelivered alert; retrying", "err", err)
		e.dmu.Lock()
		d.next, d.busy = e.cfg.Now().Add(e.cfg.RetryMax), false
		e.dmu.Unlock()
		return
	}
	e.cfg.Logger.Error("alert: undelivered, gave up", "notifier", d.notifier, "index", d.index, "attempts", d.attempts)
	e.m.delivery(d, "undelivered")
	e.done1(d)
}

// tryDeliver reads the firing (once) and sends it to the notifier.
func (e *Engine) tryDeliver(ctx context.Context, d *delivery) error {
	if d.rec == nil {
		rec, err := e.l.Get(d.index)
		if errors.Is(err, eventstore.ErrGone) || errors.Is(err, eventstore.ErrNotEvent) {
			return fmt.Errorf("%w: the firing event %d is gone: %v", errUndeliverable, d.index, err)
		}
		if err != nil {
			return err
		}
		fr := &firingRecord{Index: d.index, Resolved: rec.Event.Action == ActionResolved, At: rec.Event.ReceivedAt}
		if err := json.Unmarshal(rec.Event.Metadata, &fr.MD); err != nil {
			return fmt.Errorf("%w: the firing event %d has bad metadata", errUndeliverable, d.index)
		}
		d.rec = fr
	}
	nt := e.rules.Load().Notifier(d.notifier)
	if nt == nil {
		return fmt.Errorf("%w: notifier %q is no longer in the rules", errUndeliverable, d.notifier)
	}
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	return e.send(ctx, nt, d.rec)
}

// WebhookPayload is the JSON body of a webhook delivery (DESIGN section 11).
type WebhookPayload struct {
	Rule       string  `json:"rule"`
	Severity   string  `json:"severity"`
	Group      string  `json:"group"`
	Count      int     `json:"count"`
	Window     string  `json:"window"`
	Evidence   []int64 `json:"evidence"`
	AlertIndex int64   `json:"alert_index"`
	FiredAt    string  `json:"fired_at"`
	Resolved   bool    `json:"resolved"`
}

// WebhookID is the webhook-id of the firing at index i in the log of that
// origin: stable across retries and restarts.
func WebhookID(origin string, i int64) string {
	sum := sha256.Sum256([]byte(origin))
	return fmt.Sprintf("%x-%d", sum[:8], i)
}

// Sign returns the webhook-signature header value of a Standard Webhooks
// delivery: v1,<base64 HMAC-SHA256(key, id.timestamp.body)>.
func Sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, ts)
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (e *Engine) link(i int64) string {
	if e.cfg.ConsoleURL == "" {
		return ""
	}
	return strings.TrimSuffix(e.cfg.ConsoleURL, "/") + "/#/events/" + strconv.FormatInt(i, 10)
}

func (e *Engine) send(ctx context.Context, nt *Notifier, fr *firingRecord) error {
	md := fr.MD
	var body []byte
	target := nt.URL
	hdr := http.Header{"Content-Type": {"application/json"}}
	switch nt.Type {
	case TypeWebhook:
		body, _ = json.Marshal(WebhookPayload{Rule: md.Rule, Severity: md.Severity, Group: md.Group, Count: md.Count,
			Window: md.Window, Evidence: md.Evidence, AlertIndex: fr.Index, FiredAt: fr.At.UTC().Format(time.RFC3339Nano), Resolved: fr.Resolved})
		id := e.idPfx + "-" + strconv.FormatInt(fr.Index, 10)
		ts := e.cfg.Now().Unix()
		hdr.Set("webhook-id", id)
		hdr.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		hdr.Set("webhook-signature", Sign(nt.secret, id, ts, body))
	case TypeAlertmanager:
		target = strings.TrimSuffix(nt.URL, "/") + "/api/v2/alerts"
		body, _ = json.Marshal([]amAlert{e.amAlert(fr)})
	case TypeSlack:
		verb := "fired"
		if fr.Resolved {
			verb = "resolved"
		}
		text := fmt.Sprintf("Indelible alert %s: rule %s (%s)", verb, md.Rule, md.Severity)
		if md.Group != "" {
			text += ", group " + md.Group
		}
		if !fr.Resolved && md.Count > 0 {
			text += fmt.Sprintf(", %d events in %s", md.Count, md.Window)
		}
		text += fmt.Sprintf(", alert event %d", fr.Index)
		if l := e.link(fr.Index); l != "" {
			text += ": " + l
		}
		body, _ = json.Marshal(map[string]string{"text": text})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building the request: %v", scrub(err))
	}
	req.Header = hdr
	resp, err := e.cfg.Client.Do(req)
	if err != nil {
		return scrub(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// scrub drops the URL from an HTTP client error: a notifier's URL may be a
// credential (Slack's are), and errors are logged.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if errors.Is(ue.Err, context.Canceled) {
			return context.Canceled
		}
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// amAlert is one alert of Alertmanager's POST /api/v2/alerts.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// amAlert is the Alertmanager form of a firing. A threshold firing ends
// after the rule's cooldown (or window, the longer); an absent rule's has no
// end until it resolves (re-sent while firing), its resolve ends it.
func (e *Engine) amAlert(fr *firingRecord) amAlert {
	md := fr.MD
	labels := map[string]string{"alertname": md.Rule, "severity": md.Severity, "origin": e.origin}
	if md.Group != "" {
		labels["group"] = md.Group
	}
	ev := make([]string, len(md.Evidence))
	for i, x := range md.Evidence {
		ev[i] = strconv.FormatInt(x, 10)
	}
	summary := fmt.Sprintf("%s: %d events in %s", md.Rule, md.Count, md.Window)
	a := amAlert{Labels: labels, StartsAt: fr.At.UTC().Format(time.RFC3339Nano), GeneratorURL: e.link(fr.Index),
		Annotations: map[string]string{"summary": summary, "evidence": strings.Join(ev, ","), "alert_index": strconv.FormatInt(fr.Index, 10)}}
	var r *Rule
	for _, x := range e.rules.Load().Rules {
		if x.Name == md.Rule {
			r = x
		}
	}
	switch {
	case fr.Resolved:
		a.Annotations["summary"] = fmt.Sprintf("%s: events again after %s of silence", md.Rule, md.Window)
		a.EndsAt = a.StartsAt
		// The firing it resolves started earlier; Alertmanager matches on
		// labels, so startsAt is the resolve's time too.
	case r != nil && r.Kind == KindAbsent:
		a.Annotations["summary"] = fmt.Sprintf("%s: no matching event for %s", md.Rule, md.Window)
	default:
		d := 5 * time.Minute
		if r != nil {
			d = max(r.Cooldown, r.Window)
		}
		a.EndsAt = fr.At.Add(d).UTC().Format(time.RFC3339Nano)
	}
	return a
}
