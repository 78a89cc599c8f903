package httpapi

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"indelible.dev/alert"
	"indelible.dev/api"
	"indelible.dev/auth"
	"indelible.dev/eventstore"
)

// routeAlerts lists the recent alert firings (docs/alerts.md).
const routeAlerts = "/v1/alerts"

// alertParams are the query parameters GET /v1/alerts takes.
var alertParams = map[string]bool{"limit": true, "cursor": true, "since": true, "until": true}

// mountAlerts registers GET /v1/alerts (read scope, audited).
func (s *Server) mountAlerts(l *eventstore.Layer, tokens *auth.Store) {
	h := &eventHandlers{s: s, l: l, tokens: tokens}
	s.route(http.MethodGet, routeAlerts, requireScope(tokens, auth.ScopeRead, h.serveAlerts))
}

// serveAlerts answers the recent indelible.alert.fired events, newest first,
// as records like GET /v1/events (limit, cursor, since, until as there).
func (h *eventHandlers) serveAlerts(c echo.Context) error {
	v, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return fmt.Errorf("%w: malformed query string: %v", errBadRequest, err)
	}
	for k := range v {
		if !alertParams[k] {
			return fmt.Errorf("%w: unknown parameter %q (want limit, cursor, since, until)", errBadRequest, k)
		}
	}
	q, err := api.ParseQuery(v)
	if err != nil {
		return err
	}
	q.Action = alert.ActionFired
	audited, err := h.s.auditRead(c, queryMeta(routeAlerts, v))
	if err != nil {
		return err
	}
	page, err := h.l.List(q)
	if err := audited(); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return writePage(c, page)
}
