package main

import (
	"os"
	"testing"

	"indelible.dev/internal/pgtest"
)

// benchDSN is the store of the benchmarks that measure PostgreSQL
// (TestClusterKill's takeover time, TestMigrateBench): a new database on
// the test binary's PostgreSQL, or, with INDELIBLE_PG_SYNC_STANDBY=1, the
// database of a primary with a synchronous streaming standby
// (pgtest.StartPair: every commit waits until the standby has flushed it),
// as docs/ha.md's production layout has.
func benchDSN(t *testing.T) string {
	t.Helper()
	if os.Getenv("INDELIBLE_PG_SYNC_STANDBY") == "1" {
		p := pgtest.StartPair(t)
		t.Logf("PostgreSQL: a primary with a synchronous standby (ports %d and %d)", p.PrimaryPort, p.StandbyPort)
		return p.Primary
	}
	return pgtest.DSN(t)
}
