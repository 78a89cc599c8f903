//go:build unix

package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPair checks what StartPair promises: the standby is the primary's
// synchronous standby (a commit on the primary does not return while the
// standby is frozen, and returns once it runs again), and after the
// primary is SIGKILLed and the standby promoted, every committed row is on
// the promoted standby, which accepts writes, also through MultiHost.
func TestPair(t *testing.T) {
	p := StartPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if ok, err := p.WithSyncStandby(ctx); err != nil || !ok {
		t.Fatalf("no synchronous standby: %v %v", ok, err)
	}
	conn, err := pgx.Connect(ctx, p.Primary)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (n int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := conn.Exec(ctx, "INSERT INTO t VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
	}

	// Freeze the standby: a commit on the primary waits for it.
	thaw := p.FreezeStandby()
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "INSERT INTO t VALUES (100)")
		done <- err
	}()
	select {
	case err := <-done:
		thaw()
		t.Fatalf("a commit returned while the synchronous standby was frozen (%v)", err)
	case <-time.After(1500 * time.Millisecond):
	}
	thaw()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the commit never returned after the standby resumed")
	}

	p.KillPrimary()
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("the killed primary still answers")
	}
	p.Promote()
	for _, dsn := range []string{p.Standby, p.MultiHost()} {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
		var n, max int
		if err := c.QueryRow(ctx, "SELECT count(*), max(n) FROM t").Scan(&n, &max); err != nil {
			t.Fatal(err)
		}
		if n != 101 || max != 100 {
			t.Fatalf("%s: %d rows up to %d after the failover, want 101 up to 100", dsn, n, max)
		}
		if _, err := c.Exec(ctx, "INSERT INTO t VALUES ($1)", 1000+n); err != nil {
			// The second round inserts a new key as well.
			t.Fatalf("%s: the promoted standby refuses a write: %v", dsn, err)
		}
		if _, err := c.Exec(ctx, "DELETE FROM t WHERE n >= 1000"); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	}
}
