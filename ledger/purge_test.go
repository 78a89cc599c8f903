package ledger

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger/kv/pebblekv"
)

// openTempLog opens a new log in a temporary directory, closed when the
// test ends, and returns it with its directory.
func openTempLog(t *testing.T) (*Log, string) {
	t.Helper()
	dir := t.TempDir()
	s, _ := testSigner(t)
	l, err := Open(dir, Options{Signer: s, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, dir
}

// TestWALNotRecycled: the store's cleaner makes pebble delete obsolete WAL
// files instead of recycling them (a recycled file keeps old bytes past its
// new records), and deletes rather than archives.
func TestWALNotRecycled(t *testing.T) {
	pebbleOnly(t, "pebble's WAL files")
	var c any = pebblekv.Cleaner()
	if _, ok := c.(interface{ String() string }); !ok || c.(interface{ String() string }).String() != "delete" {
		t.Fatalf("cleaner is %v, want pebble's delete cleaner", c)
	}
	l, dir := openTempLog(t)
	for range 5 {
		if err := l.WriteExt(func(w Writer) error { return w.Set([]byte("k"), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
		if err := l.pdb.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.PurgeExt(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	m := l.pdb.Metrics()
	if m.WAL.ObsoleteFiles != 0 {
		t.Errorf("%d recycled WAL files kept", m.WAL.ObsoleteFiles)
	}
	wals, err := pebblekv.WALFiles(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(wals) != 1 {
		t.Errorf("WAL files %v, want only the live one", wals)
	}
	if _, err := os.Stat(filepath.Join(dir, "archive")); err == nil {
		t.Error("obsolete files were archived, not deleted")
	}
}

// TestPurgeExt: a deleted extension value is in no file of the store once
// PurgeExt returns, while it was before (in the WAL, then in a table).
func TestPurgeExt(t *testing.T) {
	pebbleOnly(t, "pebble's WAL and table files")
	l, dir := openTempLog(t)
	secret := []byte("purge-me-" + strings.Repeat("S", 40))
	key := []byte("zsecret")
	for i := range 50 {
		k := []byte{'q', byte(i)}
		if err := l.WriteExt(func(w Writer) error { return w.Set(k, bytes.Repeat([]byte{'o'}, 100)) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.WriteExt(func(w Writer) error { return w.Set(key, secret) }); err != nil {
		t.Fatal(err)
	}
	if len(tlogtest.FilesContaining(t, dir, secret)) == 0 {
		t.Fatal("secret not in the WAL: the test would prove nothing")
	}
	if err := l.pdb.Flush(); err != nil { // into a table, and a second WAL
		t.Fatal(err)
	}
	if err := l.WriteExt(func(w Writer) error { return w.Delete(key) }); err != nil {
		t.Fatal(err)
	}
	if err := l.PurgeExt(context.Background(), [][2][]byte{{key, append(key, 0)}}); err != nil {
		t.Fatal(err)
	}
	if hits := tlogtest.FilesContaining(t, dir, secret); len(hits) != 0 {
		t.Fatalf("deleted value still in %v after PurgeExt", hits)
	}
	if v, err := l.GetExt([]byte{'q', 7}); err != nil || len(v) != 100 {
		t.Fatalf("other keys lost: %v", err)
	}
}
