package httpapi

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"indelible.dev/ledger"
	"indelible.dev/witness"
)

// The witness's routes (c2sp.org/tlog-witness; README.md lists them).
const (
	routeAddCheckpoint     = "/add-checkpoint"
	routeWitnessCheckpoint = "/:originhash/checkpoint"
	routeWitnessForks      = "/v1/witness/forks"
	routeWitnessObserve    = "/v1/witness/observe"
	routeWitnessClearFork  = "/v1/witness/clear-fork"
)

// WitnessBodyLimit bounds the body of add-checkpoint and observe requests.
const WitnessBodyLimit = witness.MaxBodySize

// errAdminOnly answers admin requests that do not come from loopback with
// the data directory's admin token.
var errAdminOnly = errors.New("admin endpoint: loopback only, with the admin token from the witness data directory")

// errWitnessPath answers a monitoring path that is not a lowercase hex
// SHA-256 (404).
var errWitnessPath = errors.New("not found: want /<lowercase hex sha256 of the origin>/checkpoint")

// WitnessConfig configures MountWitness.
type WitnessConfig struct {
	// AdminToken, if set, enables POST /v1/witness/clear-fork?origin=O for
	// requests from a loopback address carrying "Authorization: Bearer
	// <AdminToken>". The token lives in the witness's data directory, so
	// only someone who can read it (the operator) can clear a fork while the
	// witness runs.
	AdminToken string
}

type witnessHandlers struct {
	w     *witness.Witness
	admin string
}

// MountWitness registers the witness's routes on s (POST /add-checkpoint,
// GET /<hex sha256 origin>/checkpoint, GET /v1/witness/forks, POST
// /v1/witness/observe, and the admin POST /v1/witness/clear-fork) and its
// metrics on s's registry. Call it before serving starts, once.
func (s *Server) MountWitness(w *witness.Witness, cfg WitnessConfig) {
	h := &witnessHandlers{w: w, admin: cfg.AdminToken}
	s.route(http.MethodPost, routeAddCheckpoint, h.serveAddCheckpoint)
	s.route(http.MethodGet, routeWitnessCheckpoint, h.serveCheckpoint)
	s.route(http.MethodGet, routeWitnessForks, h.serveForks)
	s.route(http.MethodPost, routeWitnessObserve, h.serveObserve)
	if cfg.AdminToken != "" {
		s.route(http.MethodPost, routeWitnessClearFork, h.serveClearFork)
	}
	for _, m := range []struct {
		name, help string
		gauge      bool
		value      func(witness.Stats) int64
	}{
		{"indelible_witness_cosigned_total", "Checkpoints cosigned (add-checkpoint answered 200).", false,
			func(s witness.Stats) int64 { return s.Cosigned }},
		{"indelible_witness_conflicts_total", "add-checkpoint requests answered 409 (stale old size).", false,
			func(s witness.Stats) int64 { return s.Conflicts }},
		{"indelible_witness_rejected_total", "add-checkpoint requests rejected with another error.", false,
			func(s witness.Stats) int64 { return s.Rejected }},
		{"indelible_witness_forks_total", "Fork evidence records created.", false,
			func(s witness.Stats) int64 { return s.Forks }},
		{"indelible_witness_forked_logs", "Logs the witness refuses to cosign because of fork evidence.", true,
			func(s witness.Stats) int64 { return s.ForkedLogs }},
		{"indelible_witness_known_logs", "Logs the witness is configured for.", true,
			func(s witness.Stats) int64 { return s.KnownLogs }},
		{"indelible_witness_gossip_rounds_total", "Completed gossip rounds.", false,
			func(s witness.Stats) int64 { return s.GossipRounds }},
		{"indelible_witness_gossip_errors_total", "Failed fetches from peers or logs during gossip.", false,
			func(s witness.Stats) int64 { return s.GossipErrors }},
	} {
		read := func() float64 { return float64(m.value(w.Stats())) }
		if m.gauge {
			s.metrics.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: m.name, Help: m.help}, read))
		} else {
			s.metrics.Registry().MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help}, read))
		}
	}
}

// readLimited reads a request body of at most WitnessBodyLimit bytes; a
// larger body is a 413.
func readLimited(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, WitnessBodyLimit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, WitnessBodyLimit)
		}
		return nil, fmt.Errorf("%w: reading body: %v", errBadRequest, err)
	}
	return body, nil
}

