package httpapi

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"indelible.dev/api"
	"indelible.dev/auth"
	"indelible.dev/eventstore"
	"indelible.dev/ledger"
)

// The console: a single page (plain ES modules, no build step) embedded in
// the binary and served at "/", plus the small read-only routes it needs
// besides the events API: the keys it verifies receipts with, the log's
// witnessing status, and a histogram of events.
//
// The page's modules (console/, flat): app.js signs in and routes; one
// module per view (timeline.js with histogram.js, panel.js, alerts.js,
// health.js, keys.js) over store.js (the state, and publish/subscribe between views);
// api.js, nav.js and dom.js are shared helpers; verify.js, sse.js and zip.js
// the receipt verifier, the event stream reader and the ZIP writer.
const (
	routeConsole       = "/"
	routeConsoleAsset  = "/console/:file"
	routeKeys          = "/v1/keys"
	routeLogStatus     = "/v1/log/status"
	routeHistogram     = "/v1/events/histogram"
	consoleAssetPrefix = "console"
)

//go:embed console
var consoleFS embed.FS

// consoleCSP is the console's Content-Security-Policy: every script, style,
// image and connection from this origin only, no inline script or style, no
// plugins, no framing (clickjacking), no <base> rewriting.
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Histogrammer counts events per time bucket (eventstore.Layer implements it).
type Histogrammer interface {
	HistogramContext(ctx context.Context, q eventstore.Query, bucket time.Duration) (eventstore.Histogram, error)
}

// ConsoleConfig configures MountConsole.
type ConsoleConfig struct {
	// Log is the log whose status GET /v1/log/status reports. Default in
	// Config.Console: Config.Log.
	Log *ledger.Log
	// Tokens authenticates the read-scoped routes (histogram, log status);
	// nil leaves them out. Default in Config.Console: Config.Tokens.
	Tokens *auth.Store
	// Events serves GET /v1/events/histogram; nil leaves the route out.
	// Default in Config.Console: Config.Events.
	Events Histogrammer
	// LogVKey is the log's note verifier key; WitnessVKeys the witnesses'
	// cosignature/v1 verifier keys; Quorum the cosignatures a checkpoint
	// needs (0: all). GET /v1/keys serves them so the console can verify
	// receipts; the user can pin them in the browser.
	LogVKey      string
	WitnessVKeys []string
	Quorum       int
}

// keysBody is the reply of GET /v1/keys.
type keysBody struct {
	Origin    string   `json:"origin"`
	Log       string   `json:"log"`
	Witnesses []string `json:"witnesses"`
	Quorum    int      `json:"quorum"`
}

type consoleHandlers struct {
	s    *Server
	cfg  ConsoleConfig
	keys keysBody
}

// MountConsole registers the console: GET / and GET /console/<asset> (the
// embedded page, with a strict Content-Security-Policy), GET /v1/keys
// (public: the verifier keys), GET /v1/log/status (read scope: witnessing
// as the log sees it) and, with cfg.Events, GET /v1/events/histogram (read
// scope). Call it before serving starts, once.
func (s *Server) MountConsole(cfg ConsoleConfig) {
	ws := cfg.WitnessVKeys
	if ws == nil {
		ws = []string{}
	}
	q := cfg.Quorum
	if q == 0 {
		q = len(ws)
	}
	origin, _, _ := strings.Cut(cfg.LogVKey, "+")
	h := &consoleHandlers{s: s, cfg: cfg, keys: keysBody{Origin: origin, Log: cfg.LogVKey, Witnesses: ws, Quorum: q}}
	s.route(http.MethodGet, routeConsole, h.serveIndex)
	s.route(http.MethodGet, routeConsoleAsset, h.serveAsset)
	s.route(http.MethodGet, routeKeys, h.serveKeys)
	if cfg.Tokens != nil {
		s.route(http.MethodGet, routeLogStatus, requireScope(cfg.Tokens, auth.ScopeRead, h.serveLogStatus))
		if cfg.Events != nil {
			s.route(http.MethodGet, routeHistogram, requireScope(cfg.Tokens, auth.ScopeRead, h.serveHistogram))
		}
	}
}

// mountConsoleFor mounts the console as cfg.Console says, with the token
// store and events layer of cfg (New calls it in events mode).
func (s *Server) mountConsoleFor(cfg Config) {
	c := *cfg.Console
	if c.Tokens == nil {
		c.Tokens = cfg.Tokens
	}
	if c.Log == nil {
		c.Log = cfg.Log
	}
	if c.Events == nil && cfg.Events != nil {
		c.Events = cfg.Events
	}
	s.MountConsole(c)
}

