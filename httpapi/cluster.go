package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"indelible.dev/api"
)

// ClusterConfig makes the server one node of an active/standby pair
// (package cluster, docs/ha.md): GET /v1/cluster, and either the write gate
// (on the active node) or forwarding (on a standby).
type ClusterConfig struct {
	// Status returns GET /v1/cluster's body. Required.
	Status func() api.Cluster
	// Holding, on the active node, reports whether it still holds its
	// lease under the epoch its store commits with. A write's response
	// (any method but GET, HEAD and OPTIONS) is held back until the
	// handler has returned, then released only if Holding is still true;
	// otherwise the client gets 503 (errNotActive) and retries: the write
	// may have been committed, but a node never acknowledges after its
	// lease has ended.
	Holding func() bool
	// Active, on a standby, returns the active node's advertised URL
	// (false if none is known). Every request no route of this server
	// matches is forwarded there with the caller's headers.
	Active func() (string, bool)
	// Watch, on a standby, is called every 50 ms while a
	// request forwarded to target (Active's URL) is under way: a non-nil
	// error (the lease says the active node changed, or that its lease
	// expired unrenewed: a frozen node, whose kernel still accepts
	// connections, would otherwise hold the caller until its own timeout)
	// abandons the forward. The caller then gets 503 with Retry-After
	// and the error's text, and retries (to the new active node), if the
	// answer had not started; otherwise the connection is cut.
	Watch func(target string) error
	// Ready, on a standby, reports whether the active node answers: /readyz
	// fails while it returns an error.
	Ready func() error
	// Hold, on a standby serving reads (a server with Config.Log: a
	// read-only view of the shared store, ledger.OpenReader), makes the
	// server answer the log's public reads (GET /checkpoint, /tile/...,
	// /v1/proof/...) itself, and forward everything else (every write,
	// and every read of event content, which is audited: its
	// indelible.read record is the active node's to sequence). Hold is
	// called before each local read, which then runs only if ok, and calls
	// release when done: the view is not closed under a read. A read that
	// finds the view closing (the node is taking over or stepping down)
	// gets 503 and is retried.
	Hold func() (release func(), ok bool)
	// ForwardKey, if set (ForwardAuthKey, the same on every node), has a
	// standby vouch for the caller's address of each request it forwards,
	// and the active node take it as the request's remote address
	// (forwardauth.go).
	ForwardKey []byte
}

// standbyLocal are the routes a standby serving reads answers itself: the
// log's public reads, which write nothing (localStore: they read the store,
// under Hold), and the node's own status.
var standbyLocal = map[string]bool{
	routeCheckpoint: true, routeTile: true, routeInclusion: true, routeConsistency: true,
	"/healthz": false, "/readyz": false, "/metrics": false, "/v1/cluster": false,
}

// errViewClosing answers a local read on a standby whose view is closing.
var errViewClosing = errors.New("this node is changing its role (its read-only view is closing): retry")

var (
	// errNotActive answers a write whose response the write gate held back:
	// the node lost its lease meanwhile.
	errNotActive = errors.New("this node is no longer the active node (its lease ended): retry")
	// errNoActive answers a request a standby cannot forward: no active
	// node is known, or the request was already forwarded once.
	errNoActive = errors.New("no active node to forward to: retry")
)

// forwardedHeader marks a request a standby forwarded: a node never
// forwards such a request again (two standbys naming each other would
// loop).
const forwardedHeader = "X-Indelible-Forwarded-By"

func (s *Server) mountCluster(cfg *ClusterConfig) {
	node := cfg.Status().Node
	s.route(http.MethodGet, "/v1/cluster", func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, cfg.Status())
	})
	if cfg.Holding != nil {
		s.e.Use(writeGate(cfg.Holding))
	}
	if cfg.Ready != nil {
		s.AddReadyCheck(cfg.Ready)
	}
	if cfg.Active != nil {
		fwd := forwarder(cfg.Active, cfg.Watch, node)
		if len(cfg.ForwardKey) > 0 {
			fwd = signForwards(cfg.ForwardKey, node, fwd)
		}
		h := func(c echo.Context) error { return fwd(c) }
		s.e.Any("/*", h)
		s.e.Any("/", h)
		s.routes["/*"] = s.metrics.route("forwarded")
		s.routes["/"] = s.routes["/*"]
		// The active node applies its own limits: stream whatever comes.
		s.bodyLimits["/*"], s.bodyLimits["/"] = math.MaxInt64, math.MaxInt64
		if cfg.Hold != nil {
			s.e.Use(standbyReads(cfg.Hold, fwd))
		}
	}
}

