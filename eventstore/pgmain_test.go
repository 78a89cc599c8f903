package eventstore

import (
	"os"
	"testing"

	"indelible.dev/internal/pgtest"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

// TestMain runs the package's tests on PostgreSQL when
// INDELIBLE_TEST_STORE=postgres (internal/pgtest): every log they open
// lives in a database of its own.
func TestMain(m *testing.M) {
	if pgtest.Enabled() {
		ledger.TestingStore = pgtest.ForDirs()
	}
	code := m.Run()
	if listEnv != nil { // BenchmarkList's store: closed and removed
		listEnv.close()
		os.RemoveAll(listEnv.dir)
	}
	os.Exit(code)
}

// pebbleOnly skips a test of the pebble store's own files when the suite
// runs on PostgreSQL.
func pebbleOnly(t *testing.T, why string) {
	t.Helper()
	if ledger.TestingStore != nil {
		t.Skip("pebble only (INDELIBLE_TEST_STORE=postgres): " + why)
	}
}

// notInStoreFiles checks that no file of a copy of the pebble store in dir
// holds any of the values; on PostgreSQL there are no such files (the
// erasure's check there is the database's: docs/ha.md).
func notInStoreFiles(t *testing.T, dir string, values map[string][]byte) {
	t.Helper()
	if ledger.TestingStore != nil {
		t.Log("the store is in PostgreSQL: no pebble files to check")
		return
	}
	tlogtest.CheckNotInFiles(t, copyDir(t, dir), values)
}

// storeCopy returns a copy of the pebble store in dir after checking that no
// file of it holds any of the values. On PostgreSQL it returns dir itself:
// the test reopens the same database once it has closed the store, and its
// scan of every stored value is the check.
func storeCopy(t *testing.T, dir string, values map[string][]byte) string {
	t.Helper()
	if ledger.TestingStore != nil {
		return dir
	}
	cp := copyDir(t, dir)
	tlogtest.CheckNotInFiles(t, cp, values)
	return cp
}