// consoleHeaders sets the headers every console page and asset carries.
func consoleHeaders(hdr http.Header) {
	hdr.Set("Content-Security-Policy", consoleCSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	// Assets change with the binary: revalidate, never serve stale code.
	hdr.Set("Cache-Control", "no-cache")
}

var consoleTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

func (h *consoleHandlers) serveIndex(c echo.Context) error {
	return h.serveFile(c, "index.html")
}

func (h *consoleHandlers) serveAsset(c echo.Context) error {
	return h.serveFile(c, c.Param("file"))
}

// serveFile serves one embedded asset by its base name (no directories).
func (h *consoleHandlers) serveFile(c echo.Context, name string) error {
	ctype, ok := consoleTypes[path.Ext(name)]
	if !ok || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return echo.ErrNotFound
	}
	b, err := fs.ReadFile(consoleFS, consoleAssetPrefix+"/"+name)
	if err != nil {
		return echo.ErrNotFound
	}
	consoleHeaders(c.Response().Header())
	return c.Blob(http.StatusOK, ctype, b)
}

func (h *consoleHandlers) serveKeys(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.JSON(http.StatusOK, h.keys)
}

// logStatusBody is the reply of GET /v1/log/status.
type logStatusBody struct {
	Origin    string               `json:"origin"`
	Published int64                `json:"published"` // size of the newest log-signed checkpoint
	Witnessed *int64               `json:"witnessed"` // size of the newest quorum-cosigned one; null without witnessing
	Witnesses []witnessStatusEntry `json:"witnesses"`
}

type witnessStatusEntry struct {
	Name      string `json:"name"`
	Known     int64  `json:"known"`
	Failures  int64  `json:"failures"`
	LastError string `json:"last_error,omitempty"`
}

func (h *consoleHandlers) serveLogStatus(c echo.Context) error {
	l := h.cfg.Log
	if l == nil {
		return echo.ErrNotFound
	}
	cp, _ := l.Published()
	body := logStatusBody{Origin: l.Origin(), Published: cp.N, Witnesses: []witnessStatusEntry{}}
	st := l.WitnessStats()
	if len(st.Witnesses) > 0 {
		body.Published = max(body.Published, st.Published)
		w := st.Witnessed
		body.Witnessed = &w
		for _, ws := range st.Witnesses {
			body.Witnesses = append(body.Witnesses, witnessStatusEntry{Name: ws.Name, Known: ws.Known, Failures: ws.Failures, LastError: ws.LastError})
		}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, body)
}

// histogramBody is the reply of GET /v1/events/histogram.
type histogramBody struct {
	Bucket   string              `json:"bucket"`
	Since    time.Time           `json:"since"`
	Until    time.Time           `json:"until"`
	Total    int64               `json:"total"`
	Complete bool                `json:"complete"`
	Oldest   *time.Time          `json:"oldest_counted,omitempty"`
	Buckets  []eventstore.Bucket `json:"buckets"`
}

// serveHistogram answers GET /v1/events/histogram?<filters>&bucket=1m: the
// filters of GET /v1/events (since required, until defaulting to now), no
// limit or cursor, and the bucket width as a Go duration (1s at least).
func (h *consoleHandlers) serveHistogram(c echo.Context) error {
	q, bucket, err := parseHistogramQuery(c.QueryParams(), time.Now())
	if err != nil {
		return err
	}
	audited, err := h.s.auditRead(c, queryMeta(routeHistogram, c.QueryParams()))
	if err != nil {
		return err
	}
	hist, err := h.cfg.Events.HistogramContext(c.Request().Context(), q, bucket)
	if err := audited(); err != nil {
		return err
	}
	if err != nil {
		if errors.Is(err, eventstore.ErrBadQuery) {
			return fmt.Errorf("%w: %w", errBadRequest, err)
		}
		return err
	}
	body := histogramBody{Bucket: bucket.String(), Since: q.Since.UTC(), Until: q.Until.UTC(), Total: hist.Total, Complete: hist.Complete, Buckets: hist.Buckets}
	if !hist.Complete {
		o := hist.Oldest.UTC()
		body.Oldest = &o
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, body)
}

// parseHistogramQuery splits the bucket parameter off the listing filters.
func parseHistogramQuery(v url.Values, now time.Time) (eventstore.Query, time.Duration, error) {
	bad := func(format string, args ...any) (eventstore.Query, time.Duration, error) {
		return eventstore.Query{}, 0, fmt.Errorf("%w: "+format, append([]any{errBadRequest}, args...)...)
	}
	rest := url.Values{}
	var bucketStr string
	for k, vs := range v {
		switch k {
		case "bucket":
			if len(vs) != 1 {
				return bad("bucket given %d times", len(vs))
			}
			bucketStr = vs[0]
		case "limit", "cursor":
			return bad("a histogram takes no %s parameter", k)
		default:
			rest[k] = vs
		}
	}
	if bucketStr == "" {
		return bad("missing bucket parameter (a duration such as 1m)")
	}
	bucket, err := time.ParseDuration(bucketStr)
	if err != nil || bucket < time.Second || bucket%time.Second != 0 {
		return bad("bucket %q: want a duration of whole seconds, at least 1s", bucketStr)
	}
	if rest.Get("since") == "" {
		return bad("missing since parameter")
	}
	q, err := api.ParseQuery(rest)
	if err != nil {
		return eventstore.Query{}, 0, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if q.Until.IsZero() {
		q.Until = now
	}
	q.Limit = 0
	return q, bucket, nil
}