// standbyReads serves the standby's local routes (standbyLocal) on GET and
// forwards every other request, matched or not, labelled "forwarded" in the
// metrics.
func standbyReads(hold func() (func(), bool), fwd echo.HandlerFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			store, local := standbyLocal[c.Path()]
			if !local || c.Request().Method != http.MethodGet {
				c.SetPath("/*") // the metrics' route label
				return fwd(c)
			}
			if !store {
				return next(c)
			}
			release, ok := hold()
			if !ok {
				return errViewClosing
			}
			defer release()
			return next(c)
		}
	}
}

// writeGate holds back every write's response until the handler returns,
// and releases it only while holding() is true.
func writeGate(holding func() bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			switch c.Request().Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
				return next(c)
			}
			res := c.Response()
			orig := res.Writer
			held := &heldResponse{header: http.Header{}}
			res.Writer = held
			err := next(c)
			res.Writer = orig
			if err != nil && !res.Committed {
				return err // an error response acknowledges nothing
			}
			// The point of acknowledgement: after the commit, and only
			// if the lease still holds now.
			if !holding() {
				res.Committed, res.Status, res.Size = false, 0, 0
				return errNotActive
			}
			h := orig.Header()
			for k, v := range held.header {
				h[k] = v
			}
			orig.WriteHeader(held.status)
			_, werr := orig.Write(held.body.Bytes())
			return werr
		}
	}
}

// heldResponse keeps a response in memory.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header { return h.header }
func (h *heldResponse) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}
func (h *heldResponse) Write(p []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.body.Write(p)
}

// forwardWatchEvery is how often a standby asks ClusterConfig.Watch about
// each request it is forwarding.
const forwardWatchEvery = 50 * time.Millisecond

// forwardDialTimeout bounds connecting to the active node: a node whose
// host does not answer at all (its connections dropped, not refused) is
// given up on then, not after the operating system's minutes.
const forwardDialTimeout = 3 * time.Second

// abandonedForward is the cause of a forward that Watch abandoned.
type abandonedForward struct{ err error }

func (a *abandonedForward) Error() string { return a.err.Error() }

// forwarder sends a request to the active node, with the caller's headers
// (its token among them), and copies the answer back. A forward that
// cannot reach the active node answers 502 at once; one that watch
// abandons answers 503 (both with Retry-After: clients retry them).
func forwarder(active func() (string, bool), watch func(string) error, node string) echo.HandlerFunc {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: forwardDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.MaxIdleConnsPerHost = 64
	rp := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(r.In.Context().Value(forwardTarget{}).(*url.URL))
			r.SetXForwarded()
			r.Out.Host = r.In.Host
			r.Out.Header.Set(forwardedHeader, node)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status, msg := http.StatusBadGateway, "the active node did not answer: retry"
			var ab *abandonedForward
			if errors.As(context.Cause(r.Context()), &ab) {
				status, msg = http.StatusServiceUnavailable, ab.Error()
			} else if u, ok := r.Context().Value(forwardTarget{}).(*url.URL); ok {
				msg = fmt.Sprintf("the active node (%s) did not answer (%s): retry", u.Redacted(), forwardErrText(err))
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Retry-After", retryAfterSeconds)
			w.WriteHeader(status)
			fmt.Fprintf(w, "{\"error\":%q}\n", msg)
		},
	}
	return func(c echo.Context) error {
		r := c.Request()
		if r.Header.Get(forwardedHeader) != "" {
			return fmt.Errorf("%w (already forwarded by %s)", errNoActive, r.Header.Get(forwardedHeader))
		}
		target, ok := active()
		if !ok {
			return errNoActive
		}
		u, err := url.Parse(target)
		if err != nil {
			return fmt.Errorf("%w (bad URL %q)", errNoActive, target)
		}
		ctx := r.Context()
		if watch != nil {
			var cancel context.CancelCauseFunc
			ctx, cancel = context.WithCancelCause(ctx)
			stop := make(chan struct{})
			defer func() { close(stop); cancel(nil) }()
			go func() {
				t := time.NewTicker(forwardWatchEvery)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-ctx.Done():
						return
					case <-t.C:
					}
					if err := watch(target); err != nil {
						cancel(&abandonedForward{err})
						return
					}
				}
			}()
		}
		rp.ServeHTTP(c.Response(), r.WithContext(context.WithValue(ctx, forwardTarget{}, u)))
		return nil
	}
}

// forwardErrText is the part of a failed forward's error a caller is told:
// the failing operation's own words, without the request's URL.
func forwardErrText(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Op + ": " + op.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// forwardTarget is the context key of a forwarded request's target URL.
type forwardTarget struct{}
