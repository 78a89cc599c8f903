package httpapi

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"indelible.dev/eventstore"
)

// watchLifecycle reports the events layer's erasure and retention state,
// read at scrape time: on /metrics, and as detail lines in /readyz's body.
// Neither makes the server unready: it serves, and the bytes still in the
// store's files are being purged in the background.
func (s *Server) watchLifecycle(l *eventstore.Layer) {
	s.metrics.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "indelible_purges_pending",
			Help: "Erasures and retention passes whose destroyed bytes may still be in the store's files (their purge was cut short; retried in the background).",
		}, func() float64 { return float64(l.Lifecycle().PendingPurges) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "indelible_retention_clock_ahead_seconds",
			Help: "At the last retention pass, how far the clock was past the newest event's received_at, when more than a day (0 otherwise): retention then shreds only what was due a day after that event.",
		}, func() float64 { return l.Lifecycle().ClockAhead.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "indelible_retention_clock_held_total",
			Help: "Retention passes held back because the clock was more than a day past the newest event.",
		}, func() float64 { return float64(l.Lifecycle().ClockHeld) }),
	)
	s.addReadyDetail(func() string {
		st := l.Lifecycle()
		var out string
		if st.PendingPurges > 0 {
			out += fmt.Sprintf("purges pending: %d erasures or retention passes whose destroyed bytes may still be in the store's files (retried in the background)\n", st.PendingPurges)
		}
		if st.ClockAhead > 0 {
			out += fmt.Sprintf("retention held back: the clock was %v past the newest event at the last pass\n", st.ClockAhead.Round(time.Second))
		}
		return out
	})
}

// addReadyDetail adds a function whose text /readyz appends to its "ok"
// body: a state worth an operator's eye that does not make the server
// unready. Call it before serving starts.
func (s *Server) addReadyDetail(detail func() string) {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	s.readyDetails = append(s.readyDetails, detail)
}
