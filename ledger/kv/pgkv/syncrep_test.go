package pgkv_test

import (
	"errors"
	"testing"
	"time"

	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger/kv"
)

// TestSyncRepCancelled: a commit waiting for its synchronous standby whose
// wait is cancelled (pg_cancel_backend: PostgreSQL then ends the wait with
// a WARNING and reports the COMMIT as successful, though the standby may
// never have it) is not a success: it is ambiguous, so the node stops
// instead of acknowledging what a failover could lose.
func TestSyncRepCancelled(t *testing.T) {
	pair := pgtest.StartPairWith(t, pgtest.PairOptions{Cuttable: true})
	s := open(t, pair.Primary, 0)
	if err := set(s, "before", "x", nil); err != nil {
		t.Fatal(err)
	}
	pair.CutStandby()
	done := make(chan error, 1)
	go func() { done <- set(s, "k", "waits for the standby", nil) }()
	// Find the session waiting for the standby and cancel its wait.
	var cancelled int64
	for deadline := time.Now().Add(10 * time.Second); cancelled == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no session waits for the standby")
		}
		cancelled = pgtest.QueryInt(t, pair.Primary, `SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`)
	}
	select {
	case err := <-done:
		if !errors.Is(err, kv.ErrAmbiguous) {
			t.Fatalf("a commit whose wait for the standby was cancelled: %v, want kv.ErrAmbiguous", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the commit still waits after its wait was cancelled")
	}
}
