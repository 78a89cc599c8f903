package pgkv_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pgkv"
)

// traced is a pgx tracer that records each commit's statements (a commit
// calls the connection's BatchTracer) as "verb tag|error".
type traced struct {
	mu      sync.Mutex
	batches [][]string
}

func (r *traced) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.mu.Lock()
	r.batches = append(r.batches, nil)
	r.mu.Unlock()
	return ctx
}

func (r *traced) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	verb, _, _ := strings.Cut(d.SQL, " ")
	if strings.Contains(d.SQL, "ON CONFLICT") {
		verb = "UPSERT"
	}
	res := d.CommandTag.String()
	if d.Err != nil {
		res = "error " + d.Err.Error()
	}
	r.mu.Lock()
	r.batches[len(r.batches)-1] = append(r.batches[len(r.batches)-1], verb+" "+res)
	r.mu.Unlock()
}

func (r *traced) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (r *traced) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (r *traced) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *traced) take() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.batches
	r.batches = nil
	return b
}

// openTraced opens a store on a new database whose pool has a tracer.
func openTraced(t *testing.T, epoch int64) (*pgkv.Store, *traced, string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	cfg, err := pgkv.Config(dsn)
	if err != nil {
		t.Fatal(err)
	}
	tr := &traced{}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := pgkv.Open(context.Background(), "", pgkv.Options{Pool: pool, Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, tr, dsn
}

// TestInsertPlain: inserted keys go as a plain INSERT, other sets as an
// upsert, in one pipeline with the fence; a commit inserting a stored key
// is refused by the server (a unique violation: nothing committed) and
// sent again with upserts only, and then holds every write.
func TestInsertPlain(t *testing.T) {
	s, tr, _ := openTraced(t, 0)
	b := s.NewBatch(0)
	for i := range 10 {
		b.Insert(fmt.Appendf(nil, "new%d", i), []byte("v"))
	}
	b.Set([]byte("state"), []byte("1"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	got := tr.take()
	if want := "[[INSERT INSERT 0 10 UPSERT INSERT 0 1 SELECT SELECT 1]]"; fmt.Sprint(got) != want {
		t.Fatalf("statements %v, want %s", got, want)
	}

	b = s.NewBatch(0)
	b.Insert([]byte("new3"), []byte("again"))
	b.Insert([]byte("new10"), []byte("v"))
	b.Set([]byte("state"), []byte("2"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	got = tr.take()
	if len(got) != 2 || !strings.HasPrefix(got[0][0], "INSERT error") || !strings.Contains(got[0][0], "23505") ||
		fmt.Sprint(got[1]) != "[UPSERT INSERT 0 3 SELECT SELECT 1]" {
		t.Fatalf("statements %v: want the insert's unique violation, then one upsert of the 3 keys and the fence", got)
	}
	for k, v := range map[string]string{"new3": "again", "new10": "v", "state": "2", "new9": "v"} {
		if got, _, err := s.Get([]byte(k)); err != nil || string(got) != v {
			t.Fatalf("%s = %q, %v; want %q", k, got, err, v)
		}
	}
}

// TestInsertFenced: a stale node's commit that inserts a stored key is
// refused as fenced (its second, upsert-only attempt meets the fence) and
// commits nothing; pipelined after it, a batch extending it commits
// nothing either.
func TestInsertFenced(t *testing.T) {
	a, _, dsn := openTraced(t, 0)
	if err := set(a, "k", "a", nil); err != nil {
		t.Fatal(err)
	}
	open(t, dsn, 0) // takes the next epoch
	b1 := a.NewBatch(0)
	b1.Insert([]byte("k"), []byte("stale"))
	b1.Insert([]byte("n"), []byte("stale"))
	b1.Advance(kv.Head{Size: -1}, kv.Head{Size: 0, Root: []byte("r0")})
	b2 := a.NewBatch(0)
	b2.Insert([]byte("m"), []byte("stale"))
	b2.Advance(kv.Head{Size: 0, Root: []byte("r0")}, kv.Head{Size: 1, Root: []byte("r1")})
	b1.Apply()
	b2.Apply()
	if err := b1.Wait(); !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("stale commit inserting a stored key: %v, want ErrFenced", err)
	}
	if err := b2.Wait(); !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("the batch after it: %v, want ErrFenced", err)
	}
	if v, _, err := a.Get([]byte("k")); err != nil || string(v) != "a" {
		t.Fatalf("k = %q, %v; want a", v, err)
	}
	for _, k := range []string{"n", "m"} {
		if _, _, err := a.Get([]byte(k)); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("%s: %v, want not found", k, err)
		}
	}
}
