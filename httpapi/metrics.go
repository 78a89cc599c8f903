package httpapi

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"indelible.dev/ledger"
)

// Metrics holds the Prometheus metrics of one Indelible process: the
// ledger's commits (fed by ledger.Options.OnCommit) and the HTTP requests.
// It has its own registry, so several servers can live in one process (as in
// tests). Create it before ledger.Open so its ObserveCommit can be passed as
// Options.OnCommit. All methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	appends        prometheus.Counter
	commits        prometheus.Counter
	batchEntries   prometheus.Histogram
	batchRequests  prometheus.Histogram
	commitLatency  prometheus.Histogram
	treeSize       prometheus.Gauge
	queueDepth     prometheus.Gauge
	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	logWatched     atomic.Bool
	routeMu        sync.Mutex
	routeByPattern map[string]*routeMetrics
}

// NewMetrics returns Metrics registered on a new registry, together with the
// Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg:           prometheus.NewRegistry(),
		appends:       newCounter("indelible_appends_total", "Entries durably appended to the log (deduplicated ones excluded)."),
		commits:       newCounter("indelible_commits_total", "Durable commits (pebble batches synced) of the sequencer."),
		batchEntries:  newHistogram("indelible_commit_batch_entries", "Entries per durable commit.", prometheus.ExponentialBuckets(1, 4, 9)), // 1 .. 65536
		batchRequests: newHistogram("indelible_commit_batch_requests", "Append calls answered per durable commit.", prometheus.ExponentialBuckets(1, 4, 9)),
		commitLatency: newHistogram("indelible_commit_latency_seconds", "Time from building a batch to the end of its fsync.", prometheus.ExponentialBuckets(0.0001, 2, 16)), // 100µs .. 3.3s
		treeSize:      newGauge("indelible_tree_size", "Size of the newest durable tree."),
		queueDepth:    newGauge("indelible_queue_depth", "Entries waiting to be sequenced, as of the last commit."),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "indelible_http_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "indelible_http_request_duration_seconds",
			Help:    "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"route"}),
		routeByPattern: make(map[string]*routeMetrics),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.appends, m.commits, m.batchEntries, m.batchRequests, m.commitLatency,
		m.treeSize, m.queueDepth, m.httpRequests, m.httpDuration,
	)
	return m
}

// Registry returns the registry the metrics live on, for /metrics and for
// other components (the witness) to add their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveCommit records one durable commit. Pass it as
// ledger.Options.OnCommit; it is cheap and never blocks.
func (m *Metrics) ObserveCommit(ci ledger.CommitInfo) {
	m.appends.Add(float64(ci.Entries))
	m.commits.Inc()
	m.batchEntries.Observe(float64(ci.Entries))
	m.batchRequests.Observe(float64(ci.Requests))
	m.commitLatency.Observe(ci.Latency.Seconds())
	m.treeSize.Set(float64(ci.Size))
	m.queueDepth.Set(float64(ci.Queue))
}

// watchLog adds gauges read from l at scrape time: the published size and
// the live queue depth (the commit-time gauges above go stale when idle).
// Only the first log watched is registered.
func (m *Metrics) watchLog(l *ledger.Log) {
	if !m.logWatched.CompareAndSwap(false, true) {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "indelible_published_tree_size",
			Help: "Size of the checkpoint currently served at /checkpoint.",
		}, func() float64 { cp, _ := l.Checkpoint(); return float64(cp.N) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "indelible_witness_ahead_total",
			Help: "Witness answers reporting a tree larger than the log has signed (lost data or a forked key: the log is not ready).",
		}, func() float64 { return float64(l.WitnessStats().Alarms) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "indelible_queue_depth_live",
			Help: "Entries waiting to be sequenced, read at scrape time.",
		}, func() float64 { return float64(l.QueueLen()) }),
	)
}

// routeMetrics caches the per-route children of the HTTP metric vectors, so
// a request costs two atomic adds and no label hashing.
type routeMetrics struct {
	route    string
	duration prometheus.Observer
	requests *prometheus.CounterVec
	byCode   sync.Map // int -> prometheus.Counter
}

// route returns the cached metrics of a route pattern ("other" for requests
// that matched no route, so label cardinality stays bounded).
func (m *Metrics) route(pattern string) *routeMetrics {
	m.routeMu.Lock()
	defer m.routeMu.Unlock()
	if r, ok := m.routeByPattern[pattern]; ok {
		return r
	}
	r := &routeMetrics{
		route:    pattern,
		duration: m.httpDuration.WithLabelValues(pattern),
		requests: m.httpRequests,
	}
	m.routeByPattern[pattern] = r
	return r
}

// observe records one request.
func (r *routeMetrics) observe(code int, d time.Duration) {
	r.duration.Observe(d.Seconds())
	c, ok := r.byCode.Load(code)
	if !ok {
		c, _ = r.byCode.LoadOrStore(code, r.requests.WithLabelValues(r.route, strconv.Itoa(code)))
	}
	c.(prometheus.Counter).Inc()
}

func newCounter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func newGauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func newHistogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
}
