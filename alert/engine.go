package alert

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/ledger"
)

// Actions of the events the engine records (DESIGN section 11).
const (
	ActionFired       = "indelible.alert.fired"
	ActionResolved    = "indelible.alert.resolved"
	ActionUndelivered = "indelible.alert.undelivered"
	// actionPrefix starts every action above: such events are never
	// evaluated, so no rule can fire on a firing (and loop).
	actionPrefix = "indelible.alert."
)

// The engine's keys in the ledger's extension namespace (docs/events.md):
//
//	'A' 'w'                    sealed: the watermark and the rules' definitions (state.go)
//	'A' 'g' rule 0x00 group    sealed: one group's state (state.go)
//	'A' 's'                    sealed state of earlier versions, one blob: migrated on Start
//	'A' 'o' i(8) notifier      outbox: the firing at index i, not yet delivered to notifier (value empty)
const (
	prefixAlert = 'A'
	kindState   = 's'
	kindOutbox  = 'o'
	stateLabel  = "alert state"
)

// legacyStateKey is where earlier versions kept the whole state.
func legacyStateKey() []byte { return []byte{prefixAlert, kindState} }

func outboxKey(i int64, notifier string) []byte {
	k := make([]byte, 0, 10+len(notifier))
	k = append(k, prefixAlert, kindOutbox)
	k = binary.BigEndian.AppendUint64(k, uint64(i))
	return append(k, notifier...)
}

// Engine defaults.
const (
	DefaultTick          = time.Second // absent rules are checked at least this often (the contract: 5 s)
	DefaultSnapshotEvery = time.Second
	DefaultRetryMin      = time.Second
	DefaultRetryMax      = 60 * time.Second
	DefaultRetryFor      = 24 * time.Hour
	DefaultResendEvery   = time.Minute // an absent rule still firing is re-sent to Alertmanager
	deliveryTimeout      = 10 * time.Second
	maxEvaluatedPerPass  = 4096
)

// Config configures Start.
type Config struct {
	Events *eventstore.Layer // required
	Rules  *Rules            // required
	// ConsoleURL is the console's base URL (https://host:port/), for the
	// links in deliveries; "" leaves them out.
	ConsoleURL string
	Now        func() time.Time // default time.Now
	Logger     *slog.Logger     // default slog.Default()
	Client     *http.Client     // default: a client with a 10 s timeout
	Metrics    *Metrics         // default: NewMetrics()
	Lateness   time.Duration    // default DefaultLateness

	Tick, SnapshotEvery, ResendEvery time.Duration // defaults above
	RetryMin, RetryMax, RetryFor     time.Duration // delivery backoff; defaults above
}

// Engine evaluates the rules over every committed event in index order,
// behind a watermark, off the write path; records each firing as an event
// in the same batch as the state that produced it and its outbox entries;
// and delivers firings from the outbox.
//
// Goroutines: the follower (follow) owns the evaluator, the watermark and
// the snapshot clock outright; the deliverer (deliverLoop) and the attempts
// it starts share the pending deliveries under dmu. Reload hands new rules
// to the follower over a channel; notifiers are read through an atomic
// pointer. Close stops the follower (which writes a last snapshot) and the
// deliverer, and waits for both.
type Engine struct {
	cfg    Config
	l      *eventstore.Layer
	log    *ledger.Log
	origin string
	idPfx  string // the webhook-id prefix: 16 hex digits of SHA-256(origin)
	m      *Metrics
	rules  atomic.Pointer[Rules]
	feed   *feed

	// Owned by the follower.
	ev       *Evaluator
	next     int64 // the next index to evaluate
	lastSnap time.Time
	dirty    bool
	counters map[string]int64 // evaluator counters already exported
	lastSend time.Time
	// uncommitted: firings were evaluated but not committed (stopping), so
	// the in-memory state must not be stored.
	uncommitted bool

	reload chan reloadReq
	stop   chan struct{}
	done   sync.WaitGroup
	closed atomic.Bool
	// crashed makes Close skip the last snapshot, as a crash would (tests).
	crashed atomic.Bool

	// dmu guards pending and resend.
	dmu     sync.Mutex
	pending map[string]*delivery // by outbox key
	resend  []*delivery          // one-shot re-sends of absent firings
	wake    chan struct{}
}

type reloadReq struct {
	rs   *Rules
	done chan struct{}
}

// persisted is the sealed state ('A' 's').
type persisted struct {
	Next  int64           `json:"next"`
	Rules json.RawMessage `json:"rules"`
}

