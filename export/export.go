package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"indelible.dev/audited"
	"indelible.dev/eventstore"
)

// Defaults of Options.
const (
	DefaultBatchSize  = 500
	DefaultBatchDelay = time.Second
	DefaultRetryMin   = 500 * time.Millisecond
	DefaultRetryMax   = time.Minute
	requestTimeout    = 30 * time.Second
)

// Options configures Start.
type Options struct {
	Events *eventstore.Layer // required
	Audit  *audited.Service  // required: each export's start is recorded as a read
	// ReceiptBase is the server's base URL as the SIEM's users reach it
	// (the receipt URL of event i is ReceiptBase + "v1/events/<i>/receipt";
	// a missing final "/" is added).
	ReceiptBase string
	Client      *http.Client // default: a client with a 30 s timeout
	Logger      *slog.Logger // default slog.Default()
	Metrics     *Metrics     // default NewMetrics()

	BatchSize          int           // events per request; default DefaultBatchSize
	BatchDelay         time.Duration // a partial batch waits at most this long; default DefaultBatchDelay
	RetryMin, RetryMax time.Duration // backoff bounds; defaults above
}

// Metrics are the exports' Prometheus metrics.
type Metrics struct {
	Lag       *prometheus.GaugeVec   // indelible_export_lag_events{export}
	Cursor    *prometheus.GaugeVec   // indelible_export_cursor{export}
	Delivered *prometheus.CounterVec // indelible_export_delivered_events_total{export}
	Failures  *prometheus.CounterVec // indelible_export_failures_total{export}
}

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "indelible_export_lag_events",
			Help: "Committed events the export has not delivered yet (published size minus its cursor)."}, []string{"export"}),
		Cursor: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "indelible_export_cursor",
			Help: "The first index the export has not delivered."}, []string{"export"}),
		Delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "indelible_export_delivered_events_total",
			Help: "Events delivered by the export (a resent event counts again)."}, []string{"export"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "indelible_export_failures_total",
			Help: "Failed delivery attempts of the export (each retried)."}, []string{"export"}),
	}
}

// Collectors returns the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Lag, m.Cursor, m.Delivered, m.Failures}
}

// Runner runs one follower per export. Close stops them.
type Runner struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ActorPrefix prefixes an export's name in the submitted_by and actor of
// the indelible.read event recording its start.
const ActorPrefix = "export:"

// Start starts a follower for every export of f.
func Start(f *File, opts Options) (*Runner, error) {
	if opts.Events == nil || opts.Audit == nil {
		return nil, errors.New("export: Options.Events and Options.Audit are required")
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: requestTimeout}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.BatchDelay, DefaultBatchDelay)
	def(&opts.RetryMin, DefaultRetryMin)
	def(&opts.RetryMax, DefaultRetryMax)
	base := opts.ReceiptBase
	if base != "" && !strings.HasSuffix(base, "/") {
		base += "/"
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{cancel: cancel}
	var fs []*follower
	for i := range f.Exports {
		x := &f.Exports[i]
		s, err := newSink(x, opts.Client, opts.Events.Origin())
		if err != nil {
			cancel()
			return nil, err
		}
		fs = append(fs, &follower{x: x, o: &opts, sink: s, receiptPfx: receiptPrefix(base),
			log: opts.Logger.With("export", x.Name)})
	}
	for _, fo := range fs {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			fo.run(ctx)
		}()
	}
	return r, nil
}

// Close stops every follower and waits for them. A batch in flight is not
// acknowledged: the next start sends it again.
func (r *Runner) Close() {
	r.cancel()
	r.wg.Wait()
}

type follower struct {
	x          *Export
	o          *Options
	sink       sink
	receiptPfx []byte // receiptPrefix of the receipt URLs' base
	log        *slog.Logger
}

// run records the start as a read, then follows the log until ctx ends,
// starting over from the stored cursor after any error.
func (f *follower) run(ctx context.Context) {
	bo := f.backoff()
	for {
		err := f.auditStart(ctx)
		if err == nil {
			break
		}
		f.log.Error("export: recording the export's read; retrying", "err", err)
		if !sleep(ctx, bo.next(0)) {
			return
		}
	}
	bo = f.backoff()
	for {
		err := f.session(ctx)
		if ctx.Err() != nil {
			return
		}
		f.log.Error("export: following the log; resuming from the stored cursor", "err", err)
		if !sleep(ctx, bo.next(0)) {
			return
		}
	}
}

