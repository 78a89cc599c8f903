package ledger

import (
	"os"
	"testing"

	"indelible.dev/internal/pgtest"
)

// TestMain runs the package's tests on PostgreSQL when
// INDELIBLE_TEST_STORE=postgres (internal/pgtest): every log they open
// lives in a database of its own.
func TestMain(m *testing.M) {
	if pgtest.Enabled() {
		TestingStore = pgtest.ForDirs()
	}
	os.Exit(m.Run())
}

// pebbleOnly skips a test of pebble's own behaviour when the suite runs on
// PostgreSQL.
func pebbleOnly(t *testing.T, why string) {
	t.Helper()
	if TestingStore != nil {
		t.Skip("pebble only (INDELIBLE_TEST_STORE=postgres): " + why)
	}
}
