package pgkv_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/kvtest"
	"indelible.dev/ledger/kv/pgkv"
)

func TestConformance(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Store {
		s, _ := pgtest.Store(t)
		return s
	})
}

func open(t *testing.T, dsn string, epoch int64) *pgkv.Store {
	t.Helper()
	s, err := pgkv.Open(context.Background(), dsn, pgkv.Options{Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func set(s kv.Store, k, v string, adv *[2]kv.Head) error {
	b := s.NewBatch(0)
	defer b.Close()
	b.Set([]byte(k), []byte(v))
	if adv != nil {
		b.Advance(adv[0], adv[1])
	}
	return b.Commit(true)
}

// TestFenceEpoch: a store opened later takes the next epoch; the earlier
// one's commits, advancing or not, are refused and commit nothing.
func TestFenceEpoch(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := open(t, dsn, 0)
	if a.Epoch() != 1 {
		t.Fatalf("first open took epoch %d, want 1", a.Epoch())
	}
	if err := set(a, "k", "a", nil); err != nil {
		t.Fatal(err)
	}
	b := open(t, dsn, 0)
	if b.Epoch() != 2 {
		t.Fatalf("second open took epoch %d, want 2", b.Epoch())
	}
	if err := set(a, "k", "stale", nil); !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("stale node's commit: %v, want ErrFenced", err)
	}
	err := set(a, "k", "stale", &[2]kv.Head{{Size: -1}, {Size: 0, Root: []byte("r0")}})
	if !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("stale node's advancing commit: %v, want ErrFenced", err)
	}
	if err := set(b, "k", "b", &[2]kv.Head{{Size: -1}, {Size: 0, Root: []byte("r0")}}); err != nil {
		t.Fatal(err)
	}
	v, _, err := b.Get([]byte("k"))
	if err != nil || string(v) != "b" {
		t.Fatalf("k = %q, %v; want b", v, err)
	}
	h, ok, err := b.FenceHead(context.Background())
	if err != nil || !ok || h.Size != 0 || string(h.Root) != "r0" {
		t.Fatalf("fence head %+v %v %v", h, ok, err)
	}
	// SetEpoch: the cluster's takeover (epoch set in the store by it).
	if _, err := b.Pool().Exec(context.Background(), `UPDATE indelible_fence SET epoch = 7`); err != nil {
		t.Fatal(err)
	}
	if err := set(b, "k", "b2", nil); !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("commit under epoch 2 after the store moved to 7: %v", err)
	}
	b.SetEpoch(7)
	if err := set(b, "k", "b3", nil); err != nil {
		t.Fatal(err)
	}
}

// TestFenceHead: an advancing commit whose head is not the stored one
// commits nothing; the batches applied after a refused one are refused too.
func TestFenceHead(t *testing.T) {
	s, _ := pgtest.Store(t)
	h0 := kv.Head{Size: 0, Root: []byte("r0")}
	h1 := kv.Head{Size: 1, Root: []byte("r1")}
	if err := set(s, "a", "0", &[2]kv.Head{{Size: -1}, h0}); err != nil {
		t.Fatal(err)
	}
	if err := set(s, "a", "again", &[2]kv.Head{{Size: -1}, h0}); !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("second creation: %v, want ErrFenced", err)
	}
	if err := set(s, "a", "wrong-root", &[2]kv.Head{{Size: 0, Root: []byte("other")}, h1}); !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("wrong root: %v, want ErrFenced", err)
	}
	// Pipelined: the first is refused, the second (which extends it) too.
	b1 := s.NewBatch(0)
	b1.Set([]byte("a"), []byte("p1"))
	b1.Advance(h1, kv.Head{Size: 2, Root: []byte("r2")})
	b2 := s.NewBatch(0)
	b2.Set([]byte("a"), []byte("p2"))
	b2.Advance(kv.Head{Size: 2, Root: []byte("r2")}, kv.Head{Size: 3, Root: []byte("r3")})
	b1.Apply()
	b2.Apply()
	if err := b1.Wait(); !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("b1: %v", err)
	}
	if err := b2.Wait(); !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("b2: %v", err)
	}
	if err := set(s, "a", "1", &[2]kv.Head{h0, h1}); err != nil {
		t.Fatal(err)
	}
	v, _, err := s.Get([]byte("a"))
	if err != nil || string(v) != "1" {
		t.Fatalf("a = %q, %v; want 1", v, err)
	}
}

