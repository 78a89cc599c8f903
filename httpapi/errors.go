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
	"strings"

	"github.com/labstack/echo/v4"

	"indelible.dev/audited"
	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/ledger"
	"indelible.dev/otlp"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
)

// statusTable is the one table mapping errors to HTTP status codes. The first
// row whose error matches (errors.Is) wins; unmatched errors are 500. Add rows
// here, never a status code in a handler.
//
// The retry rule: 503 (with Retry-After) and 429 are for conditions that
// pass by themselves, and only for them (retryHelps says which; a test
// holds every row to it and to client.RetryableStatus, so the server's
// table, the ledger's Retryable and the client's retries agree). A log
// that stopped on a storage failure, found its store corrupt, or learned
// from a witness that it lost data (ErrWitnessAhead) will not recover by
// itself, so those answer 500, which clients do not retry.
var statusTable = []struct {
	err    error
	status int
}{
	{errNotReady, http.StatusServiceUnavailable},
	{errShuttingDown, http.StatusServiceUnavailable},
	{errCheckpointWait, http.StatusServiceUnavailable},
	{errNotActive, http.StatusServiceUnavailable},
	{errNoActive, http.StatusServiceUnavailable},
	{errViewClosing, http.StatusServiceUnavailable},
	{ledger.ErrFailed, http.StatusInternalServerError},
	{ledger.ErrStoreUnavailable, http.StatusServiceUnavailable},
	{ledger.ErrCorrupt, http.StatusInternalServerError},
	{ledger.ErrPushback, http.StatusServiceUnavailable},
	{ledger.ErrDiskFull, http.StatusServiceUnavailable},
	{ledger.ErrClosed, http.StatusServiceUnavailable},
	{ledger.ErrNotWitnessed, http.StatusServiceUnavailable},
	{ledger.ErrWitnessAhead, http.StatusInternalServerError},
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
	{auth.ErrRateLimited, http.StatusTooManyRequests},
	{audited.ErrBusy, http.StatusServiceUnavailable},
	{audited.ErrClosed, http.StatusServiceUnavailable},
	{eventstore.ErrClosed, http.StatusServiceUnavailable},
	{event.ErrInvalid, http.StatusBadRequest},
	{event.ErrTooLarge, http.StatusRequestEntityTooLarge},
	{event.ErrContentType, http.StatusUnsupportedMediaType},
	{event.ErrReserved, http.StatusUnprocessableEntity},
	{otlp.ErrMalformed, http.StatusBadRequest},
	{otlp.ErrTooLarge, http.StatusRequestEntityTooLarge},
	{otlp.ErrContentType, http.StatusUnsupportedMediaType},
	{eventstore.ErrBadQuery, http.StatusBadRequest},
	{eventstore.ErrScanBudget, http.StatusUnprocessableEntity},
	{eventstore.ErrBadCursor, http.StatusBadRequest},
	{eventstore.ErrNotFound, http.StatusNotFound},
	{eventstore.ErrNotEvent, http.StatusNotFound},
	{eventstore.ErrGone, http.StatusGone},
	{eventstore.ErrBadErase, http.StatusBadRequest},
	{eventstore.ErrDuplicate, http.StatusConflict},
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
	// errNotReady wraps the reason /readyz fails.
	errNotReady = errors.New("not ready")
	// errShuttingDown is why /readyz fails during a graceful shutdown.
	errShuttingDown = errors.New("shutting down")
)

// passing are the errors, besides the ledger's retryable ones, of
// conditions that pass by themselves: a retry later can succeed.
var passing = []error{
	errNotReady, errShuttingDown, errCheckpointWait, witness.ErrBusy, errRateLimited, auth.ErrRateLimited,
	audited.ErrBusy, audited.ErrClosed, eventstore.ErrClosed, errNotActive, errNoActive, errViewClosing,
}

// retryHelps is the server's side of the one retry rule: whether the same
// request can succeed later, unchanged. The ledger's errors are
// ledger.Retryable's to decide (its fatal ones never help, whatever wraps
// them); the others are in passing. The status table answers 503 or 429
// exactly when it holds, and those are the statuses clients retry.
func retryHelps(err error) bool {
	// /readyz answers 503 whatever the reason: a probe keeps probing, and
	// a load balancer sends traffic elsewhere meanwhile.
	if errors.Is(err, errNotReady) || errors.Is(err, errShuttingDown) {
		return true
	}
	if errors.Is(err, ledger.ErrFailed) || errors.Is(err, ledger.ErrCorrupt) {
		return false
	}
	if ledger.Retryable(err) {
		return true
	}
	for _, p := range passing {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}

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

// unavailableMessage is the body text of a 503: the fixed texts of the
// table's errors that err wraps, in table order, and nothing else. A 503's
// chain may carry the text of a storage error (a ready check reporting why
// the log stopped); that detail is for the server's log, not for clients.
func unavailableMessage(err error) string {
	var parts []string
	for _, row := range statusTable {
		if errors.Is(err, row.err) {
			parts = append(parts, row.err.Error())
		}
	}
	if len(parts) == 0 {
		return http.StatusText(http.StatusServiceUnavailable)
	}
	return strings.Join(parts, ": ")
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
		if status == http.StatusServiceUnavailable && he == nil {
			msg = unavailableMessage(err)
		}
		if status >= 500 && status != http.StatusServiceUnavailable {
			logger.Error("http: internal error", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
			msg = "internal server error"
		}
		h := c.Response().Header()
		if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && h.Get("Retry-After") == "" {
			h.Set("Retry-After", retryAfterSeconds)
		}
		body, _ := json.Marshal(errorBody{Error: msg})
		if gb, ok := goneBody(err, msg); ok {
			body = gb
		}
		body = append(body, '\n')
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		c.Response().WriteHeader(status)
		if c.Request().Method != http.MethodHead {
			c.Response().Write(body)
		}
	}
}