// auditStart records the export's read (an indelible.read event, with the
// filters), durably, before any event leaves.
func (f *follower) auditStart(ctx context.Context) error {
	q := map[string]string{"type": f.x.Type, "url": f.x.URL}
	if f.x.Index != "" {
		q["index"] = f.x.Index
	}
	for k, v := range map[string]string{"actor": f.x.Filter.Actor, "action": f.x.Filter.Action,
		"resource": f.x.Filter.Resource, "outcome": f.x.Filter.Outcome, "source": f.x.Filter.Source} {
		if v != "" {
			q[k] = v
		}
	}
	wait, err := f.o.Audit.AuditRead(ctx, ActorPrefix+f.x.Name, audited.ReadMeta{Route: "export", Query: q})
	if err != nil {
		return err
	}
	return wait()
}

// session streams every committed event from the stored cursor on and
// delivers the matching ones in batches; after each delivered batch it
// stores the cursor past the batch's last event (and past the events the
// filter skipped). It returns on any error.
func (f *follower) session(ctx context.Context) error {
	l, m, name := f.o.Events, f.o.Metrics, f.x.Name
	cursor, err := l.ExportCursor(name)
	if err != nil {
		return err
	}
	if pub := l.Published(); cursor > pub {
		return fmt.Errorf("export: the stored cursor %d is past the published size %d", cursor, pub)
	}
	m.Cursor.WithLabelValues(name).Set(float64(cursor))
	m.Lag.WithLabelValues(name).Set(float64(l.Published() - cursor))
	m.Delivered.WithLabelValues(name).Add(0) // shown from the start
	m.Failures.WithLabelValues(name).Add(0)

	sctx, cancel := context.WithCancel(ctx)
	recs := make(chan eventstore.Record, f.o.BatchSize)
	errc := make(chan error, 1)
	// Return only once the stream goroutine has: it reads the store, which
	// is closed after the exports stop (a read of a closed pebble panics).
	defer func() {
		cancel()
		for range recs {
		}
	}()
	go func() {
		defer close(recs)
		errc <- l.Stream(sctx, eventstore.Query{}, cursor-1, func(r eventstore.Record) error {
			select {
			case recs <- r:
				return nil
			case <-sctx.Done():
				return sctx.Err()
			}
		})
	}()

	var batch []item
	seen := cursor // the first index not yet in batch nor skipped
	var due <-chan time.Time
	tick := time.NewTicker(f.o.BatchDelay)
	defer tick.Stop()
	flush := func() error {
		if seen == cursor {
			return nil
		}
		if len(batch) > 0 {
			if err := f.deliver(ctx, batch); err != nil {
				return err
			}
			m.Delivered.WithLabelValues(name).Add(float64(len(batch)))
		}
		if err := l.SetExportCursor(name, seen); err != nil {
			return err
		}
		cursor, batch, due = seen, batch[:0], nil
		m.Cursor.WithLabelValues(name).Set(float64(cursor))
		m.Lag.WithLabelValues(name).Set(float64(max(l.Published()-cursor, 0)))
		return nil
	}
	for {
		select {
		case r, ok := <-recs:
			if !ok {
				if err := flush(); err != nil {
					return err
				}
				return <-errc
			}
			if eventstore.QueryMatches(&f.x.query, &r.Event) {
				doc, err := document(&r, f.receiptPfx)
				if err != nil {
					return err
				}
				batch = append(batch, item{index: r.Index, time: r.Event.Time, commitment: r.Commitment, doc: doc})
			}
			seen = r.Index + 1
			if due == nil {
				due = time.After(f.o.BatchDelay)
			}
			if len(batch) >= f.o.BatchSize {
				if err := flush(); err != nil {
					return err
				}
			}
		case <-due:
			if err := flush(); err != nil {
				return err
			}
		case <-tick.C:
			m.Lag.WithLabelValues(name).Set(float64(max(l.Published()-cursor, 0)))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// deliver sends the batch until every item is delivered (retrying only
// those that failed, with backoff honouring Retry-After) or ctx ends.
func (f *follower) deliver(ctx context.Context, batch []item) error {
	bo := f.backoff()
	rest := batch
	for {
		var ra time.Duration
		var err error
		rest, ra, err = f.sink.send(ctx, rest)
		if len(rest) == 0 && err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.o.Metrics.Failures.WithLabelValues(f.x.Name).Inc()
		d := bo.next(ra)
		f.log.Warn("export: delivery failed; retrying", "events", len(rest), "first", rest[0].index, "in", d, "err", err)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

type backoff struct {
	min, max, cur time.Duration
}

func (f *follower) backoff() *backoff { return &backoff{min: f.o.RetryMin, max: f.o.RetryMax} }

// next returns the next delay: doubling from min to max, with jitter (half
// to all of it), and at least ra.
func (b *backoff) next(ra time.Duration) time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	d := b.cur/2 + rand.N(b.cur/2+1)
	return max(d, ra)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
