// Package httpapi speaks HTTP for Indelible: thin echo handlers for the log
// (c2sp.org/tlog-tiles reads, proofs, appends), the witness
// (c2sp.org/tlog-witness) and operations, and the one table mapping errors to
// status codes. It is the only package that imports echo.
package httpapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

// statusTable is the one table mapping errors to HTTP status codes. The first
// row whose error matches (errors.Is) wins; unmatched errors are 500. Add rows
// here, never a status code in a handler.
var statusTable = []struct {
	err    error
	status int
}{
	{ledger.ErrPushback, http.StatusServiceUnavailable},
	{ledger.ErrFailed, http.StatusServiceUnavailable},
	{ledger.ErrClosed, http.StatusServiceUnavailable},
	{ledger.ErrNotFound, http.StatusNotFound},
	{ledger.ErrEntryTooLarge, http.StatusRequestEntityTooLarge},
	{ledger.ErrRange, http.StatusBadRequest},
	{itlog.ErrMalformedTilePath, http.StatusNotFound},
	{itlog.ErrMalformedCheckpoint, http.StatusBadRequest},
	{errBadRequest, http.StatusBadRequest},
	{errTooLarge, http.StatusRequestEntityTooLarge},
}

var (
	// errBadRequest wraps every malformed-parameter error of a handler.
	errBadRequest = errors.New("bad request")
	// errTooLarge wraps request bodies over their limit.
	errTooLarge = errors.New("request body too large")
)

// statusOf returns the HTTP status for err.
func statusOf(err error) int {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return he.Code
	}
	for _, row := range statusTable {
		if errors.Is(err, row.err) {
			return row.status
		}
	}
	return http.StatusInternalServerError
}
