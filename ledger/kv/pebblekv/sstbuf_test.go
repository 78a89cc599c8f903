package pebblekv

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// countingFS counts the writes that reach its files.
type countingFS struct {
	vfs.FS
	writes *atomic.Int64
}

func (fs countingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return countingFile{f, fs.writes}, nil
}

type countingFile struct {
	vfs.File
	writes *atomic.Int64
}

func (f countingFile) Write(p []byte) (int, error) {
	f.writes.Add(1)
	return f.File.Write(p)
}

// TestSSTBufferFS checks that a table file's writes reach the file in
// sstWriteBuffer pieces, all of them before a sync, a read or a close, and
// that every other file (the WAL) is the wrapped filesystem's own.
func TestSSTBufferFS(t *testing.T) {
	mem := vfs.NewMem()
	var writes atomic.Int64
	fs := sstBufferFS{countingFS{mem, &writes}}
	f, err := fs.Create("000007.sst", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*bufferedFile); !ok {
		t.Fatalf("a table file is a %T, want a *bufferedFile", f)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var want []byte
	for i := range 300 { // blocks of ~4 KiB, and a few larger than the buffer
		size := 4000 + r.IntN(200)
		if i%100 == 99 {
			size = sstWriteBuffer + 1000
		}
		p := make([]byte, size)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		want = append(want, p...)
		if n, err := f.Write(bytes.Clone(p)); err != nil || n != len(p) {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if max := int64(len(want)/sstWriteBuffer + 4); writes.Load() > max {
		t.Fatalf("%d writes reached the file for %d bytes, want at most %d", writes.Load(), len(want), max)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	// After a sync, the underlying file holds every byte written.
	raw, err := mem.Open("000007.sst")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(raw)
	raw.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after Sync the file holds %d bytes (%v), want the %d written", len(got), err, len(want))
	}
	// Stat and ReadAt see what was written, buffered or not.
	if _, err := f.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "tail"...)
	if st, err := f.Stat(); err != nil || st.Size() != int64(len(want)) {
		t.Fatalf("Stat: size %v (%v), want %d", st.Size(), err, len(want))
	}
	buf := make([]byte, 4)
	if _, err := f.ReadAt(buf, int64(len(want)-4)); err != nil || string(buf) != "tail" {
		t.Fatalf("ReadAt the buffered tail: %q, %v", buf, err)
	}
	if _, err := f.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Fatal("a write after Close succeeded")
	}
	if st, err := mem.Stat("000007.sst"); err != nil || st.Size() != int64(len(want)+4) {
		t.Fatalf("after Close: size %v (%v), want %d", st.Size(), err, len(want)+4)
	}

	for _, name := range []string{"000008.log", "MANIFEST-000001", "OPTIONS-000003"} {
		f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := f.(countingFile); !ok {
			t.Fatalf("%s is a %T, want the wrapped filesystem's file", name, f)
		}
		f.Close()
	}
}

// TestSSTBufferCrash writes, flushes and compacts a store on a filesystem
// that keeps only what was synced, then opens what a crash would leave: a
// table the manifest names must be whole, so every key must be there.
func TestSSTBufferCrash(t *testing.T) {
	mem := vfs.NewCrashableMem()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open("db", Options{FS: mem, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(7, 8))
	val := func(i int) []byte {
		v := make([]byte, 200)
		binary.BigEndian.PutUint64(v, uint64(i))
		return v
	}
	const n = 40000
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = binary.BigEndian.AppendUint64([]byte("k"), r.Uint64())
	}
	for lo := 0; lo < n; lo += 1000 {
		b := s.NewBatch(0)
		for i := lo; i < lo+1000; i++ {
			if err := b.Set(keys[i], val(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if lo == n/2 {
			if err := s.DB().Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Compact(t.Context(), []byte("k"), []byte("l"), false); err != nil {
		t.Fatal(err)
	}
	if m := s.DB().Metrics(); m.Total().TablesCount == 0 {
		t.Fatal("no tables were written")
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	s2, err := Open("db", Options{FS: crashed, Logger: logger})
	if err != nil {
		t.Fatalf("opening after the crash: %v", err)
	}
	defer s2.Close()
	for i, k := range keys {
		v, c, err := s2.Get(k)
		if err != nil {
			t.Fatalf("key %d after the crash: %v", i, err)
		}
		if !bytes.Equal(v, val(i)) {
			t.Fatalf("key %d after the crash: %x", i, v[:8])
		}
		c.Close()
	}
}

// TestLevelCompression checks the compression of each level: none for the
// flushes' level-0 tables, snappy below (on keys it can shrink).
func TestLevelCompression(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(t.TempDir(), Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Two flushes of the same keys: compacting them rewrites them (a
	// table alone would be moved down as it is).
	for round := range 2 {
		b := s.NewBatch(0)
		for i := range 20000 {
			k := binary.BigEndian.AppendUint64([]byte("key"), uint64(i))
			if err := b.Set(k, bytes.Repeat([]byte{byte(i + round)}, 100)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if err := s.DB().Flush(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(level int, want string) {
		t.Helper()
		levels, err := s.DB().SSTables(pebble.WithProperties())
		if err != nil {
			t.Fatal(err)
		}
		if len(levels[level]) == 0 {
			t.Fatalf("no table in L%d", level)
		}
		for _, tb := range levels[level] {
			if got := tb.Properties.CompressionName; got != want {
				t.Fatalf("an L%d table's compression is %q, want %q", level, got, want)
			}
		}
	}
	check(0, "NoCompression")
	if err := s.DB().Compact(t.Context(), []byte("key"), []byte("kez"), true); err != nil {
		t.Fatal(err)
	}
	check(6, "Snappy")
}
