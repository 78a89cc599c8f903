package ledger

import (
	"testing"
	"time"

	"indelible.dev/internal/tlogtest"
)

// waitUntil waits up to 10 s for cond, failing the test with what otherwise.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tlogtest.Eventually(t, 10*time.Second, what, func() (bool, string) { return cond(), "" })
}
