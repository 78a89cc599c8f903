package ledger

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pebblekv"
)

// TestCheckEntries: the root recomputed from a store's entries matches its
// tree (full bundles and the partial bundle's records), and a changed byte
// in an entry, a missing bundle or a missing partial record is found.
func TestCheckEntries(t *testing.T) {
	pebbleOnly(t, "reopens the log's pebble directory")
	s, _ := testSigner(t)
	dir := t.TempDir()
	l, err := Open(dir, Options{Signer: s, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 600 { // two full bundles and a partial one
		if _, err := l.Append(ctx, fmt.Appendf(nil, "entry %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	st, err := pebblekv.Open(dir, pebblekv.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tree, origin, ok, err := StoredTree(st)
	if err != nil || !ok || tree.N != 600 || origin != s.Name() {
		t.Fatalf("StoredTree = %v %q %v %v, want size 600 of %q", tree, origin, ok, err, s.Name())
	}
	if err := CheckEntries(st, tree, nil); err != nil {
		t.Fatalf("CheckEntries on the log as written: %v", err)
	}
	// Each change is undone before the next.
	get := func(k []byte) []byte {
		v, c, err := st.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return append([]byte(nil), v...)
	}
	apply := func(f func(b kv.Batch)) {
		b := st.NewBatch(0)
		defer b.Close()
		f(b)
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
	}
	var deltaK []byte
	st.Scan(deltaKey(512), deltaKey(768), false, func(k, v []byte) bool { deltaK = append([]byte(nil), k...); return false })
	for _, c := range []struct {
		name string
		key  []byte
		edit func(v []byte) []byte // nil: delete
		want string
	}{
		{"a byte of bundle 1", bundleKey(1), func(v []byte) []byte { v[10] ^= 1; return v }, "hash to root"},
		{"bundle 0 missing", bundleKey(0), nil, "bundle 0 is missing"},
		{"a partial record missing", deltaK, nil, "partial bundle"},
	} {
		old := get(c.key)
		apply(func(b kv.Batch) {
			if c.edit == nil {
				b.Delete(c.key)
			} else {
				b.Set(c.key, c.edit(append([]byte(nil), old...)))
			}
		})
		if err := CheckEntries(st, tree, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: CheckEntries = %v, want an error with %q", c.name, err, c.want)
		}
		apply(func(b kv.Batch) { b.Set(c.key, old) })
		if err := CheckEntries(st, tree, nil); err != nil {
			t.Fatalf("after undoing %s: %v", c.name, err)
		}
	}
}
