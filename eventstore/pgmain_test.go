package eventstore

import (
	"os"
	"testing"

	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger"
)

// TestMain runs the package's tests on PostgreSQL when
// INDELIBLE_TEST_STORE=postgres (internal/pgtest): every log they open
// lives in a database of its own.
func TestMain(m *testing.M) {
	if pgtest.Enabled() {
		ledger.TestingStore = pgtest.ForDirs()
	}
	os.Exit(m.Run())
}

// pebbleOnly skips a test of the pebble store's own files when the suite
// runs on PostgreSQL.
func pebbleOnly(t *testing.T, why string) {
	t.Helper()
	if ledger.TestingStore != nil {
		t.Skip("pebble only (INDELIBLE_TEST_STORE=postgres): " + why)
	}
}
