package alert

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus metrics, per rule and notifier.
type Metrics struct {
	firings    *prometheus.CounterVec // rule, kind
	skipped    *prometheus.CounterVec // rule, reason
	deliveries *prometheus.CounterVec // rule, notifier, result
	pending    prometheus.Gauge
	lag        prometheus.Gauge
	next       atomic.Int64
}

// NewMetrics returns unregistered metrics; register Collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		firings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "indelible_alert_firings_total",
			Help: "Alert events recorded, by rule and kind (fired, resolved)."}, []string{"rule", "kind"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "indelible_alert_skipped_events_total",
			Help: "Matching events a rule did not count, by reason: where_error (the where expression failed or hit its cost limit), late (past the lateness bound), dropped (over the group limit)."}, []string{"rule", "reason"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "indelible_alert_deliveries_total",
			Help: "Delivery attempts, by rule, notifier and result (delivered, failed, undelivered)."}, []string{"rule", "notifier", "result"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "indelible_alert_outbox_pending",
			Help: "Firings waiting in the outbox for a notifier."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "indelible_alert_lag_events",
			Help: "Published events the rules have not evaluated yet."}),
	}
}

// Collectors returns the collectors to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.firings, m.skipped, m.deliveries, m.pending, m.lag}
}

func (m *Metrics) firing(f Firing) {
	kind := "fired"
	if f.Resolved {
		kind = "resolved"
	}
	m.firings.WithLabelValues(f.Rule, kind).Inc()
}

func (m *Metrics) delivery(d *delivery, result string) {
	rule := ""
	if d.rec != nil {
		rule = d.rec.MD.Rule
	}
	m.deliveries.WithLabelValues(rule, d.notifier, result).Inc()
}