// serveAddCheckpoint is c2sp.org/tlog-witness POST /add-checkpoint. A stale
// old size is answered 409 with "<size>\n" and exactly
// "Content-Type: text/x.tlog.size", as clients compare the header verbatim.
func (h *witnessHandlers) serveAddCheckpoint(c echo.Context) error {
	body, err := readLimited(c)
	if err != nil {
		return err
	}
	cosig, err := h.w.AddCheckpoint(c.Request().Context(), body)
	var ce *witness.ConflictError
	if errors.As(err, &ce) {
		hdr := c.Response().Header()
		hdr["Content-Type"] = []string{witness.SizeContentType}
		hdr["Cache-Control"] = []string{"no-store"}
		c.Response().WriteHeader(http.StatusConflict)
		_, err := c.Response().Write([]byte(strconv.FormatInt(ce.Known, 10) + "\n"))
		return err
	}
	if err != nil {
		return err
	}
	hdr := c.Response().Header()
	hdr["Content-Type"] = hdrTextPlain
	hdr["Cache-Control"] = []string{"no-store"}
	c.Response().WriteHeader(http.StatusOK)
	_, err = c.Response().Write(cosig)
	return err
}

// serveCheckpoint is the monitoring endpoint: the latest checkpoint the
// witness cosigned for the origin whose lowercase hex SHA-256 is in the
// path, with the log signatures and the cosignature.
func (h *witnessHandlers) serveCheckpoint(c echo.Context) error {
	hash := c.Param("originhash")
	if len(hash) != 64 || strings.ToLower(hash) != hash {
		return errWitnessPath
	}
	signed, err := h.w.CheckpointByHash(hash)
	if err != nil {
		return err
	}
	hdr := c.Response().Header()
	hdr["Content-Type"] = hdrTextPlain
	hdr["Cache-Control"] = hdrNoCache
	c.Response().WriteHeader(http.StatusOK)
	_, err = c.Response().Write(signed)
	return err
}

// serveForks lists the fork evidence the witness holds, as
// {"forks":[...]} (cleared records included, marked "cleared": true).
func (h *witnessHandlers) serveForks(c echo.Context) error {
	forks, err := h.w.Forks()
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.JSON(http.StatusOK, map[string]any{"forks": forks})
}

// serveObserve takes a signed checkpoint seen elsewhere and compares it with
// the witness's view; the answer is the witness.Observation as JSON.
func (h *witnessHandlers) serveObserve(c echo.Context) error {
	body, err := readLimited(c)
	if err != nil {
		return err
	}
	obs, err := h.w.Observe(c.Request().Context(), body)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, obs)
}

// serveClearFork lets the operator clear a fork while the witness runs: only
// from loopback, with the admin token.
func (h *witnessHandlers) serveClearFork(c echo.Context) error {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	ip := net.ParseIP(host)
	auth, _ := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
	if err != nil || ip == nil || !ip.IsLoopback() || subtle.ConstantTimeCompare([]byte(auth), []byte(h.admin)) != 1 {
		return errAdminOnly
	}
	origin := c.QueryParam("origin")
	if origin == "" {
		return fmt.Errorf("%w: origin parameter required", errBadRequest)
	}
	n, err := h.w.ClearFork(origin)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"origin": origin, "cleared": n})
}

// WatchWitnessing registers the log side's witnessing metrics, read from
// l.WitnessStats at scrape time: the witnessed size, the lag behind the
// newest log-signed checkpoint, and per witness its known size and failures.
// Call it once, for a log opened with ledger.Options.Witnessing.
func (m *Metrics) WatchWitnessing(l *ledger.Log) {
	m.reg.MustRegister(&witnessingCollector{
		l:         l,
		witnessed: prometheus.NewDesc("indelible_witnessed_tree_size", "Size of the newest checkpoint that met the witness quorum (-1: none yet).", nil, nil),
		lag:       prometheus.NewDesc("indelible_witness_lag_entries", "Entries the newest log-signed checkpoint is ahead of the newest witnessed one.", nil, nil),
		known:     prometheus.NewDesc("indelible_witness_known_size", "Size each witness last cosigned, as far as the log knows.", []string{"witness"}, nil),
		failures:  prometheus.NewDesc("indelible_witness_failures_total", "Failed add-checkpoint requests per witness.", []string{"witness"}, nil),
	})
}

type witnessingCollector struct {
	l                               *ledger.Log
	witnessed, lag, known, failures *prometheus.Desc
}

func (c *witnessingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.witnessed
	ch <- c.lag
	ch <- c.known
	ch <- c.failures
}

func (c *witnessingCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.WitnessStats()
	ch <- prometheus.MustNewConstMetric(c.witnessed, prometheus.GaugeValue, float64(st.Witnessed))
	lag := st.Published - st.Witnessed
	if st.Witnessed < 0 {
		lag = st.Published
	}
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(lag))
	for _, w := range st.Witnesses {
		ch <- prometheus.MustNewConstMetric(c.known, prometheus.GaugeValue, float64(w.Known), w.Name)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(w.Failures), w.Name)
	}
}