// Start restores the engine's state from the store (or, on first start,
// starts after the events already published) and starts it.
func Start(cfg Config) (*Engine, error) {
	if cfg.Events == nil || cfg.Rules == nil {
		return nil, errors.New("alert: Config.Events and Config.Rules are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: deliveryTimeout}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Tick, DefaultTick)
	def(&cfg.SnapshotEvery, DefaultSnapshotEvery)
	def(&cfg.ResendEvery, DefaultResendEvery)
	def(&cfg.RetryMin, DefaultRetryMin)
	def(&cfg.RetryMax, DefaultRetryMax)
	def(&cfg.RetryFor, DefaultRetryFor)
	e := &Engine{
		cfg: cfg, l: cfg.Events, log: cfg.Events.Log(), m: cfg.Metrics,
		counters: map[string]int64{},
		reload:   make(chan reloadReq), stop: make(chan struct{}),
		pending: map[string]*delivery{}, wake: make(chan struct{}, 1),
		feed: newFeed(),
	}
	e.origin = e.log.Origin()
	sum := sha256.Sum256([]byte(e.origin))
	e.idPfx = hex.EncodeToString(sum[:8])
	e.rules.Store(cfg.Rules)
	now := cfg.Now()
	e.ev = NewEvaluator(cfg.Rules, cfg.Lateness, now)

	if err := e.restore(now); err != nil {
		return nil, err
	}
	if err := e.loadOutbox(); err != nil {
		return nil, err
	}
	e.l.OnCommit(e.feed.add)
	e.done.Add(2)
	go e.follow()
	go e.deliverLoop()
	return e, nil
}

// Close stops the engine: the follower writes its last snapshot, pending
// deliveries stay in the outbox for the next start. The events layer and
// log are closed by their owner, after.
func (e *Engine) Close() error {
	if !e.closed.Swap(true) {
		e.l.OnCommit(nil)
		close(e.stop)
	}
	e.done.Wait()
	return nil
}

// Reload replaces the rules (already validated): rules whose definition is
// unchanged keep their state. It returns once the follower uses them.
func (e *Engine) Reload(rs *Rules) {
	r := reloadReq{rs: rs, done: make(chan struct{})}
	select {
	case e.reload <- r:
		<-r.done
	case <-e.stop:
	}
}

// Rules returns the rules in use.
func (e *Engine) Rules() *Rules { return e.rules.Load() }

// Watermark returns the next index the follower will evaluate (for tests
// and metrics; racy by nature).
func (e *Engine) Watermark() int64 { return e.m.next.Load() }

// follow is the follower goroutine.
func (e *Engine) follow() {
	defer e.done.Done()
	defer func() {
		// Not after firings that could not be committed: the next start
		// evaluates their events again from the last stored state.
		if e.dirty && !e.crashed.Load() && !e.uncommitted {
			if err := e.snapshot(); err != nil {
				e.cfg.Logger.Error("alert: last snapshot", "err", err)
			}
		}
	}()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-e.stop:
			return
		case r := <-e.reload:
			e.ev.SetRules(r.rs, e.cfg.Now())
			e.rules.Store(r.rs)
			e.dirty = true
			close(r.done)
			continue
		default:
		}
		if !e.pass() {
			return
		}
		select {
		case <-e.stop:
			return
		case <-poll.C:
		case r := <-e.reload:
			e.ev.SetRules(r.rs, e.cfg.Now())
			e.rules.Store(r.rs)
			e.dirty = true
			close(r.done)
		}
	}
}

// pass evaluates what was published since the watermark (up to a bound),
// ticks the absent rules if it caught up, and snapshots if due. It returns
// false when the engine is stopping.
func (e *Engine) pass() bool {
	cp, _ := e.log.Published()
	n := cp.N
	// The pass's firings commit together at its end, with the state as of
	// its last event: one batch (and one copy of the state) per pass.
	var fired []Firing
	var in Input // one per pass, not per event
	for k := 0; e.next < n && k < maxEvaluatedPerPass; k++ {
		i := e.next
		rec, err := e.record(i, n)
		switch {
		case err == nil:
		case errors.Is(err, eventstore.ErrNotEvent), errors.Is(err, eventstore.ErrGone):
			e.next, e.dirty = i+1, true // nothing to evaluate
			continue
		default:
			e.cfg.Logger.Error("alert: reading an event to evaluate; retrying", "index", i, "err", err)
			if len(fired) > 0 {
				if !e.commit(fired) {
					return false
				}
				fired = nil
			}
			return e.sleep(e.cfg.Tick)
		}
		if !strings.HasPrefix(rec.Event.Action, actionPrefix) {
			in = Input{Index: i, Event: rec.Event, Bytes: rec.EventBytes}
			fired = append(fired, e.ev.Evaluate(&in)...)
		}
		e.next, e.dirty = i+1, true
	}
	if len(fired) > 0 {
		ok := e.commit(fired)
		fired = nil
		if !ok {
			return false
		}
	}
	e.m.next.Store(e.next)
	e.m.lag.Set(float64(n - e.next))
	e.exportCounters()
	now := e.cfg.Now()
	if e.next >= n {
		if fs := e.ev.Tick(now); len(fs) > 0 && !e.commit(fs) {
			return false
		}
		if now.Sub(e.lastSend) >= e.cfg.ResendEvery {
			e.lastSend = now
			e.queueResends()
		}
	}
	if e.dirty && now.Sub(e.lastSnap) >= e.cfg.SnapshotEvery {
		if err := e.snapshot(); err != nil {
			e.cfg.Logger.Error("alert: snapshot", "err", err)
		}
	}
	return true
}

