package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"indelible.dev/client"
	"indelible.dev/ledger"
)

// TestOneRetryRule (issue 19.6): the status table, the ledger's Retryable
// and the client's retries state one rule. For every row of the table:
// the status is one the client retries exactly when retryHelps says a
// retry can help, and for the ledger's errors retryHelps is
// ledger.Retryable; the answer carries Retry-After exactly then. A
// witness that knows a larger tree (ErrWitnessAhead: the log lost data or
// its key signed another history) is fatal: 500, not retried.
func TestOneRetryRule(t *testing.T) {
	e := echo.New()
	for _, row := range statusTable {
		err := fmt.Errorf("handler: %w", row.err)
		helps := retryHelps(err)
		if got := client.RetryableStatus(row.status); got != helps {
			t.Errorf("%v: status %d (client retries: %v), but retryHelps = %v", row.err, row.status, got, helps)
		}
		if isLedgerError(row.err) && !errors.Is(row.err, ledger.ErrNotFound) && !errors.Is(row.err, ledger.ErrRange) &&
			!errors.Is(row.err, ledger.ErrEntryTooLarge) && helps != ledger.Retryable(row.err) {
			t.Errorf("%v: retryHelps %v, ledger.Retryable %v", row.err, helps, ledger.Retryable(row.err))
		}
		rec := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest(http.MethodGet, "/x", nil), rec)
		errorHandler(slog.New(slog.DiscardHandler))(err, c)
		if rec.Code != row.status || (rec.Header().Get("Retry-After") != "") != helps {
			t.Errorf("%v: answered %d, Retry-After %q; want %d, Retry-After iff %v", row.err, rec.Code, rec.Header().Get("Retry-After"), row.status, helps)
		}
	}
	if statusOf(ledger.ErrWitnessAhead) != http.StatusInternalServerError || ledger.Retryable(ledger.ErrWitnessAhead) {
		t.Error("ErrWitnessAhead is not fatal")
	}
	// A fatal error wrapped in a passing one stays fatal (but /readyz's
	// "not ready" is 503 whatever the cause: the probe retries).
	if retryHelps(fmt.Errorf("%w: %w", ledger.ErrPushback, ledger.ErrFailed)) {
		t.Error("a failed log wrapped in pushback is retryable")
	}
	if !retryHelps(fmt.Errorf("%w: %w", errNotReady, ledger.ErrFailed)) || statusOf(fmt.Errorf("%w: %w", errNotReady, ledger.ErrFailed)) != 503 {
		t.Error("/readyz with a failed log is not a 503")
	}
}

// isLedgerError reports whether err is one of the ledger's sentinels.
func isLedgerError(err error) bool {
	for _, le := range []error{ledger.ErrFailed, ledger.ErrCorrupt, ledger.ErrPushback, ledger.ErrDiskFull, ledger.ErrClosed,
		ledger.ErrNotWitnessed, ledger.ErrWitnessAhead, ledger.ErrNotFound, ledger.ErrEntryTooLarge, ledger.ErrRange} {
		if err == le {
			return true
		}
	}
	return false
}
