// Package kvtest is the conformance suite of the kv seam: every backend
// runs it (pebblekv's and pgkv's tests), so that the ledger sees the same
// store on both.
package kvtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"indelible.dev/ledger/kv"
)

// Run runs the suite; open returns a new, empty store, closed by the caller's
// cleanup.
func Run(t *testing.T, open func(t *testing.T) kv.Store) {
	t.Run("GetSetDelete", func(t *testing.T) { testGetSetDelete(t, open(t)) })
	t.Run("BatchOrder", func(t *testing.T) { testBatchOrder(t, open(t)) })
	t.Run("Scan", func(t *testing.T) { testScan(t, open(t)) })
	t.Run("ScanLarge", func(t *testing.T) { testScanLarge(t, open(t)) })
	t.Run("GetSorted", func(t *testing.T) { testGetSorted(t, open(t)) })
	t.Run("Pipelined", func(t *testing.T) { testPipelined(t, open(t)) })
	t.Run("Purge", func(t *testing.T) { testPurge(t, open(t)) })
	t.Run("Insert", func(t *testing.T) { testInsert(t, open(t)) })
}

func commit(t *testing.T, s kv.Store, f func(b kv.Batch)) {
	t.Helper()
	b := s.NewBatch(0)
	defer b.Close()
	f(b)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s kv.Store, k string) (string, bool) {
	t.Helper()
	v, c, err := s.Get([]byte(k))
	if errors.Is(err, kv.ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return string(v), true
}

func want(t *testing.T, s kv.Store, k, v string) {
	t.Helper()
	got, ok := get(t, s, k)
	if !ok {
		t.Fatalf("%q not found, want %q", k, v)
	}
	if got != v {
		t.Fatalf("%q = %q, want %q", k, got, v)
	}
}

func absent(t *testing.T, s kv.Store, k string) {
	t.Helper()
	if v, ok := get(t, s, k); ok {
		t.Fatalf("%q = %q, want absent", k, v)
	}
}

func testGetSetDelete(t *testing.T, s kv.Store) {
	absent(t, s, "a")
	commit(t, s, func(b kv.Batch) {
		b.Set([]byte("a"), []byte("1"))
		b.Set([]byte("empty"), nil)
		b.SetPrefixed('p', []byte("x"), []byte("px"))
		b.Set([]byte{0, 0xff}, []byte{0xff, 0})
	})
	want(t, s, "a", "1")
	want(t, s, "empty", "")
	want(t, s, "px", "px")
	want(t, s, "\x00\xff", "\xff\x00")
	commit(t, s, func(b kv.Batch) {
		b.Set([]byte("a"), []byte("2"))
		b.Delete([]byte("empty"))
		b.Delete([]byte("never"))
	})
	want(t, s, "a", "2")
	absent(t, s, "empty")
	absent(t, s, "never")
}

// testBatchOrder: the ops of one batch apply in order.
func testBatchOrder(t *testing.T, s kv.Store) {
	commit(t, s, func(b kv.Batch) {
		for _, k := range []string{"r1", "r2", "r3", "keep", "x"} {
			b.Set([]byte(k), []byte("old"))
		}
	})
	commit(t, s, func(b kv.Batch) {
		b.Set([]byte("r2"), []byte("set-then-range")) // deleted by the range below
		b.Set([]byte("s"), []byte("1"))
		b.Set([]byte("s"), []byte("2")) // the last set wins
		b.DeleteRange([]byte("r"), []byte("r9"))
		b.Set([]byte("r3"), []byte("after-range")) // survives
		b.Set([]byte("x"), []byte("then-deleted"))
		b.Delete([]byte("x"))
		b.Delete([]byte("y"))
		b.Set([]byte("y"), []byte("deleted-then-set"))
		b.DeleteRange([]byte("z"), []byte("a")) // empty range: nothing
	})
	absent(t, s, "r1")
	absent(t, s, "r2")
	want(t, s, "r3", "after-range")
	want(t, s, "keep", "old")
	want(t, s, "s", "2")
	absent(t, s, "x")
	want(t, s, "y", "deleted-then-set")
}

func scan(t *testing.T, s kv.Store, lo, hi []byte, reverse bool, limit int) []string {
	t.Helper()
	var out []string
	err := s.Scan(lo, hi, reverse, func(k, v []byte) bool {
		if !bytes.Equal(v, append([]byte("v"), k...)) {
			t.Errorf("value of %q is %q", k, v)
		}
		out = append(out, string(k))
		return limit <= 0 || len(out) < limit
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testScan(t *testing.T, s kv.Store) {
	keys := []string{"a", "a\x00", "a\x01", "ab", "b", "b\xff", "c", "\xff", "\xff\xff"}
	commit(t, s, func(b kv.Batch) {
		for i := len(keys) - 1; i >= 0; i-- {
			b.Set([]byte(keys[i]), []byte("v"+keys[i]))
		}
	})
	eq := func(name string, got, want []string) {
		t.Helper()
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	eq("all", scan(t, s, nil, nil, false, 0), keys)
	eq("[a\\x00, b\\xff)", scan(t, s, []byte("a\x00"), []byte("b\xff"), false, 0), keys[1:5])
	eq("reverse [a\\x00, b\\xff)", scan(t, s, []byte("a\x00"), []byte("b\xff"), true, 0), []string{"b", "ab", "a\x01", "a\x00"})
	eq("reverse all", scan(t, s, nil, nil, true, 0), []string{"\xff\xff", "\xff", "c", "b\xff", "b", "ab", "a\x01", "a\x00", "a"})
	eq("first 2", scan(t, s, []byte("a"), nil, false, 2), keys[:2])
	eq("last 1 below c", scan(t, s, nil, []byte("c"), true, 1), []string{"b\xff"})
	eq("empty", scan(t, s, []byte("d"), []byte("e"), false, 0), nil)
	eq("inverted", scan(t, s, []byte("e"), []byte("d"), true, 0), nil)
}

// testScanLarge: scans longer than any page of a paging backend, stopped at
// every kind of place.
func testScanLarge(t *testing.T, s kv.Store) {
	const n = 10000
	key := func(i int) string { return fmt.Sprintf("k%06d", i) }
	commit(t, s, func(b kv.Batch) {
		for i := range n {
			b.Set([]byte(key(i)), []byte("v"+key(i)))
		}
	})
	all := scan(t, s, []byte("k"), []byte("l"), false, 0)
	if len(all) != n {
		t.Fatalf("forward scan: %d keys, want %d", len(all), n)
	}
	for i, k := range all {
		if k != key(i) {
			t.Fatalf("forward scan: key %d is %q", i, k)
		}
	}
	rev := scan(t, s, []byte(key(10)), []byte(key(9000)), true, 0)
	if len(rev) != 8990 || rev[0] != key(8999) || rev[len(rev)-1] != key(10) {
		t.Fatalf("reverse scan: %d keys, %q..%q", len(rev), rev[0], rev[len(rev)-1])
	}
	for i := 1; i < len(rev); i++ {
		if rev[i] >= rev[i-1] {
			t.Fatalf("reverse scan out of order at %d: %q after %q", i, rev[i], rev[i-1])
		}
	}
	if got := scan(t, s, []byte("k"), nil, false, 5000); len(got) != 5000 || got[4999] != key(4999) {
		t.Fatalf("stopped scan: %d keys", len(got))
	}
}

func testGetSorted(t *testing.T, s kv.Store) {
	commit(t, s, func(b kv.Batch) {
		for _, k := range []string{"b", "d", "f", "g"} {
			b.Set([]byte(k), []byte("v"+k))
		}
	})
	keys := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d"), []byte("g"), []byte("z")}
	for name, get := range map[string]func([][]byte, func(int, []byte)) error{"GetSorted": s.GetSorted, "GetNear": s.GetNear} {
		var got []string
		err := get(keys, func(i int, v []byte) {
			got = append(got, fmt.Sprintf("%d=%s", i, v))
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "[1=vb 3=vd 4=vg]" {
			t.Fatalf("%s: %v", name, got)
		}
		if err := get([][]byte{[]byte("b"), []byte("a")}, func(int, []byte) {}); err == nil {
			t.Fatalf("%s accepted unsorted keys", name)
		}
		if err := get([][]byte{[]byte("b"), []byte("b")}, func(int, []byte) {}); err == nil {
			t.Fatalf("%s accepted a repeated key", name)
		}
	}
}

// testPipelined: batches applied one after the other, each waited for
// later, all commit, in order.
func testPipelined(t *testing.T, s kv.Store) {
	var bs []kv.Batch
	for i := range 20 {
		b := s.NewBatch(64)
		b.Set([]byte("n"), []byte(fmt.Sprint(i)))
		b.Set([]byte(fmt.Sprintf("i%02d", i)), []byte("x"))
		if err := b.Apply(); err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	for _, b := range bs {
		if err := b.Wait(); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	want(t, s, "n", "19")
	for i := range 20 {
		want(t, s, fmt.Sprintf("i%02d", i), "x")
	}
}

func testPurge(t *testing.T, s kv.Store) {
	commit(t, s, func(b kv.Batch) {
		b.Set([]byte("secret1"), []byte("s"))
		b.Set([]byte("secret2"), []byte("s"))
		b.Set([]byte("t"), []byte("kept"))
	})
	commit(t, s, func(b kv.Batch) { b.DeleteRange([]byte("secret"), []byte("secreu")) })
	if err := s.Purge(context.Background(), [][2][]byte{{[]byte("secret"), []byte("secreu")}}); err != nil {
		t.Fatal(err)
	}
	absent(t, s, "secret1")
	want(t, s, "t", "kept")
}

// testInsert: Insert and InsertPrefixed have Set's result whether or not
// the key is stored, in batches that mix them with sets and deletes of the
// same keys, and a batch with a stored key among many new ones commits
// them all.
func testInsert(t *testing.T, s kv.Store) {
	commit(t, s, func(b kv.Batch) {
		b.Insert([]byte("i1"), []byte("1"))
		b.InsertPrefixed('i', []byte("2"), []byte("2"))
		b.Insert([]byte("empty"), nil)
		b.Set([]byte("s"), []byte("s"))
	})
	want(t, s, "i1", "1")
	want(t, s, "i2", "2")
	want(t, s, "empty", "")
	want(t, s, "s", "s")
	// A stored key inserted again, among new ones: the new value, and
	// every other write of the batch.
	commit(t, s, func(b kv.Batch) {
		for i := range 100 {
			b.Insert(fmt.Appendf(nil, "n%03d", i), []byte("new"))
		}
		b.Insert([]byte("i1"), []byte("again"))
		b.InsertPrefixed('s', nil, []byte("s2"))
		b.Delete([]byte("i2"))
	})
	want(t, s, "i1", "again")
	want(t, s, "s", "s2")
	absent(t, s, "i2")
	for i := range 100 {
		want(t, s, fmt.Sprintf("n%03d", i), "new")
	}
	// In one batch: an insert after a set of the same key, a set after an
	// insert, an insert after a delete, an insert under a later range
	// delete.
	commit(t, s, func(b kv.Batch) {
		b.Set([]byte("x"), []byte("set"))
		b.Insert([]byte("x"), []byte("inserted"))
		b.Insert([]byte("y"), []byte("inserted"))
		b.Set([]byte("y"), []byte("set"))
		b.Delete([]byte("n000"))
		b.Insert([]byte("n000"), []byte("back"))
		b.Insert([]byte("n050"), []byte("gone"))
		b.DeleteRange([]byte("n050"), []byte("n060"))
	})
	want(t, s, "x", "inserted")
	want(t, s, "y", "set")
	want(t, s, "n000", "back")
	absent(t, s, "n050")
	absent(t, s, "n059")
	want(t, s, "n060", "new")
}
