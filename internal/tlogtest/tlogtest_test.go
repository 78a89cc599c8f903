package tlogtest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestTesseraVectors checks the reference tree against the tessera vectors:
// every root, and every checkpoint re-signed byte for byte.
func TestTesseraVectors(t *testing.T) {
	tree := TesseraTree()
	k := TesseraKey(t)
	for n, cp := range TesseraCheckpoints {
		root := tree.Root(int64(n))
		if b64 := root.String(); b64 != cp.Root {
			t.Fatalf("root of size %d is %s, want %s", n, b64, cp.Root)
		}
		if got, want := tree.Checkpoint(TesseraOrigin, int64(n), k.Signer), TesseraCheckpoint(n); !bytes.Equal(got, want) {
			t.Fatalf("checkpoint %d:\n%s\nwant\n%s", n, got, want)
		}
		if _, err := note.Open(TesseraCheckpoint(n), note.VerifierList(k.Verifier)); err != nil {
			t.Fatalf("checkpoint %d does not verify: %v", n, err)
		}
	}
}

// TestProofs checks every inclusion and consistency proof of trees up to
// 300 entries (across the 256 tile boundary) with x/mod's checkers.
func TestProofs(t *testing.T) {
	tree := NewTreeN(300, "entry %d")
	for n := int64(1); n <= tree.Size(); n += 37 {
		root := tree.Root(n)
		for i := int64(0); i < n; i++ {
			if err := tlog.CheckRecord(tree.InclusionProof(i, n), n, root, i, tlog.RecordHash(tree.Entry(i))); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, n, err)
			}
			if tree.LeafHash(i) != tlog.RecordHash(tree.Entry(i)) {
				t.Fatalf("leaf hash %d", i)
			}
		}
		for m := int64(1); m <= n; m++ {
			if err := tlog.CheckTree(tree.ConsistencyProof(m, n), n, root, m, tree.Root(m)); err != nil {
				t.Fatalf("consistency %d -> %d: %v", m, n, err)
			}
		}
	}
	if len(tree.ConsistencyProof(0, 5)) != 0 || len(tree.ConsistencyProof(5, 5)) != 0 || tree.Root(0) != EmptyRoot {
		t.Fatal("the empty cases")
	}
	if _, err := tree.ReadHashes([]int64{1 << 40}); err == nil {
		t.Fatal("ReadHashes beyond the tree")
	}
}

func TestAddCheckpointBody(t *testing.T) {
	tree := TesseraTree()
	k := TesseraKey(t)
	cp := tree.Checkpoint(TesseraOrigin, 15, k.Signer)
	body := tree.AddCheckpointBody(14, 15, cp)
	want := "old 14\nGiUtVP0XhIaZ/fl7ReMLgw+9YUtjFAt8kaTdfOe2u/I=\nN4bcGOdfRQ1JnxGcHq7iDdgpPyH8nQhxShjXKxzWDrU=\n3cFRCtyHVxAUTugFyRgo30efbl+BVxdTQDIGg5H61SA=\nbC+VwvrJbalNVjfkdI8kUgs7mJoXrqiXCE7bgnD28pY=\n\n" + string(cp)
	if body != want {
		t.Fatalf("body:\n%s\nwant\n%s", body, want)
	}
	if got := AddCheckpointBody(0, nil, cp); got != "old 0\n\n"+string(cp) {
		t.Fatalf("body from 0:\n%s", got)
	}
}

// TestTileReader serves a tree's tiles over HTTP at the paths TilePath
// gives and reads its hashes back through x/mod's authenticating
// TileHashReader.
func TestTileReader(t *testing.T) {
	tree := NewTreeN(600, "e%d")
	n := tree.Size()
	tiles := map[string][]byte{}
	for _, tile := range tlog.NewTiles(TileHeight, 0, n) {
		tiles["/"+TilePath(tile)] = tree.Tile(tile)
		if tile.L == 0 {
			b := tile
			b.L = EntriesLevel
			tiles["/"+TilePath(b)] = tree.Tile(b)
		}
	}
	if _, ok := tiles["/tile/entries/001"]; !ok {
		t.Fatalf("no full bundle 1 among %d paths", len(tiles))
	}
	if _, ok := tiles["/tile/0/002.p/88"]; !ok {
		t.Fatal("no partial tile 0/002.p/88")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := tiles[r.URL.Path]; ok {
			w.Write(b)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	hr := tlog.TileHashReader(tlog.Tree{N: n, Hash: tree.Root(n)}, TileReader{URL: srv.URL})
	for _, i := range []int64{0, 255, 256, 599} {
		h, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
		if err != nil || h[0] != tree.LeafHash(i) {
			t.Fatalf("leaf %d: %v", i, err)
		}
	}
	bad := tlog.TileHashReader(tlog.Tree{N: n, Hash: tree.Root(n - 1)}, TileReader{URL: srv.URL})
	if _, err := bad.ReadHashes([]int64{0}); err == nil {
		t.Fatal("tiles authenticated against the wrong root")
	}
	if _, err := (TileReader{URL: srv.URL + "/nothing"}).ReadTiles([]tlog.Tile{{H: 8, N: 0, W: 1}}); err == nil {
		t.Fatal("a 404 read as a tile")
	}
	if got, want := string(tree.Tile(tlog.Tile{H: 8, L: EntriesLevel, N: 0, W: 2})), "\x00\x02e0\x00\x02e1"; got != want {
		t.Fatalf("bundle %q, want %q", got, want)
	}
}

// fakeTB records a Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestEventually(t *testing.T) {
	calls := 0
	Eventually(t, time.Second, "three calls", func() (bool, string) { calls++; return calls == 3, "" })
	if calls != 3 {
		t.Fatalf("%d calls", calls)
	}
	f := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("recovered %v", r)
			}
		}()
		Eventually(f, 30*time.Millisecond, "never", func() (bool, string) { return false, "still false" })
	}()
	if !strings.Contains(f.msg, "never") || !strings.Contains(f.msg, "still false") {
		t.Fatalf("message %q", f.msg)
	}
}

func TestKeys(t *testing.T) {
	k := NewKey(t, "example.com/k")
	ws, wvkey := NewWitnessKey(t, "witness.example/w")
	wv, err := fnote.NewVerifierForCosignatureV1(wvkey)
	if err != nil {
		t.Fatal(err)
	}
	tree := NewTreeN(3, "%d")
	msg := tree.Checkpoint("example.com/k", 3, k.Signer, ws)
	n, err := note.Open(msg, note.VerifierList(k.Verifier, wv))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("a checkpoint signed and cosigned by the test keys: %v", err)
	}
}
