package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"indelible.dev/audited"
	"indelible.dev/auth"
	"indelible.dev/eventstore"
	"indelible.dev/ledger"
)

// Server limits and timeouts. Reads are point lookups and appends are
// answered within a commit, so every budget is generous for honest clients
// and short for a slow-loris.
const (
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout = 30 * time.Second
	// WriteTimeout bounds handling a request and writing its response. It
	// covers POST /add?wait=checkpoint, which waits for a checkpoint.
	WriteTimeout = 60 * time.Second
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout = 120 * time.Second
	// MaxHeaderBytes bounds a request's header block.
	MaxHeaderBytes = 16 << 10
	// MaxRequestBody bounds any request body; routes have tighter limits
	// (POST /add: tlog.MaxEntrySize).
	MaxRequestBody = 1 << 20
)

// Config configures New. Every field but those of the components served is
// optional.
type Config struct {
	// Log, if set, is served: the c2sp.org/tlog-tiles read endpoints, the
	// proof endpoints, and (with RawAppend) POST /add.
	Log *ledger.Log
	// RawAppend enables POST /add (raw mode: the body is the entry).
	RawAppend bool
	// Metrics receives request metrics and is served at /metrics. Default:
	// NewMetrics(). Pass the one whose ObserveCommit the ledger was opened
	// with, so commit metrics appear too.
	Metrics *Metrics
	// Logger receives internal errors. Default: slog.Default().
	Logger *slog.Logger
	// RateLimit, if positive, limits each client IP address to this many
	// requests per second (bursts of RateBurst, default twice the rate);
	// requests over it get 429 with Retry-After. /healthz, /readyz and
	// /metrics are exempt. Zero means no limit.
	RateLimit float64
	RateBurst int
	// CheckpointWait bounds how long POST /add?wait=checkpoint waits for a
	// checkpoint. Default DefaultCheckpointWait.
	CheckpointWait time.Duration
	// Events, if set with Tokens, serves the events API (events mode): the
	// /v1/events routes, POST /v1/ingest/kubernetes and the /v1/tokens
	// admin routes, all behind Bearer tokens (events.go, tokens.go).
	Events *eventstore.Layer
	Tokens *auth.Store
	// Audit is the audit policy over Events (audited reads, token changes
	// with their records); its owner closes it after the HTTP server and
	// before the layer. Default: one made by New over Events, Log and
	// Tokens (no owner to close it, which only a test can afford).
	Audit *audited.Service
	// StreamHeartbeat is the event stream's heartbeat interval. Default
	// StreamHeartbeat.
	StreamHeartbeat time.Duration
	// StreamMaxAge is how long one event stream connection lives at most;
	// the client then resumes with Last-Event-ID. Default
	// DefaultStreamMaxAge.
	StreamMaxAge time.Duration
	// Console, if set in events mode, serves the web console at / (console.go).
	Console *ConsoleConfig
	// OTLPDefaultAction is the action of an OTLP log record naming none
	// (POST /v1/logs, otlp.go); empty: such records are refused.
	OTLPDefaultAction string
	// PrivateLog puts the log's read routes (checkpoint, tiles, proofs) and
	// /metrics behind the read scope of Tokens (private.go).
	PrivateLog bool
	// Cluster, if set, makes the server one node of an active/standby pair
	// (cluster.go): GET /v1/cluster, the write gate or forwarding.
	Cluster *ClusterConfig
}