// sleep waits d or until stop; false means stopping.
func (e *Engine) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.stop:
		return false
	case <-t.C:
		return true
	}
}

// restore loads the stored state: the watermark and the groups; or
// migrates the single blob of earlier versions; or, on first start, starts
// after the events already published.
func (e *Engine) restore(now time.Time) error {
	open := func(what string, sealed []byte) ([]byte, error) {
		b, err := e.l.OpenState(stateLabel, sealed)
		if err != nil {
			return nil, fmt.Errorf("alert: opening the stored %s: %w", what, err)
		}
		return b, nil
	}
	sealed, err := e.log.GetExt(watermarkKey())
	switch {
	case err == nil:
		b, err := open("watermark", sealed)
		if err != nil {
			return err
		}
		var w watermark
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("alert: decoding the stored watermark: %w", err)
		}
		lo, hi := []byte{prefixAlert, kindGroup}, []byte{prefixAlert, kindGroup + 1}
		err = e.ev.restoreGroups(w.Defs, func(f func(k, v []byte) error) error {
			var ferr error
			err := e.log.ScanExt(lo, hi, false, func(k, v []byte) bool {
				b, err := open("rule state", v)
				if err == nil {
					err = f(k[2:], b)
				}
				ferr = err
				return err == nil
			})
			if err == nil {
				err = ferr
			}
			return err
		}, now)
		if err != nil {
			return err
		}
		e.next = w.Next
		return nil
	case errors.Is(err, ledger.ErrNotFound):
	default:
		return fmt.Errorf("alert: reading the stored state: %w", err)
	}
	sealed, err = e.log.GetExt(legacyStateKey())
	switch {
	case err == nil:
		// Earlier versions' blob: load it, then store it as groups and
		// drop it, in one batch.
		b, err := open("state", sealed)
		if err != nil {
			return err
		}
		var p persisted
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("alert: decoding the stored state: %w", err)
		}
		if err := e.ev.Restore(p.Rules, now); err != nil {
			return err
		}
		e.ev.changeAll()
		e.next = p.Next
		if err := e.snapshot(legacyStateKey()); err != nil {
			return fmt.Errorf("alert: migrating the stored state: %w", err)
		}
		e.cfg.Logger.Info("alert: migrated the stored state to one key per rule group", "next", e.next)
		return nil
	case errors.Is(err, ledger.ErrNotFound):
		// First start: rules apply to what is appended from now on.
		cp, _ := e.log.Published()
		e.next = cp.N
		return e.snapshot()
	default:
		return fmt.Errorf("alert: reading the stored state: %w", err)
	}
}

// stateOps are the writes that store the state as of now: the watermark
// and the groups changed since the last write.
func (e *Engine) stateOps() ([]stateOp, error) {
	seal := func(b []byte) ([]byte, error) { return e.l.SealState(stateLabel, b) }
	blind := func(name []byte) []byte { return e.l.StateName(stateLabel, name) }
	ops, err := e.ev.changes(seal, blind)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(watermark{Next: e.next, Defs: e.ev.defs()})
	if err != nil {
		return nil, err
	}
	sealed, err := seal(b)
	if err != nil {
		return nil, err
	}
	return append(ops, stateOp{key: watermarkKey(), value: sealed}), nil
}

// snapshot writes the state (with fsync) on its own, deleting the keys
// drop names in the same batch.
func (e *Engine) snapshot(drop ...[]byte) error {
	ops, err := e.stateOps()
	if err != nil {
		return err
	}
	for _, k := range drop {
		ops = append(ops, stateOp{key: k})
	}
	if err := e.log.WriteExt(func(w ledger.Writer) error { return applyOps(w, ops) }); err != nil {
		return err
	}
	e.ev.clean()
	e.lastSnap, e.dirty = e.cfg.Now(), false
	return nil
}