// TestPurgeVacuums: Purge vacuums the table (what erasure relies on after
// deleting a key: docs/ha.md).
func TestPurgeVacuums(t *testing.T) {
	s, _ := pgtest.Store(t)
	if err := set(s, "secret", "s", nil); err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch(0)
	b.Delete([]byte("secret"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(context.Background(), [][2][]byte{{[]byte("secret"), []byte("secreu")}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var vacuums int64
		err := s.Pool().QueryRow(context.Background(), `SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'indelible_kv'`).Scan(&vacuums)
		if err != nil {
			t.Fatal(err)
		}
		if vacuums > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("indelible_kv was never vacuumed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOpenExclusive: a store opened Exclusive holds the owner lock: a
// second Exclusive open of the database refuses (ErrBusy, naming the
// holder's session) and leaves the first one's epoch alone, so the first
// goes on committing; once the first is closed the lock is free. A cluster
// node's unexpired lease refuses it too.
func TestOpenExclusive(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	a, err := pgkv.Open(ctx, dsn, pgkv.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := set(a, "k", "a", nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = pgkv.Open(ctx, dsn, pgkv.Options{Exclusive: true})
	if !errors.Is(err, pgkv.ErrBusy) || !strings.Contains(err.Error(), "indelible") || !strings.Contains(err.Error(), "without a lease") {
		t.Fatalf("second exclusive open: %v, want ErrBusy naming the holder", err)
	}
	if d := time.Since(start); d < pgkv.OwnerWait || d > pgkv.OwnerWait+5*time.Second {
		t.Errorf("the refusal took %v: want about %v", d, pgkv.OwnerWait)
	}
	if err := set(a, "k", "a2", nil); err != nil {
		t.Fatalf("the first store after a refused second open: %v", err)
	}
	if h := fenceEpoch(t, a); h != a.Epoch() {
		t.Fatalf("fence epoch %d, the first store's %d: the refused open took an epoch", h, a.Epoch())
	}
	a.Close()
	b, err := pgkv.Open(ctx, dsn, pgkv.Options{Exclusive: true})
	if err != nil {
		t.Fatalf("exclusive open after the holder closed: %v", err)
	}
	// A cluster node holding an unexpired lease.
	if _, err := b.Pool().Exec(ctx, `INSERT INTO indelible_lease (node, url, epoch, expires_at) VALUES ('n1', 'http://n1.test', 9, now() + interval '1 minute')`); err != nil {
		t.Fatal(err)
	}
	b.Close()
	_, err = pgkv.Open(ctx, dsn, pgkv.Options{Exclusive: true})
	if !errors.Is(err, pgkv.ErrBusy) || !strings.Contains(err.Error(), "n1") {
		t.Fatalf("exclusive open under a cluster node's lease: %v, want ErrBusy naming n1", err)
	}
	if _, err := pgkv.Open(ctx, dsn, pgkv.Options{Epoch: 10}); err != nil {
		t.Fatalf("a cluster node's open (its epoch given): %v", err)
	}
}

func fenceEpoch(t *testing.T, s *pgkv.Store) int64 {
	t.Helper()
	var e int64
	if err := s.Pool().QueryRow(context.Background(), `SELECT epoch FROM indelible_fence`).Scan(&e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestOpenFrozenFenceRow: a frozen node's open transaction holding the fence
// row's lock does not block Open: a cluster node's open (its epoch given)
// does not touch the row; a single node's, which must bump the epoch, gives
// up after the store's timeout with an error that says why.
func TestOpenFrozenFenceRow(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	s, err := pgkv.Open(ctx, dsn, pgkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE indelible_fence SET epoch = epoch`); err != nil {
		t.Fatal(err)
	}
	octx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	c, err := pgkv.Open(octx, dsn, pgkv.Options{Epoch: 5, Timeout: time.Second})
	if err != nil {
		t.Fatalf("a cluster node's open under the frozen node's lock: %v after %v", err, time.Since(start))
	}
	c.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a cluster node's open took %v", d)
	}
	start = time.Now()
	_, err = pgkv.Open(octx, dsn, pgkv.Options{Exclusive: true, Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "frozen node") {
		t.Fatalf("a single node's open under the frozen node's lock: %v after %v", err, time.Since(start))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a single node's open gave up after %v: want about its 1s timeout", d)
	}
}
