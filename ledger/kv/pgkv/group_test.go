package pgkv_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pgkv"
)

// holdFence locks the fence row from another session, so that the next
// commit stops at its fence statement, in flight; release lets it go on.
func holdFence(t *testing.T, dsn string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM indelible_fence FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			tx.Rollback(ctx)
			conn.Close(ctx)
		}
	}
	t.Cleanup(release)
	return release
}

// waitBlocked waits until a session of the database waits on a lock.
func waitBlocked(t *testing.T, dsn string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if pgtest.QueryInt(t, dsn, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no commit waits on the fence row")
		}
	}
}

// inFlight starts a commit that stays in flight (at its fence statement)
// until release is called, and returns it.
func inFlight(t *testing.T, s *pgkv.Store, dsn, key string, adv *[2]kv.Head) (b kv.Batch, release func()) {
	t.Helper()
	release = holdFence(t, dsn)
	b = s.NewBatch(0)
	b.Set([]byte(key), []byte("first"))
	if adv != nil {
		b.Advance(adv[0], adv[1])
	}
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	waitBlocked(t, dsn)
	return b, release
}

func head(n int64) kv.Head { return kv.Head{Size: n, Root: fmt.Appendf(nil, "r%d", n)} }

// TestGroupCommit: the batches applied while a commit is in flight go
// together in the next transaction (one commit, each batch's fence
// statement in it), in order, and each caller gets its outcome.
func TestGroupCommit(t *testing.T) {
	s, tr, dsn := openTraced(t, 0)
	b0, release := inFlight(t, s, dsn, "k0", &[2]kv.Head{{Size: -1}, head(0)})
	var group []kv.Batch
	for i := range 4 {
		b := s.NewBatch(0)
		b.Insert(fmt.Appendf(nil, "new%d", i), []byte("v"))
		b.Set([]byte("shared"), fmt.Appendf(nil, "%d", i)) // the last one's value wins
		if i%2 == 0 {
			b.Advance(head(int64(i)), head(int64(i+2)))
		}
		if i == 3 {
			b.Delete([]byte("new1"))
		}
		if err := b.Apply(); err != nil {
			t.Fatal(err)
		}
		group = append(group, b)
	}
	release()
	if err := b0.Wait(); err != nil {
		t.Fatal(err)
	}
	for i, b := range group {
		if err := b.Wait(); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	got := tr.take()
	if len(got) != 2 {
		t.Fatalf("%d transactions, want 2 (the one in flight, then the group): %v", len(got), got)
	}
	if want := "[DELETE DELETE 0 INSERT INSERT 0 3 UPSERT INSERT 0 1 WITH SELECT 1 SELECT SELECT 1 WITH SELECT 1 SELECT SELECT 1]"; fmt.Sprint(got[1]) != want {
		t.Fatalf("the group's statements %v, want %s", got[1], want)
	}
	for k, v := range map[string]string{"k0": "first", "new0": "v", "new2": "v", "new3": "v", "shared": "3"} {
		if got, _, err := s.Get([]byte(k)); err != nil || string(got) != v {
			t.Fatalf("%s = %q, %v; want %q", k, got, err, v)
		}
	}
	if _, _, err := s.Get([]byte("new1")); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("new1, deleted by a later batch of the group: %v", err)
	}
	if h, _, err := s.FenceHead(context.Background()); err != nil || h.Size != 4 {
		t.Fatalf("fence head %+v, %v; want size 4", h, err)
	}
}

// TestGroupCommitFenced: a group whose transaction is fenced (one of its
// batches extends a head the store does not have) fails every batch in it,
// and commits none of their writes.
func TestGroupCommitFenced(t *testing.T) {
	s, _, dsn := openTraced(t, 0)
	b0, release := inFlight(t, s, dsn, "k0", &[2]kv.Head{{Size: -1}, head(0)})
	var group []kv.Batch
	for i, adv := range []*[2]kv.Head{nil, {head(0), head(1)}, {head(5), head(6)}, nil} {
		b := s.NewBatch(0)
		b.Insert(fmt.Appendf(nil, "g%d", i), []byte("v"))
		if adv != nil {
			b.Advance(adv[0], adv[1])
		}
		b.Apply()
		group = append(group, b)
	}
	release()
	if err := b0.Wait(); err != nil {
		t.Fatal(err)
	}
	for i, b := range group {
		if err := b.Wait(); !errors.Is(err, kv.ErrFenced) {
			t.Fatalf("batch %d of a fenced group: %v, want ErrFenced", i, err)
		}
	}
	for i := range group {
		if _, _, err := s.Get(fmt.Appendf(nil, "g%d", i)); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("g%d of a fenced group: %v, want not found", i, err)
		}
	}
	if h, _, _ := s.FenceHead(context.Background()); h.Size != 0 {
		t.Fatalf("fence head %d after a fenced group, want 0", h.Size)
	}
}

// TestGroupCommitAlone: a group whose transaction the server refuses for
// one batch's sake (a key too long for the index) commits its batches one
// at a time: the others commit, that one gets its error (neither fenced
// nor ambiguous); an advancing batch after a refused advancing one fails
// with its error without being sent.
func TestGroupCommitAlone(t *testing.T) {
	s, _, dsn := openTraced(t, 0)
	b0, release := inFlight(t, s, dsn, "k0", &[2]kv.Head{{Size: -1}, head(0)})
	long := make([]byte, 4000) // random: no compression brings it under the index's limit
	rand.Read(long)
	mk := func(key []byte, adv *[2]kv.Head) kv.Batch {
		b := s.NewBatch(0)
		b.Insert(key, []byte("v"))
		if adv != nil {
			b.Advance(adv[0], adv[1])
		}
		b.Apply()
		return b
	}
	ok1 := mk([]byte("ok1"), &[2]kv.Head{head(0), head(1)})
	bad := mk(long, nil)
	ok2 := mk([]byte("ok2"), &[2]kv.Head{head(1), head(2)})
	badAdv := mk(append([]byte("x"), long...), &[2]kv.Head{head(2), head(3)})
	after := mk([]byte("after"), &[2]kv.Head{head(3), head(4)})
	ok3 := mk([]byte("ok3"), nil)
	release()
	if err := b0.Wait(); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]kv.Batch{"ok1": ok1, "ok2": ok2, "ok3": ok3} {
		if err := b.Wait(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, _, err := s.Get([]byte(name)); err != nil {
			t.Fatalf("%s not committed: %v", name, err)
		}
	}
	for name, b := range map[string]kv.Batch{"bad": bad, "badAdv": badAdv} {
		err := b.Wait()
		if err == nil || kv.Fatal(err) || !strings.Contains(err.Error(), "index row size") {
			t.Fatalf("%s: %v, want the server's refusal of its key", name, err)
		}
	}
	if err := after.Wait(); err == nil || !strings.Contains(err.Error(), "index row size") {
		t.Fatalf("the advancing batch after a refused one: %v, want that one's error", err)
	}
	if _, _, err := s.Get([]byte("after")); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("after: %v, want not found", err)
	}
	if h, _, _ := s.FenceHead(context.Background()); h.Size != 2 {
		t.Fatalf("fence head %d, want 2", h.Size)
	}
}
