package httpapi

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"indelible.dev/auth"
	"indelible.dev/eventstore"
)

// routeBundle serves evidence bundles (docs/evidence.md).
const routeBundle = "/v1/bundle"

// MaxConcurrentBundles bounds the bundles built at once: each keeps a core
// busy and a spool file the size of its records. Further requests wait for
// a slot (or for their client to give up).
const MaxConcurrentBundles = 2

// bundleKeys are the verifier keys a bundle's manifest names (the server's
// configuration; a verifier uses its own).
type bundleKeys struct {
	log       string
	witnesses []string
	quorum    int
}

// mountBundle registers GET /v1/bundle (read scope, audited) when cfg serves
// events. The manifest's keys come from cfg.Console, which carries them.
func (s *Server) mountBundle(cfg Config) {
	if cfg.Events == nil || cfg.Tokens == nil {
		return
	}
	var keys bundleKeys
	if cfg.Console != nil {
		keys = bundleKeys{cfg.Console.LogVKey, cfg.Console.WitnessVKeys, cfg.Console.Quorum}
		if keys.quorum == 0 {
			keys.quorum = len(keys.witnesses)
		}
	}
	h := &bundleHandler{s: s, l: cfg.Events, keys: keys, slots: make(chan struct{}, MaxConcurrentBundles)}
	s.route(http.MethodGet, routeBundle, requireScope(cfg.Tokens, auth.ScopeRead, h.serve))
}

type bundleHandler struct {
	s     *Server
	l     *eventstore.Layer
	keys  bundleKeys
	slots chan struct{} // a token per bundle being built
}

// parseBundleRequest reads ?since=&until= or ?from=&to=, and the optional
// size and pinned_size.
func parseBundleRequest(q url.Values) (eventstore.BundleRequest, error) {
	var req eventstore.BundleRequest
	num := func(name string) (int64, bool, error) {
		if !q.Has(name) {
			return 0, false, nil
		}
		v := q.Get(name)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || (len(v) > 1 && v[0] == '0') || v[0] == '+' {
			return 0, false, fmt.Errorf("%w: parameter %s: %q is not a decimal index or size", errBadRequest, name, v)
		}
		return n, true, nil
	}
	tm := func(name string) (time.Time, error) {
		t, err := time.Parse(time.RFC3339Nano, q.Get(name))
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: parameter %s: %q is not an RFC 3339 time", errBadRequest, name, q.Get(name))
		}
		return t, nil
	}
	byTime := q.Has("since") || q.Has("until")
	byIndex := q.Has("from") || q.Has("to")
	var err error
	switch {
	case byTime && byIndex:
		return req, fmt.Errorf("%w: give since and until, or from and to, not both", errBadRequest)
	case byTime:
		if !q.Has("since") || !q.Has("until") {
			return req, fmt.Errorf("%w: a time window needs both since and until", errBadRequest)
		}
		req.ByTime = true
		if req.Since, err = tm("since"); err != nil {
			return req, err
		}
		if req.Until, err = tm("until"); err != nil {
			return req, err
		}
	case byIndex:
		if !q.Has("from") || !q.Has("to") {
			return req, fmt.Errorf("%w: an index range needs both from and to", errBadRequest)
		}
		if req.From, _, err = num("from"); err != nil {
			return req, err
		}
		if req.To, _, err = num("to"); err != nil {
			return req, err
		}
	default:
		return req, fmt.Errorf("%w: give since and until (a time window) or from and to (an index range)", errBadRequest)
	}
	if req.Size, req.HasSize, err = num("size"); err != nil {
		return req, err
	}
	if req.PinnedSize, req.HasPin, err = num("pinned_size"); err != nil {
		return req, err
	}
	return req, nil
}

// serve streams the bundle. The plan (checkpoint, range) is resolved and
// the read recorded before the first byte; the bundle is then written as it
// is built, each write with a fresh deadline. A failure after the first byte
// aborts the connection, so a client never takes a truncated bundle for a
// whole one.
func (h *bundleHandler) serve(c echo.Context) error {
	q, err := queryParams(c, "since", "until", "from", "to", "size", "pinned_size")
	if err != nil {
		return err
	}
	req, err := parseBundleRequest(q)
	if err != nil {
		return err
	}
	req.LogKey, req.WitnessKeys, req.Quorum = h.keys.log, h.keys.witnesses, h.keys.quorum
	plan, err := h.l.PlanBundle(req)
	if errors.Is(err, eventstore.ErrBadBundle) {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if err != nil {
		return err
	}
	wait, err := h.s.auditRead(c, queryMeta(routeBundle, q))
	if err != nil {
		return err
	}
	if err := wait(); err != nil {
		return err
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	case <-c.Request().Context().Done():
		return c.Request().Context().Err()
	}
	resp := c.Response()
	hdr := resp.Header()
	hdr.Set("Content-Type", "application/x-tar")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="bundle-%d-%d-%d.tar"`, plan.Begin(), plan.End(), plan.Size()))
	rc := http.NewResponseController(resp.Writer)
	// No deadline while the records are digested (no byte is written
	// then); each write below sets its own.
	rc.SetWriteDeadline(time.Time{})
	dw := &deadlineWriter{w: resp, rc: rc}
	bw := bufio.NewWriterSize(dw, 64<<10)
	started := false
	err = plan.Write(c.Request().Context(), bw, func(n int64) {
		if n >= 0 {
			hdr.Set("Content-Length", strconv.FormatInt(n, 10))
		}
		resp.WriteHeader(http.StatusOK)
		started = true
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		if !started {
			return err
		}
		h.s.logger.Warn("http: evidence bundle aborted", "begin", plan.Begin(), "end", plan.End(), "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// deadlineWriter gives each write its own WriteTimeout, so a bundle of any
// size streams while a stalled reader is still cut off.
type deadlineWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(WriteTimeout))
	return d.w.Write(p)
}
