package pgkv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"indelible.dev/internal/pgtest"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pgkv"
)

// ownerPID returns the backend holding the store's owner lock, or 0.
func ownerPID(t *testing.T, s *pgkv.Store) int {
	t.Helper()
	var pid int
	err := s.Pool().QueryRow(context.Background(), `SELECT pid FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid`, int64(pgkv.OwnerLock)).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestOwnerLockKept: a single node whose owner-lock session is lost (a
// database restart or failover ends it) takes the lock again, so a second
// node still cannot start and fence it; if another session takes the lock
// first, the store fences itself.
func TestOwnerLockKept(t *testing.T) {
	defer pgkv.SetOwnerCheck(100 * time.Millisecond)()
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	a, err := pgkv.Open(ctx, dsn, pgkv.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	first := ownerPID(t, a)
	if first == 0 {
		t.Fatal("no session holds the owner lock")
	}
	if _, err := a.Pool().Exec(ctx, `SELECT pg_terminate_backend($1, 5000)`, first); err != nil {
		t.Fatal(err)
	}
	tlogtest.Eventually(t, 10*time.Second, "the owner lock taken again", func() (bool, string) {
		pid := ownerPID(t, a)
		return pid != 0 && pid != first, ""
	})
	if _, err := pgkv.Open(ctx, dsn, pgkv.Options{Exclusive: true}); !errors.Is(err, pgkv.ErrBusy) {
		t.Fatalf("a second node after the lock was taken again: %v, want ErrBusy", err)
	}
	if err := set(a, "k", "v", nil); err != nil {
		t.Fatalf("a commit after the lock was taken again: %v", err)
	}

	a.Close()

	// The session lost, and another takes the lock before the store can:
	// the store fences itself. (Its own checks are an hour apart: the
	// test runs the check.)
	pgkv.SetOwnerCheck(time.Hour)
	b, err := pgkv.Open(ctx, dsn, pgkv.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend($1, 5000), pg_advisory_lock($2)`, ownerPID(t, b), int64(pgkv.OwnerLock)); err != nil {
		t.Fatal(err)
	}
	if b.CheckOwner() || b.Epoch() != -1 {
		t.Fatalf("the check with another session holding the owner lock: epoch %d, want the store fenced", b.Epoch())
	}
	if err := set(b, "k", "v2", nil); !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("a commit with another session holding the owner lock: %v, want ErrFenced", err)
	}
}