// Server is Indelible's HTTP handler: the routes of the components it was
// given, plus /healthz, /readyz and /metrics. Components other than the log
// (the witness) mount their routes with the unexported route method from
// their own file in this package, and add readiness checks with
// AddReadyCheck, before the server starts serving.
type Server struct {
	e       *echo.Echo
	metrics *Metrics
	logger  *slog.Logger

	readyMu     sync.Mutex
	readyChecks []func() error
	// readyDetails add lines to a ready /readyz's body (lifecycle.go).
	readyDetails []func() string
	shutdown     atomic.Bool

	// routes maps each registered route pattern to its metrics; it is only
	// written before serving starts.
	routes map[string]*routeMetrics
	other  *routeMetrics
	// bodyLimits overrides MaxRequestBody for some route patterns; only
	// written before serving starts.
	bodyLimits map[string]int64
	// stopping is closed by SetShuttingDown: long-lived responses (the event
	// stream) end on it.
	stopping     chan struct{}
	stoppingOnce sync.Once
	heartbeat    time.Duration
	streamMaxAge time.Duration
	// readGuard wraps the log's read routes (private.go); only written
	// before serving starts.
	readGuard func(echo.HandlerFunc) echo.HandlerFunc
	// audit records every read of event content and token change
	// (package audited); nil without an events layer. Set before serving
	// starts.
	audit *audited.Service
	// otlp serves POST /v1/logs (otlp.go); nil without an events layer.
	otlp *otlpHandler
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Audit != nil {
		if cfg.Events == nil {
			cfg.Events = cfg.Audit.Layer()
		}
		if cfg.Tokens == nil {
			cfg.Tokens = cfg.Audit.Tokens()
		}
	}
	s := &Server{
		metrics: cfg.Metrics,
		logger:  cfg.Logger,
		routes:  make(map[string]*routeMetrics),
		other:   cfg.Metrics.route("other"),

		bodyLimits: make(map[string]int64),
		stopping:   make(chan struct{}),
		heartbeat:  cfg.StreamHeartbeat,
		readGuard:  readGuard(cfg.PrivateLog, cfg.Tokens),
	}
	s.streamMaxAge = cfg.StreamMaxAge
	if s.heartbeat <= 0 {
		s.heartbeat = StreamHeartbeat
	}
	if s.streamMaxAge <= 0 {
		s.streamMaxAge = DefaultStreamMaxAge
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.Use(s.instrument)
	if cfg.Cluster != nil && len(cfg.Cluster.ForwardKey) > 0 {
		e.Use(trustForwarded(cfg.Cluster.ForwardKey)) // before the rate limiter (forwardauth.go)
	}
	if cfg.RateLimit > 0 {
		e.Use(newRateLimiter(cfg.RateLimit, cfg.RateBurst).middleware)
	}
	s.e = e

	s.route(http.MethodGet, "/healthz", s.serveHealthz)
	s.route(http.MethodGet, "/readyz", s.serveReadyz)
	metrics := promhttp.HandlerFor(cfg.Metrics.reg, promhttp.HandlerOpts{})
	s.route(http.MethodGet, "/metrics", s.guardRead(echo.WrapHandler(metrics)))

	if cfg.Cluster != nil {
		s.mountCluster(cfg.Cluster)
	}
	if cfg.Log != nil {
		cfg.Metrics.watchLog(cfg.Log)
		s.AddReadyCheck(cfg.Log.Err)
		s.AddReadyCheck(cfg.Log.WitnessAlarm)
		if cfg.CheckpointWait <= 0 {
			cfg.CheckpointWait = DefaultCheckpointWait
		}
		s.mountLog(cfg.Log, cfg.RawAppend, cfg.CheckpointWait)
	}
	if cfg.Events != nil && cfg.Tokens != nil && cfg.Log != nil {
		if cfg.Audit == nil {
			a, err := audited.New(audited.Config{Layer: cfg.Events, Log: cfg.Log, Tokens: cfg.Tokens})
			if err != nil {
				panic("httpapi: " + err.Error()) // only missing fields fail, checked above
			}
			cfg.Audit = a
		}
		s.audit = cfg.Audit
		cfg.Metrics.reg.MustRegister(cfg.Audit.Collectors()...)
		s.mountEvents(cfg.Events, cfg.Log, cfg.Tokens)
		s.mountTokens(cfg.Audit)
		s.mountBundle(cfg) // GET /v1/bundle: bundle.go
		s.watchLifecycle(cfg.Events)
		s.mountOTLP(cfg.Audit, cfg.OTLPDefaultAction)
		s.mountAlerts(cfg.Events, cfg.Tokens)
		if cfg.Console != nil {
			s.mountConsoleFor(cfg)
		}
	}
	return s
}

// route registers h for method and path and gives the route its metrics.
func (s *Server) route(method, path string, h echo.HandlerFunc) {
	s.e.Add(method, path, h)
	s.routes[path] = s.metrics.route(path)
}

// Handler returns the http.Handler serving every route.
func (s *Server) Handler() http.Handler { return s.e }

// HTTPServer returns an http.Server for addr serving s, with the package's
// timeouts and header limit.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.e,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
}

// AddReadyCheck adds a check /readyz runs: the server is ready when every
// check returns nil. Call it before serving starts.
func (s *Server) AddReadyCheck(check func() error) {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	s.readyChecks = append(s.readyChecks, check)
}

// SetShuttingDown makes /readyz fail from now on, so load balancers stop
// sending requests while in-flight ones finish.
func (s *Server) SetShuttingDown() {
	s.shutdown.Store(true)
	s.stoppingOnce.Do(func() { close(s.stopping) })
}

// instrument is the one middleware: it runs the handler, turns its error into
// a response through the error handler (so the status is known), and records
// the request's route, status and latency. It logs nothing per request.
func (s *Server) instrument(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		limit := int64(MaxRequestBody)
		if l, ok := s.bodyLimits[c.Path()]; ok {
			limit = l
		}
		if r.ContentLength > limit {
			c.Error(fmt.Errorf("%w: %d bytes, at most %d", errTooLarge, r.ContentLength, limit))
		} else {
			if r.ContentLength < 0 {
				// Chunked: no declared length to check up front. (A declared
				// length is enforced by net/http itself.)
				r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
			}
			if err := next(c); err != nil {
				c.Error(err)
			}
		}
		rm := s.routes[c.Path()]
		if rm == nil {
			rm = s.other
		}
		rm.observe(c.Response().Status, time.Since(start))
		return nil
	}
}

var okBody = []byte("ok\n")

func (s *Server) serveHealthz(c echo.Context) error {
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", okBody)
}

func (s *Server) serveReadyz(c echo.Context) error {
	if err := s.processReadyz(); err != nil {
		return fmt.Errorf("%w: %w", errNotReady, err)
	}
	s.readyMu.Lock()
	details := s.readyDetails
	s.readyMu.Unlock()
	body := okBody
	for _, d := range details {
		if t := d(); t != "" {
			body = append(body[:len(body):len(body)], t...)
		}
	}
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", body)
}

// processReadyz returns why the server is not ready, or nil.
func (s *Server) processReadyz() error {
	if s.shutdown.Load() {
		return errShuttingDown
	}
	s.readyMu.Lock()
	checks := s.readyChecks
	s.readyMu.Unlock()
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}
