//go:build !unix

package pgtest

import (
	"context"
	"errors"
	"os"
	"testing"

	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pgkv"
)

// Enabled reports whether the test suite is asked to run on PostgreSQL.
func Enabled() bool { return os.Getenv("INDELIBLE_TEST_STORE") == "postgres" }

// Bin returns "": the test cluster runs on Unix only.
func Bin() string { return "" }

// Need skips t (fails it when CI=true): the test cluster runs on Unix only.
func Need(t testing.TB) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("the PostgreSQL test cluster runs on Unix only")
	}
	t.Skip("the PostgreSQL test cluster runs on Unix only")
}

// DSN skips t: see Need.
func DSN(t testing.TB) string { Need(t); return "" }

// Store skips t: see Need.
func Store(t testing.TB) (*pgkv.Store, string) { Need(t); return nil, "" }

// ForDirs returns a function that fails: see Need.
func ForDirs() func(dir string) (kv.Store, error) {
	return func(string) (kv.Store, error) {
		return nil, errors.New("the PostgreSQL test cluster runs on Unix only")
	}
}

// PostmasterPID skips t: see Need.
func PostmasterPID(t testing.TB) string { Need(t); return "" }

// StandbyName is the standby's application_name (see the Unix build).
const StandbyName = "pgtest_standby"

// A Pair is a primary with a synchronous standby: Unix only.
type Pair struct {
	Primary, Standby         string
	PrimaryPort, StandbyPort int
}

// StartPair skips t: see Need.
func StartPair(t testing.TB) *Pair { Need(t); return nil }

// MultiHost returns "": see Need.
func (p *Pair) MultiHost() string { return "" }

// KillPrimary does nothing: see Need.
func (p *Pair) KillPrimary() {}

// Promote does nothing: see Need.
func (p *Pair) Promote() {}

// SetPrimary does nothing: see Need.
func (p *Pair) SetPrimary(name, value string) {}

// Logs returns "": see Need.
func (p *Pair) Logs() string { return "" }

// WithSyncStandby reports false: see Need.
func (p *Pair) WithSyncStandby(ctx context.Context) (bool, error) { return false, nil }

// FreezeStandby does nothing: see Need.
func (p *Pair) FreezeStandby() (thaw func()) { return func() {} }
