// Package httpapi speaks HTTP for Indelible: thin echo handlers for the log
// (c2sp.org/tlog-tiles reads, proofs, appends), the witness
// (c2sp.org/tlog-witness) and operations, and the one table mapping errors to
// status codes. It is the only package that imports echo.
package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/events"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
)

// statusTable is the one table mapping errors to HTTP status codes. The first
// row whose error matches (errors.Is) wins; unmatched errors are 500. Add rows
// here, never a status code in a handler.
var statusTable = []struct {
	err    error
	status int
}{
	{ledger.ErrPushback, http.StatusServiceUnavailable},
	{ledger.ErrDiskFull, http.StatusServiceUnavailable},
	{ledger.ErrFailed, http.StatusServiceUnavailable},
	{ledger.ErrClosed, http.StatusServiceUnavailable},
	{ledger.ErrNotFound, http.StatusNotFound},
	{ledger.ErrEntryTooLarge, http.StatusRequestEntityTooLarge},
	{ledger.ErrRange, http.StatusBadRequest},
	{itlog.ErrMalformedTilePath, http.StatusNotFound},
	{itlog.ErrMalformedCheckpoint, http.StatusBadRequest},
	{errBadRequest, http.StatusBadRequest},
	{errTooLarge, http.StatusRequestEntityTooLarge},
	{witness.ErrUnknownLog, http.StatusNotFound},
	{witness.ErrNoCheckpoint, http.StatusNotFound},
	{witness.ErrUntrusted, http.StatusForbidden},
	{witness.ErrForked, http.StatusForbidden},
	{witness.ErrOldSize, http.StatusBadRequest},
	{witness.ErrMalformed, http.StatusBadRequest},
	{witness.ErrInconsistent, http.StatusUnprocessableEntity},
	{errAdminOnly, http.StatusForbidden},
	{errWitnessPath, http.StatusNotFound},
	{witness.ErrBusy, http.StatusServiceUnavailable},
	{errRateLimited, http.StatusTooManyRequests},
	{event.ErrInvalid, http.StatusBadRequest},
	{event.ErrTooLarge, http.StatusRequestEntityTooLarge},
	{event.ErrContentType, http.StatusUnsupportedMediaType},
	{events.ErrBadQuery, http.StatusBadRequest},
	{events.ErrBadCursor, http.StatusBadRequest},
	{events.ErrNotFound, http.StatusNotFound},
	{events.ErrNotEvent, http.StatusNotFound},
	{events.ErrDuplicate, http.StatusConflict},
	{auth.ErrUnauthenticated, http.StatusUnauthorized},
	{auth.ErrForbidden, http.StatusForbidden},
	{auth.ErrExists, http.StatusConflict},
	{auth.ErrNoToken, http.StatusNotFound},
	{auth.ErrInvalid, http.StatusBadRequest},
}

var (
	// errBadRequest wraps every malformed-parameter error of a handler.
	errBadRequest = errors.New("bad request")
	// errTooLarge wraps request bodies over their limit.
	errTooLarge = errors.New("request body too large")
)

// retryAfterSeconds is the Retry-After value sent with every 503: pushback
// clears within a commit or two, and a stopped log is retried slowly by
// well-behaved clients anyway.
const retryAfterSeconds = "1"

// statusOf returns the HTTP status for err.
func statusOf(err error) int {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return he.Code
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	for _, row := range statusTable {
		if errors.Is(err, row.err) {
			return row.status
		}
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error string `json:"error"`
}

// errorHandler returns echo's HTTPErrorHandler for Indelible: the status from
// statusTable, a JSON body {"error": "..."} naming the problem, and
// Retry-After on 503. Internal errors are logged and answered with a generic
// message, so storage details do not leak to clients.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status := statusOf(err)
		msg := err.Error()
		var he *echo.HTTPError
		if errors.As(err, &he) {
			if m, ok := he.Message.(string); ok {
				msg = m
			} else {
				msg = http.StatusText(he.Code)
			}
		}
		if status >= 500 && status != http.StatusServiceUnavailable {
			logger.Error("http: internal error", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
			msg = "internal server error"
		}
		h := c.Response().Header()
		if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
			h.Set("Retry-After", retryAfterSeconds)
		}
		body, _ := json.Marshal(errorBody{Error: msg})
		body = append(body, '\n')
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		c.Response().WriteHeader(status)
		if c.Request().Method != http.MethodHead {
			c.Response().Write(body)
		}
	}
}