// commit records the firings: their events, the state that produced them
// and their outbox entries commit in one batch, so a restart neither loses
// nor repeats a firing (it resumes from this state, after the events that
// fired). Only then are the deliveries queued. It retries until the append
// succeeds; false means stopping (the firings are then recomputed from the
// last snapshot at the next start).
func (e *Engine) commit(fs []Firing) bool {
	rs := e.rules.Load()
	evs := make([]event.Event, len(fs))
	notify := make([][]string, len(fs))
	for k, f := range fs {
		evs[k] = firingEvent(f)
		for _, r := range rs.Rules {
			if r.Name == f.Rule {
				notify[k] = r.Notify
			}
		}
	}
	for attempt := 0; ; attempt++ {
		var first int64
		state, err := e.stateOps()
		if err == nil {
			_, err = e.appendServer(evs, func(idx int64, w ledger.Writer) error {
				first = idx
				if err := applyOps(w, state); err != nil {
					return err
				}
				for k := range fs {
					for _, nt := range notify[k] {
						if err := w.Set(outboxKey(idx+int64(k), nt), nil); err != nil {
							return err
						}
					}
				}
				return nil
			})
		}
		if err == nil {
			e.ev.clean()
			e.lastSnap, e.dirty = e.cfg.Now(), false
			for k, f := range fs {
				e.m.firing(f)
				e.cfg.Logger.Info("alert: fired", "rule", f.Rule, "resolved", f.Resolved, "index", first+int64(k), "count", f.Count)
				if !f.Resolved && e.ev.isAbsent(f.Rule) {
					e.ev.setFiredIndex(f.Rule, f.Group, first+int64(k))
					e.dirty = true
				}
				for _, nt := range notify[k] {
					e.enqueue(first+int64(k), nt, time.Time{})
				}
			}
			return true
		}
		e.cfg.Logger.Error("alert: recording a firing; retrying", "err", err)
		if !e.sleep(min(e.cfg.RetryMin<<min(attempt, 6), e.cfg.RetryMax)) {
			e.uncommitted = true
			return false
		}
	}
}

// appendServer is the one place the engine appends events on the server's
// behalf (firings, resolves, undelivered notices).
func (e *Engine) appendServer(evs []event.Event, extra func(int64, ledger.Writer) error) ([]eventstore.Appended, error) {
	return e.l.Record(context.Background(), eventstore.ServerActor, evs, extra)
}

// Metadata is the metadata of an indelible.alert.fired (or resolved) event.
type Metadata struct {
	Rule       string  `json:"rule"`
	Severity   string  `json:"severity"`
	Group      string  `json:"group"`
	Count      int     `json:"count"`
	Window     string  `json:"window"`
	Evidence   []int64 `json:"evidence"`
	FirstIndex int64   `json:"first_index"`
	LastIndex  int64   `json:"last_index"`
}

func firingEvent(f Firing) event.Event {
	md := Metadata{Rule: f.Rule, Severity: f.Severity, Group: f.Group, Count: f.Count, Window: FormatDuration(f.Window),
		Evidence: f.Evidence, FirstIndex: f.FirstIndex, LastIndex: f.LastIndex}
	if md.Evidence == nil {
		md.Evidence = []int64{}
	}
	b, _ := json.Marshal(md)
	action := ActionFired
	if f.Resolved {
		action = ActionResolved
	}
	return event.Event{
		Actor:    &event.Actor{ID: eventstore.ServerActor},
		Action:   action,
		Resource: &event.Resource{Type: "rule", ID: f.Rule},
		Outcome:  event.OutcomeSuccess,
		Source:   eventstore.ServerActor,
		Metadata: b,
	}
}

// FormatDuration writes d like the rules file does: 5m, 1h30m, 90s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// exportCounters copies the evaluator's counters to the metrics.
func (e *Engine) exportCounters() {
	for kind, m := range map[string]map[string]int64{"where_error": e.ev.WhereErrors, "late": e.ev.Late, "dropped": e.ev.Dropped} {
		for rule, v := range m {
			k := kind + "\x00" + rule
			if d := v - e.counters[k]; d > 0 {
				e.m.skipped.WithLabelValues(rule, kind).Add(float64(d))
				e.counters[k] = v
			}
		}
	}
}

// isAbsent reports whether the named rule is an absent rule.
func (ev *Evaluator) isAbsent(rule string) bool {
	s := ev.st[rule]
	return s != nil && s.Absent != nil
}

// setFiredIndex records the index of an absent group's firing event, for
// re-sends while it fires.
func (ev *Evaluator) setFiredIndex(rule, group string, i int64) {
	if s := ev.st[rule]; s != nil && s.Absent[group] != nil {
		s.Absent[group].FiredIndex = i
		ev.touch(rule, group)
	}
}

// firingAbsent returns the firing events' indexes of the absent groups
// still firing.
func (ev *Evaluator) firingAbsent() map[int64]string {
	out := map[int64]string{}
	for name, s := range ev.st {
		for _, a := range s.Absent {
			if a.Firing && a.FiredIndex >= 0 {
				out[a.FiredIndex] = name
			}
		}
	}
	return out
}
