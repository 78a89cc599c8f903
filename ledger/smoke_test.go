package ledger

import (
	"context"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

func testSigner(t testing.TB) (note.Signer, note.Verifier) {
	k := tlogtest.NewKey(t, "example.com/test")
	return k.Signer, k.Verifier
}

func TestSmoke(t *testing.T) {
	s, v := testSigner(t)
	dir := t.TempDir()
	l, err := Open(dir, Options{Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	ref := &tlogtest.Tree{}
	ctx := context.Background()
	for n := int64(1); n <= 600; n++ {
		data := []byte(fmt.Sprintf("entry %d", n-1))
		idx, err := l.Append(ctx, data)
		if err != nil || idx != n-1 {
			t.Fatalf("append: %d %v", idx, err)
		}
		ref.Add(data)
		cp, signed := l.Checkpoint()
		if cp.N != n {
			t.Fatalf("checkpoint size %d want %d", cp.N, n)
		}
		if _, _, err := itlog.OpenCheckpoint(signed, v); err != nil {
			t.Fatal(err)
		}
		if cp.Hash != ref.Root(n) {
			t.Fatalf("size %d root mismatch", n)
		}
		for _, tile := range tlog.NewTiles(8, n-1, n) {
			wantData := ref.Tile(tile)
			got, err := l.ReadTile(tile)
			if err != nil {
				t.Fatalf("read tile %v: %v", tile, err)
			}
			if string(got) != string(wantData) {
				t.Fatalf("tile %v differs", tile)
			}
		}
		if n%97 == 0 {
			for i := int64(0); i < n; i++ {
				p, err := l.InclusionProof(i, n)
				if err != nil {
					t.Fatal(err)
				}
				if err := tlog.CheckRecord(p, n, cp.Hash, i, tlog.RecordHash([]byte(fmt.Sprintf("entry %d", i)))); err != nil {
					t.Fatalf("inclusion %d in %d: %v", i, n, err)
				}
			}
			for m := int64(1); m < n; m++ {
				p, err := l.ConsistencyProof(m, n)
				if err != nil {
					t.Fatal(err)
				}
				if err := tlog.CheckTree(p, n, cp.Hash, m, ref.Root(m)); err != nil {
					t.Fatalf("consistency %d->%d: %v", m, n, err)
				}
			}
		}
	}
	l.Close()
	l, err = Open(dir, Options{Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cp, _ := l.Checkpoint()
	if cp.N != 600 {
		t.Fatal(cp.N)
	}
	e, err := l.Entry(599)
	if err != nil || string(e) != "entry 599" {
		t.Fatal(string(e), err)
	}
}

// TestSmallCommitsWriteLittle checks that a commit writes about what it
// appends: with one entry per commit, the WAL must not grow by the whole
// partial bundle and tile each time (which made small commits write ~145
// times their payload).
func TestSmallCommitsWriteLittle(t *testing.T) {
	pebbleOnly(t, "pebble's WAL bytes")
	s, _ := testSigner(t)
	l, err := Open(t.TempDir(), Options{Signer: s, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before := l.pdb.Metrics().WAL.BytesWritten
	const n, size = 1000, 128
	entry := make([]byte, size)
	for i := 0; i < n; i++ {
		entry[0], entry[1] = byte(i), byte(i>>8)
		if _, err := l.Append(context.Background(), entry); err != nil {
			t.Fatal(err)
		}
	}
	written := l.pdb.Metrics().WAL.BytesWritten - before
	ratio := float64(written) / float64(n*size)
	t.Logf("WAL bytes per payload byte with one entry per commit: %.2f", ratio)
	// Per commit: the entry's record, the state, the leaf-hash index and its
	// watermark, and each full tile and bundle once: about 3x for 128-byte
	// entries. Rewriting the partial bundle each time would be ~100x.
	if ratio > 6 {
		t.Fatalf("commits wrote %.1f bytes per payload byte", ratio)
	}
	for i := int64(0); i < n; i += 97 {
		e, err := l.Entry(i)
		if err != nil || e[0] != byte(i) || e[1] != byte(i>>8) {
			t.Fatalf("entry %d: %x, %v", i, e[:2], err)
		}
	}
}

// TestInnerRecords checks the inner-node records written for full tiles
// (which proofs read instead of recomputing) against a recomputation, for
// level-0 tiles and the first level-1 tile, with a restart in the middle
// of a tile (the partial tile's inner nodes are rebuilt on open).
func TestInnerRecords(t *testing.T) {
	s, _ := testSigner(t)
	dir := t.TempDir()
	ctx := context.Background()
	appendN := func(l *Log, from, to int) {
		batch := make([]Entry, 0, 4096)
		for i := from; i < to; i++ {
			batch = append(batch, Entry{Data: []byte(fmt.Sprintf("entry %d", i))})
			if len(batch) == cap(batch) || i == to-1 {
				if _, err := l.AppendEntries(ctx, batch); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}
	l, err := Open(dir, Options{Signer: s, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	appendN(l, 0, 300) // tile 0/1 is partial (44 hashes) when the log closes
	l.Close()
	l, err = Open(dir, Options{Signer: s, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 300; i < 66_000; i += 1000 {
		appendN(l, i, min(i+1000, 66_000))
	}
	check := func(lvl int, n int64) {
		t.Helper()
		data, err := l.get(tileKey(lvl, n))
		if err != nil || len(data) != 8192 {
			t.Fatalf("tile %d/%d: %d bytes, %v", lvl, n, len(data), err)
		}
		inner, err := l.get(innerKey(lvl, n))
		if err != nil || len(inner) != innerHashes*32 {
			t.Fatalf("inner record of tile %d/%d: %d bytes, %v", lvl, n, len(inner), err)
		}
		want, got := expand(data), l.expandStored(lvl, n, data, nil)
		for k := 0; k < 8; k++ {
			if len(want.levels[k]) != len(got.levels[k]) {
				t.Fatalf("tile %d/%d level %d: %d hashes, want %d", lvl, n, k, len(got.levels[k]), len(want.levels[k]))
			}
			for i := range want.levels[k] {
				if want.levels[k][i] != got.levels[k][i] {
					t.Fatalf("tile %d/%d: inner node %d at level %d differs", lvl, n, i, k)
				}
			}
		}
	}
	for n := int64(0); n < 66_000/256; n++ {
		check(0, n)
	}
	check(1, 0)
	if _, err := l.get(innerKey(0, 66_000/256)); err == nil {
		t.Fatal("inner record written for a partial tile")
	}
}
