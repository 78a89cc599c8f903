package ledger

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger/kv/pgkv"
)

// openPG opens a log on the PostgreSQL database dsn, taking the next epoch.
func openPG(t *testing.T, dsn string, s note.Signer) (*Log, error) {
	t.Helper()
	st, err := pgkv.Open(context.Background(), dsn, pgkv.Options{Logger: quietLogger()})
	if err != nil {
		return nil, err
	}
	l, err := Open(t.TempDir(), Options{Signer: s, Store: st, Logger: quietLogger(), MinFreeBytes: -1})
	if err != nil {
		st.Close()
		return nil, err
	}
	t.Cleanup(func() { l.Close() })
	return l, nil
}

// TestFenceStaleNodeStops: a second node opening the store takes the next
// epoch; the first node's next commit is refused (nothing of it stored), it
// stops for good (ErrFailed wrapping ErrFenced, not retryable), publishes
// nothing more, and its extension writes are refused too. The second node
// goes on from what the store holds.
func TestFenceStaleNodeStops(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, _ := testSigner(t)
	a, err := openPG(t, dsn, s)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, a, "a", 5)
	b, err := openPG(t, dsn, s)
	if err != nil {
		t.Fatal(err)
	}
	if cp, _ := b.Checkpoint(); cp.N != 5 {
		t.Fatalf("second node opened size %d, want 5", cp.N)
	}
	_, err = a.Append(context.Background(), []byte("stale"))
	if !errors.Is(err, ErrFenced) || !errors.Is(err, ErrFailed) || Retryable(err) {
		t.Fatalf("stale node's append: %v (retryable %v), want ErrFailed wrapping ErrFenced", err, Retryable(err))
	}
	if a.Err() == nil {
		t.Fatal("the stale node did not stop")
	}
	if _, err := a.Append(context.Background(), []byte("stale 2")); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale node's second append: %v", err)
	}
	if cp, _ := a.Checkpoint(); cp.N != 5 {
		t.Fatalf("stale node published size %d", cp.N)
	}
	if err := a.WriteExt(func(w Writer) error { return w.Set([]byte("k"), []byte("stale")) }); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale node's WriteExt: %v", err)
	}
	appendN(t, b, "b", 3)
	if cp, _ := b.Checkpoint(); cp.N != 8 {
		t.Fatalf("second node at size %d, want 8", cp.N)
	}
	if _, err := b.GetExt([]byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the stale node's write is stored: %v", err)
	}
	e, err := b.Entry(5)
	if err != nil || string(e) != "b 0" {
		t.Fatalf("entry 5 = %q, %v; want the second node's", e, err)
	}
}

// TestFenceTwoNodesCreate: nodes opening one empty store at once create
// exactly one log: every Open either fails fenced or opens that log, and
// only the node holding the newest epoch can append.
func TestFenceTwoNodesCreate(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, v := testSigner(t)
	const n = 4
	logs := make([]*Log, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			logs[i], errs[i] = openPG(t, dsn, s)
		}()
	}
	close(start)
	wg.Wait()
	appended := 0
	for i := range n {
		if errs[i] != nil {
			if !errors.Is(errs[i], ErrFenced) {
				t.Fatalf("node %d: %v, want success or ErrFenced", i, errs[i])
			}
			continue
		}
		if _, err := logs[i].Append(context.Background(), []byte("x")); err == nil {
			appended++
		} else if !errors.Is(err, ErrFenced) {
			t.Fatalf("node %d append: %v", i, err)
		}
	}
	if appended != 1 {
		t.Fatalf("%d nodes appended, want exactly 1 (the newest epoch)", appended)
	}
	l, err := openPG(t, dsn, s)
	if err != nil {
		t.Fatal(err)
	}
	cp, signed := l.Checkpoint()
	if cp.N != 1 {
		t.Fatalf("the store holds size %d, want 1", cp.N)
	}
	if _, err := note.Open(signed, note.VerifierList(v)); err != nil {
		t.Fatal(err)
	}
}

// TestFenceOpenRefusesMismatch: a store whose fence does not record the
// stored tree (a store written without the fence, or an edited one) is
// refused at open, before anything is signed.
func TestFenceOpenRefusesMismatch(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, _ := testSigner(t)
	st, err := pgkv.Open(context.Background(), dsn, pgkv.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(t.TempDir(), Options{Signer: s, Store: st, Logger: quietLogger(), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "a", 3)
	l.Close()
	st2, err := pgkv.Open(context.Background(), dsn, pgkv.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if _, err := st2.Pool().Exec(context.Background(), `UPDATE indelible_fence SET size = 2`); err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.TempDir(), Options{Signer: s, Store: st2, Logger: quietLogger(), MinFreeBytes: -1})
	if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), "size 3") {
		t.Fatalf("open with a fence at size 2 over a tree of size 3: %v", err)
	}
}
