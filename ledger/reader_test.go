package ledger

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/pgtest"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pebblekv"
	"indelible.dev/ledger/kv/pgkv"
	itlog "indelible.dev/tlog"
)

// sharedStore is a store two Logs of one test share (the writer owns it;
// the reader's Close leaves it open), as two nodes share PostgreSQL.
type sharedStore struct{ kv.Store }

func (sharedStore) Close() error { return nil }

// openShared opens a writer over a pebble store (or, with
// INDELIBLE_TEST_STORE=postgres, a PostgreSQL database) and returns it with
// its store and a function opening a reader's store over the same data (on
// PostgreSQL: a store of its own, pgkv.Options.ReadOnly).
func openShared(t *testing.T) (*Log, kv.Store, func() kv.Store, tlogtest.Key) {
	t.Helper()
	k := tlogtest.NewKey(t, "example.com/reader")
	var store kv.Store
	readerStore := func() kv.Store { return sharedStore{store} }
	if pgtest.Enabled() {
		dsn := pgtest.DSN(t)
		ps, err := pgkv.Open(context.Background(), dsn, pgkv.Options{})
		if err != nil {
			t.Fatal(err)
		}
		store = ps
		readerStore = func() kv.Store {
			rs, err := pgkv.Open(context.Background(), dsn, pgkv.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			return rs
		}
	} else {
		ps, err := pebblekv.Open(filepath.Join(t.TempDir(), "db"), pebblekv.Options{})
		if err != nil {
			t.Fatal(err)
		}
		store = ps
	}
	w, err := Open("", Options{Signer: k.Signer, Store: store, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, store, readerStore, k
}

func appendRef(t *testing.T, l *Log, ref *tlogtest.Tree, n int) {
	t.Helper()
	entries := make([]Entry, 0, 1000)
	flush := func() {
		if _, err := l.AppendEntries(context.Background(), entries); err != nil {
			t.Fatal(err)
		}
		entries = entries[:0]
	}
	for range n {
		data := fmt.Appendf(nil, "entry %d", ref.Size())
		ref.Add(data)
		entries = append(entries, Entry{Data: data})
		if len(entries) == cap(entries) {
			flush()
		}
	}
	if len(entries) > 0 {
		flush()
	}
}

// checkView checks every tile, bundle and a few proofs r serves at its
// size n against the reference tree, and that nothing beyond n is served.
func checkView(t *testing.T, r *Log, ref *tlogtest.Tree, n int64) {
	t.Helper()
	cp, signed := r.Checkpoint()
	if cp.N != n || cp.Hash != ref.Root(n) {
		t.Fatalf("view serves size %d root %v, want size %d root %v", cp.N, cp.Hash, n, ref.Root(n))
	}
	if pcp, psigned := r.Published(); pcp.N != cp.N || string(psigned) != string(signed) {
		t.Fatalf("Published %d differs from Checkpoint %d", pcp.N, cp.N)
	}
	for _, tile := range tlog.NewTiles(itlog.TileHeight, 0, n) {
		for _, tt := range []tlog.Tile{tile, {H: tile.H, L: itlog.EntriesLevel, N: tile.N, W: tile.W}} {
			if tt.L == itlog.EntriesLevel && tile.L != 0 {
				continue
			}
			got, err := r.ReadTile(tt)
			if err != nil {
				t.Fatalf("tile %v at size %d: %v", tt, n, err)
			}
			if string(got) != string(ref.Tile(tt)) {
				t.Fatalf("tile %v at size %d differs from the reference", tt, n)
			}
		}
	}
	for _, i := range []int64{0, n / 2, n - 1} {
		if n == 0 {
			break
		}
		p, err := r.InclusionProof(i, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, n, ref.Root(n), i, ref.LeafHash(i)); err != nil {
			t.Fatalf("inclusion proof of %d in %d: %v", i, n, err)
		}
		e, err := r.Entry(i)
		if err != nil || string(e) != fmt.Sprintf("entry %d", i) {
			t.Fatalf("entry %d: %q %v", i, e, err)
		}
	}
	if _, err := r.Entry(n); !errors.Is(err, ErrNotFound) {
		t.Fatalf("entry %d beyond the view's size %d: %v, want ErrNotFound", n, n, err)
	}
	if _, err := r.InclusionProof(0, n+1); !errors.Is(err, ErrRange) {
		t.Fatalf("proof at size %d beyond the view's %d: %v, want ErrRange", n+1, n, err)
	}
	next := tlog.Tile{H: itlog.TileHeight, L: 0, N: n / itlog.TileWidth, W: int(n%itlog.TileWidth) + 1}
	if _, err := r.ReadTile(next); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tile %v beyond the view's size %d: %v, want ErrNotFound", next, n, err)
	}
}

// TestReaderBehindTheStore: a view whose released checkpoint is older than
// the store's tree (the active node is ahead of what it released) serves
// exactly the tree at the released size: partial bundles and tiles read as
// prefixes of what the store holds now, across a full bundle, a full
// level-1 tile and a new level-2 tile.
func TestReaderBehindTheStore(t *testing.T) {
	w, store, readerStore, k := openShared(t)
	ref := &tlogtest.Tree{}
	for _, step := range []struct{ at, then int }{
		{300, 100},     // partial bundle 1 filled since
		{700, 65600},   // partial level-1 tile full since, a level-2 tile appeared
		{66500, 10},    // the partial bundle grew by a record
		{66600, 70000}, // everything moved
	} {
		appendRef(t, w, ref, step.at-int(ref.Size()))
		appendRef(t, w, ref, step.then)
		// Forget the archived checkpoints above step.at, as if the
		// active node had not released them yet.
		b := store.NewBatch(0)
		if err := b.DeleteRange(archiveKey(int64(step.at)+1), []byte{prefixArchive + 1}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		r, err := OpenReader(readerStore(), ReaderOptions{Verifier: k.Verifier, Refresh: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		checkView(t, r, ref, int64(step.at))
		r.Close()
	}
}

// TestReaderFollows: a view follows the writer within its refresh interval,
// never serves a size the writer has not released, and writes nothing.
func TestReaderFollows(t *testing.T) {
	w, _, readerStore, k := openShared(t)
	ref := &tlogtest.Tree{}
	if _, err := OpenReader(readerStore(), ReaderOptions{Verifier: tlogtest.NewKey(t, "example.com/other").Verifier}); err == nil {
		t.Fatal("a view with another log's key opened")
	}
	r, err := OpenReader(readerStore(), ReaderOptions{Verifier: k.Verifier, Refresh: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkView(t, r, ref, 0)
	for _, n := range []int{1, 255, 1, 300, 4000} {
		appendRef(t, w, ref, n)
		size := ref.Size()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		cp, _, err := r.WaitSize(ctx, size)
		cancel()
		if err != nil {
			t.Fatalf("the view did not reach size %d: %v", size, err)
		}
		if cp.N != size {
			t.Fatalf("the view reached size %d, the writer released %d", cp.N, size)
		}
		t.Logf("size %d: the view caught up in %v", size, time.Since(start))
		_, wsigned := w.Checkpoint()
		if _, rsigned := r.Checkpoint(); string(rsigned) != string(wsigned) {
			t.Fatalf("the view serves another note than the writer at size %d", size)
		}
		checkView(t, r, ref, size)
		if i, p, err := r.InclusionProofByHash(ref.LeafHash(size-1), size); err != nil || i != size-1 ||
			tlog.CheckRecord(p, size, ref.Root(size), i, ref.LeafHash(i)) != nil {
			t.Fatalf("proof by hash of entry %d: %d %v", size-1, i, err)
		}
	}

	// Writes are refused, and none reaches the store.
	if _, err := r.Append(context.Background(), []byte("x")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Append on a view: %v, want ErrReadOnly", err)
	}
	if err := r.WriteExt(func(w Writer) error { return w.Set([]byte("k"), []byte("v")) }); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("WriteExt on a view: %v, want ErrReadOnly", err)
	}
	if err := r.SetHookState("x", []byte("v")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("SetHookState on a view: %v, want ErrReadOnly", err)
	}
	if err := r.PurgeExt(context.Background(), [][2][]byte{{[]byte("a"), nil}}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("PurgeExt on a view: %v, want ErrReadOnly", err)
	}
	if pgtest.Enabled() {
		// Below the view, a read-only PostgreSQL store is fenced too.
		rs := readerStore()
		b := rs.NewBatch(0)
		b.Set(extKey([]byte("k")), []byte("v"))
		if err := b.Commit(true); !errors.Is(err, kv.ErrFenced) {
			t.Fatalf("a commit on a read-only PostgreSQL store: %v, want ErrFenced", err)
		}
		b.Close()
		rs.Close()
	}
	if _, err := w.GetExt([]byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a view's write reached the store: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// The writer's store is still open and in use.
	appendRef(t, w, ref, 1)
}

// TestReaderNothingServed: a view of a store holding no log fails with
// ErrNothingServed.
func TestReaderNothingServed(t *testing.T) {
	k := tlogtest.NewKey(t, "example.com/reader")
	ps, err := pebblekv.Open(filepath.Join(t.TempDir(), "db"), pebblekv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReader(ps, ReaderOptions{Verifier: k.Verifier}); !errors.Is(err, ErrNothingServed) {
		t.Fatalf("OpenReader on an empty store: %v, want ErrNothingServed", err)
	}
}
