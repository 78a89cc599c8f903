package export

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
