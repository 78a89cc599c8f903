package ledger

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestLeafIndexFormat1 opens the golden store, written in format 1 (leaf-
// hash index keys with the whole hash), and checks that Open moves it to
// format 2, that lookups by hash find its entries through the old keys and
// the entries appended since through the new, shorter ones (an entry
// appended again is still found at its first index), and that only new
// keys are written.
func TestLeafIndexFormat1(t *testing.T) {
	pebbleOnly(t, "the golden store is a pebble directory")
	s := goldenSigner(t)
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.CopyFS(dir, os.DirFS(goldenDir)); err != nil {
		t.Fatal(err)
	}
	count := func(l *Log, prefix byte) (n int, keyLen int) {
		t.Helper()
		if err := l.db.Scan([]byte{prefix}, []byte{prefix + 1}, false, func(k, _ []byte) bool {
			n++
			keyLen = len(k)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return n, keyLen
	}
	check := func(l *Log, n int64, first func(i int) int) {
		t.Helper()
		for i := range int(n) {
			leaf := tlog.RecordHash(goldenEntry(first(i)))
			got, p, err := l.InclusionProofByHash(leaf, n)
			if err != nil || got != int64(first(i)) {
				t.Fatalf("InclusionProofByHash(entry %d) = %d, %v; want %d", i, got, err, first(i))
			}
			th, err := l.TreeHash(n)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, n, th, got, leaf); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
		if _, _, err := l.InclusionProofByHash(tlog.RecordHash([]byte("absent")), n); err == nil {
			t.Fatal("an absent hash was found")
		}
	}
	l, err := Open(dir, Options{Signer: s, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if f, err := l.get(keyFormat); err != nil || string(f) != formatVersion {
		t.Fatalf("format %q, %v after open, want %s", f, err, formatVersion)
	}
	if n, klen := count(l, prefixLeaf1); n != goldenEntries || klen != 41 {
		t.Fatalf("the golden store has %d format-1 leaf keys of %d bytes, want %d of 41", n, klen, goldenEntries)
	}
	// Entries 300..599: goldenEntry(i-300) again for even i, new data for odd.
	data := func(i int) int {
		if i >= goldenEntries && i%2 == 0 {
			return i - goldenEntries
		}
		return i
	}
	var batch []Entry
	for i := goldenEntries; i < 2*goldenEntries; i++ {
		batch = append(batch, Entry{Data: goldenEntry(data(i))})
	}
	if _, err := l.AppendEntries(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	cp, _ := l.Checkpoint()
	if err := l.waitIndexed(cp.N); err != nil {
		t.Fatal(err)
	}
	check(l, cp.N, data)
	// A key whose 8 bytes match but whose entry's hash does not (a
	// collision): the lookup checks the hash and goes on.
	leaf := tlog.RecordHash(goldenEntry(data(301)))
	b := l.db.NewBatch(0)
	b.Set(appendLeafKey(nil, leaf, 1), nil)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got, _, err := l.InclusionProofByHash(leaf, cp.N); err != nil || got != 301 {
		t.Fatalf("with a colliding key at 1: %d, %v; want 301", got, err)
	}
	if n, klen := count(l, prefixLeaf); n != goldenEntries+1 || klen != 1+leafPrefixLen+8 {
		t.Fatalf("%d new leaf keys of %d bytes, want %d of %d", n, klen, goldenEntries, 1+leafPrefixLen+8)
	}
	if n, _ := count(l, prefixLeaf1); n != goldenEntries {
		t.Fatalf("%d format-1 leaf keys after appending, want %d", n, goldenEntries)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, Options{Signer: s, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	check(l, cp.N, data)
}

// TestFormat2Moved: a store marked format 2 (written before the events
// layer's payload version 3) opens, and Open moves it to format 3 by
// rewriting the marker alone, its entries unchanged; a format this version
// does not know is refused, as a release knowing only 1 and 2 refuses a
// format-3 store.
func TestFormat2Moved(t *testing.T) {
	s, _ := testSigner(t)
	dir := t.TempDir()
	open := func() (*Log, error) { return Open(dir, Options{Signer: s, MinFreeBytes: -1}) }
	setFormat := func(f string) {
		t.Helper()
		l, err := open()
		if err != nil {
			t.Fatal(err)
		}
		b := l.db.NewBatch(0)
		b.Set(keyFormat, []byte(f))
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	l, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), []byte("entry 0")); err != nil {
		t.Fatal(err)
	}
	if f, _ := l.get(keyFormat); string(f) != "3" {
		t.Fatalf("a new store has format %q, want 3", f)
	}
	l.Close()
	setFormat("2")
	if l, err = open(); err != nil {
		t.Fatal(err)
	}
	if f, err := l.get(keyFormat); err != nil || string(f) != "3" {
		t.Fatalf("format %q, %v after opening a format-2 store, want 3", f, err)
	}
	if e, err := l.Entry(0); err != nil || string(e) != "entry 0" {
		t.Fatalf("entry 0 of the moved store: %q, %v", e, err)
	}
	l.Close()
	setFormat("4")
	if l, err := open(); err == nil || !strings.Contains(err.Error(), `unsupported store format "4"`) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("a format-4 store opened: %v", err)
	}
}
