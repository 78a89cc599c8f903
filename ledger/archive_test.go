package ledger

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
)

// TestArchive: every checkpoint served is kept by size, byte for byte, and
// survives a reopen; with witnessing only witnessed ones are, with their
// cosignatures, and the first version served for a size stays.
func TestArchive(t *testing.T) {
	dir := t.TempDir()
	s0, _ := testSigner(t)
	l, err := Open(dir, Options{Signer: s0, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	served := map[int64][]byte{}
	for i := range 20 {
		if _, err := l.Append(ctx, []byte(fmt.Sprint("e", i))); err != nil {
			t.Fatal(err)
		}
		cp, signed := l.Checkpoint()
		served[cp.N] = bytes.Clone(signed)
	}
	check := func(l *Log) {
		for n, want := range served {
			got, err := l.ArchivedCheckpoint(n)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("archived %d: %v\n%s\nwant\n%s", n, err, got, want)
			}
		}
	}
	check(l)
	if _, err := l.ArchivedCheckpoint(1000); err != ErrNotFound {
		t.Fatalf("a size never served: %v", err)
	}
	l.Close()
	l2, err := Open(dir, Options{Signer: s0, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	check(l2)

	// With witnessing.
	s, v := testSigner(t)
	w0 := newTestWitness(t, "w0.example", v)
	lw, err := Open(t.TempDir(), Options{Signer: s, MinFreeBytes: -1, Logger: quietLogger(), Witnessing: WitnessConfig{
		Witnesses: []Witness{w0}, Retry: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer lw.Close()
	appendN(t, lw, "e", 30)
	tlogtest.Eventually(t, 10*time.Second, "size 30 witnessed", func() (bool, string) { cp, _ := lw.Checkpoint(); return cp.N == 30, "" })
	n, a, err := lw.ServedCheckpoint()
	if err != nil || n != 30 || cosignedBy(a, w0) != 1 {
		t.Fatalf("served checkpoint %d %v:\n%s", n, err, a)
	}
	if a0, err := lw.ArchivedCheckpoint(0); err == nil && cosignedBy(a0, w0) != 1 {
		t.Fatalf("an unwitnessed checkpoint was archived:\n%s", a0)
	}
}

// TestRangeHashes: the compact ranges read from the tiles are those of a
// reference built from the leaves, for every range of every size up to 300.
func TestRangeHashes(t *testing.T) {
	l, _ := openTempLog(t)
	ctx := context.Background()
	const max = 300
	var leaves [][]byte
	for i := range max {
		e := []byte(fmt.Sprint("entry", i))
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		h := tlog.RecordHash(e)
		leaves = append(leaves, h[:])
	}
	f := &compact.RangeFactory{Hash: hashChildren}
	for _, n := range []int64{0, 1, 7, 255, 256, 257, 300} {
		for lo := int64(0); lo <= n; lo += 13 {
			for hi := lo; hi <= n; hi += 7 {
				r := f.NewEmptyRange(uint64(lo))
				for _, h := range leaves[lo:hi] {
					r.Append(h, nil)
				}
				got, err := l.RangeHashes(lo, hi, n)
				if err != nil {
					t.Fatalf("[%d,%d) of %d: %v", lo, hi, n, err)
				}
				if fmt.Sprintf("%x", got) != fmt.Sprintf("%x", r.Hashes()) {
					t.Fatalf("[%d,%d) of %d: %x, want %x", lo, hi, n, got, r.Hashes())
				}
			}
		}
	}
	if _, err := l.RangeHashes(5, 4, 10); err == nil {
		t.Fatal("a reversed range")
	}
	if _, err := l.RangeHashes(0, 1, max+1); err == nil {
		t.Fatal("beyond the published size")
	}
}
