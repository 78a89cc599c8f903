package pgkv_test

import (
	"errors"
	"fmt"
	"testing"

	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/kvtest"
	"indelible.dev/ledger/kv/pgkv"
)

// copyFrom makes every commit with at least n sets use COPY, until t ends.
func copyFrom(t *testing.T, n int) {
	old := *pgkv.CopyMinRows
	*pgkv.CopyMinRows = n
	t.Cleanup(func() { *pgkv.CopyMinRows = old })
}

// TestConformanceCopy runs the conformance suite with every batch that sets
// a key committed through COPY.
func TestConformanceCopy(t *testing.T) {
	copyFrom(t, 1)
	kvtest.Run(t, func(t *testing.T) kv.Store {
		s, _ := pgtest.Store(t)
		return s
	})
}

// TestCopyCommit: a large batch (COPY) overwrites, deletes and advances the
// fence like a small one; a fenced large batch commits nothing and leaves
// the store usable (its connection, left in a failed transaction, is not
// reused).
func TestCopyCommit(t *testing.T) {
	copyFrom(t, 1000)
	dsn := pgtest.DSN(t)
	a := open(t, dsn, 0)
	key := func(i int) []byte { return fmt.Appendf(nil, "k%05d", i) }
	big := func(s kv.Store, val string, from, to kv.Head) error {
		b := s.NewBatch(0)
		defer b.Close()
		for i := range 3000 {
			b.Set(key(i), []byte(val))
		}
		b.Delete(key(7))
		b.DeleteRange(key(100), key(200))
		b.Set(key(150), []byte("back"))
		b.Advance(from, to)
		return b.Commit(true)
	}
	h0, h1, h2 := kv.Head{Size: -1, Root: []byte{}}, kv.Head{Size: 1, Root: []byte("r1")}, kv.Head{Size: 2, Root: []byte("r2")}
	if err := set(a, string(key(7)), "old", nil); err != nil {
		t.Fatal(err)
	}
	if err := big(a, "v1", h0, h1); err != nil {
		t.Fatal(err)
	}
	check := func(s kv.Store, val string) {
		t.Helper()
		for _, i := range []int{0, 99, 200, 2999} {
			if v, _, err := s.Get(key(i)); err != nil || string(v) != val {
				t.Fatalf("key %d = %q, %v; want %q", i, v, err, val)
			}
		}
		for _, i := range []int{7, 100, 199} {
			if _, _, err := s.Get(key(i)); !errors.Is(err, kv.ErrNotFound) {
				t.Fatalf("key %d: %v, want not found", i, err)
			}
		}
		if v, _, err := s.Get(key(150)); err != nil || string(v) != "back" {
			t.Fatalf("key 150 = %q, %v", v, err)
		}
	}
	check(a, "v1")
	// Fenced by the head (a stale from), then by the epoch.
	if err := big(a, "stale", h0, h2); !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("commit from a stale head: %v, want ErrFenced", err)
	}
	check(a, "v1")
	if err := big(a, "v2", h1, h2); err != nil {
		t.Fatalf("commit after a fenced one: %v", err)
	}
	check(a, "v2")
	b := open(t, dsn, 0)
	if err := big(a, "stale", h2, kv.Head{Size: 3, Root: []byte("r3")}); !errors.Is(err, kv.ErrFenced) {
		t.Fatalf("commit under an old epoch: %v, want ErrFenced", err)
	}
	check(b, "v2")
	if h, ok, err := b.FenceHead(t.Context()); err != nil || !ok || h.Size != 2 {
		t.Fatalf("fence head %+v %v %v, want size 2", h, ok, err)
	}
}
