package tlog

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
)

// tilePathVectors are cross-checked vectors (tessera layout.TilePath and
// torchwood.TilePath agree on each).
var tilePathVectors = []struct {
	l    int
	n    int64
	w    int
	path string
}{
	{0, 0, 256, "tile/0/000"},
	{0, 0, 3, "tile/0/000.p/3"},
	{0, 1, 256, "tile/0/001"},
	{1, 0, 1, "tile/1/000.p/1"},
	{0, 999, 256, "tile/0/999"},
	{0, 1000, 256, "tile/0/x001/000"},
	{0, 1234067, 256, "tile/0/x001/x234/067"},
	{2, 1234067, 17, "tile/2/x001/x234/067.p/17"},
	{0, 1000000, 5, "tile/0/x001/x000/000.p/5"},
	{63, 0, 1, "tile/63/000.p/1"},
	{EntriesLevel, 0, 256, "tile/entries/000"},
	{EntriesLevel, 0, 3, "tile/entries/000.p/3"},
	{EntriesLevel, 1234067, 17, "tile/entries/x001/x234/067.p/17"},
	{EntriesLevel, 1000000, 5, "tile/entries/x001/x000/000.p/5"},
	{0, 1<<63 - 1, 255, "tile/0/x009/x223/x372/x036/x854/x775/807.p/255"},
}

// xmodPath is the C2SP path derived from x/mod's sumdb path, the way
// torchwood does it: strip the height segment, rename "data" to "entries".
func xmodPath(t tlog.Tile) string {
	if t.L == EntriesLevel {
		return "tile/entries/" + strings.TrimPrefix(t.Path(), "tile/8/data/")
	}
	return "tile/" + strings.TrimPrefix(t.Path(), "tile/8/")
}

func TestTilePathVectors(t *testing.T) {
	for _, v := range tilePathVectors {
		tile := tlog.Tile{H: TileHeight, L: v.l, N: v.n, W: v.w}
		if got := TilePath(tile); got != v.path {
			t.Errorf("TilePath(%+v) = %q, want %q", tile, got, v.path)
		}
		if got := xmodPath(tile); got != v.path {
			t.Errorf("x/mod path of %+v = %q, want %q", tile, got, v.path)
		}
		got, err := ParseTilePath(v.path)
		if err != nil || got != tile {
			t.Errorf("ParseTilePath(%q) = %+v, %v; want %+v", v.path, got, err, tile)
		}
	}
}

// TestTilePathRoundTrip checks TilePath and ParseTilePath against each other
// and against x/mod's paths over many levels, indexes and widths.
func TestTilePathRoundTrip(t *testing.T) {
	ns := []int64{0, 1, 9, 10, 99, 100, 999, 1000, 1001, 999999, 1000000, 1234567890, 1<<62 + 12345, 1<<63 - 1}
	for l := EntriesLevel; l <= MaxTileLevel; l++ {
		for _, n := range ns {
			for _, w := range []int{1, 2, 17, 100, 255, 256} {
				tile := tlog.Tile{H: TileHeight, L: l, N: n, W: w}
				p := TilePath(tile)
				if x := xmodPath(tile); x != p {
					t.Fatalf("TilePath(%+v) = %q, x/mod gives %q", tile, p, x)
				}
				got, err := ParseTilePath(p)
				if err != nil || got != tile {
					t.Fatalf("ParseTilePath(%q) = %+v, %v; want %+v", p, got, err, tile)
				}
			}
		}
	}
	for _, bad := range []tlog.Tile{{H: 8, W: 0}, {H: 8, W: 257}, {H: 10, W: 1}, {H: 8, L: 64, W: 1}, {H: 8, L: -2, W: 1}, {H: 8, N: -1, W: 1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("TilePath(%+v) did not panic", bad)
				}
			}()
			TilePath(bad)
		}()
	}
}

func TestParseTilePathRejects(t *testing.T) {
	for _, p := range []string{
		"", "tile", "tile/", "tile/0", "tile/0/", "/tile/0/000", "tile/0/000/", "tile//000",
		"tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/01", "tile/0/000.p/", "tile/0/000.p/1/",
		"tile/0/000.p/-1", "tile/0/000.p/+1", "tile/0/000.p/1.p/2", "tile/0/000.P/1", "tile/0/000.p.1",
		"tile/00/000", "tile/01/000", "tile/64/000", "tile/100/000", "tile/-1/000", "tile/+1/000", "tile/data/000",
		"tile/8/0/000", "tile/entries/entries/000", "tile/ENTRIES/000",
		"tile/0/0", "tile/0/00", "tile/0/0000", "tile/0/1", "tile/0/abc", "tile/0/00a", "tile/0/ 00",
		"tile/0/x000/001", "tile/0/x000/x001/002", "tile/0/001/000", "tile/0/x001/x000", "tile/0/x001", "tile/0/xx01/000",
		"tile/0/x01/000", "tile/0/x0001/000", "tile/0/X001/000",
		"tile/0/x009/x223/x372/x036/x854/x775/808", "tile/0/x010/x000/x000/x000/x000/x000/000",
		"tile/0/x001/x000/x000/x000/x000/x000/x000/000",
		"tiles/0/000", "Tile/0/000", "tile\\0\\000", "tile/0/000\n", " tile/0/000",
		"tile/0/" + strings.Repeat("x001/", 40) + "000",
	} {
		if tile, err := ParseTilePath(p); err == nil {
			t.Errorf("ParseTilePath(%q) = %+v, want an error", p, tile)
		} else if !errors.Is(err, ErrMalformedTilePath) {
			t.Errorf("ParseTilePath(%q) error %v does not wrap ErrMalformedTilePath", p, err)
		}
	}
}

// TestTilePathMutations flips bits of valid paths, truncates them and deletes
// bytes from them: every result either fails to parse or is the canonical
// path of a different tile (which a client then detects, since the tile it
// asked for is not the one the path names).
func TestTilePathMutations(t *testing.T) {
	for _, v := range tilePathVectors {
		orig, err := ParseTilePath(v.path)
		if err != nil {
			t.Fatal(err)
		}
		check := func(what, m string) {
			t.Helper()
			got, err := ParseTilePath(m)
			if err != nil {
				return
			}
			if got == orig {
				t.Errorf("%q with %s (%q) parses to the same tile %+v", v.path, what, m, got)
			}
			if TilePath(got) != m {
				t.Errorf("%q with %s (%q) parses to %+v, whose path is %q: not canonical", v.path, what, m, got, TilePath(got))
			}
		}
		for i := range v.path {
			for _, f := range flips {
				m := []byte(v.path)
				m[i] ^= f
				check(fmt.Sprintf("byte %d ^ %#x", i, f), string(m))
			}
			check(fmt.Sprintf("truncation to %d", i), v.path[:i])
			check(fmt.Sprintf("byte %d deleted", i), v.path[:i]+v.path[i+1:])
		}
	}
}

// TestTileExists checks PartialWidth, TileExists and TileStart against x/mod's
// NewTiles: for each size n, the tiles NewTiles(8, 0, n) lists exist (with
// every narrower width of a partial), the next width and the next index do
// not, and the same holds for the entry bundles of level 0.
func TestTileExists(t *testing.T) {
	sizes := []int64{0, 1, 2, 255, 256, 257, 511, 512, 513, 1000, 65535, 65536, 65537, 70000, 16777216, 16777217}
	for _, n := range sizes {
		tiles := tlog.NewTiles(TileHeight, 0, n)
		partial := map[int]int{}
		for _, tile := range tiles {
			for _, l := range []int{tile.L, EntriesLevel} {
				if l == EntriesLevel && tile.L != 0 {
					continue
				}
				tl := tile
				tl.L = l
				if !TileExists(tl, n) {
					t.Errorf("size %d: TileExists(%s) = false", n, TilePath(tl))
				}
				for w := 1; w < tile.W; w++ {
					tw := tl
					tw.W = w
					if !TileExists(tw, n) {
						t.Errorf("size %d: TileExists(%s) = false", n, TilePath(tw))
					}
				}
			}
			if tile.W < TileWidth {
				partial[tile.L] = tile.W
				if start, ok := TileStart(tile); !ok || start != tile.N<<(uint(tile.L+1)*TileHeight) {
					t.Errorf("TileStart(%+v) = %d, %v", tile, start, ok)
				}
			}
		}
		for l := EntriesLevel; l <= 4; l++ {
			xl := l
			if l == EntriesLevel {
				xl = 0
			}
			count := n >> (uint(xl) * TileHeight)
			w := PartialWidth(l, n)
			if w != partial[xl] {
				t.Errorf("PartialWidth(%d, %d) = %d, NewTiles says %d", l, n, w, partial[xl])
			}
			next := tlog.Tile{H: TileHeight, L: l, N: count / TileWidth, W: w + 1}
			if TileExists(next, n) {
				t.Errorf("size %d: TileExists(%s) = true", n, TilePath(next))
			}
			beyond := tlog.Tile{H: TileHeight, L: l, N: count/TileWidth + 1, W: 1}
			if TileExists(beyond, n) {
				t.Errorf("size %d: TileExists(%s) = true", n, TilePath(beyond))
			}
		}
	}
	for _, bad := range []tlog.Tile{{H: 8, L: 0, N: -1, W: 1}, {H: 8, L: 0, N: 0, W: 0}, {H: 8, L: 0, N: 0, W: 257}, {H: 8, L: 64, N: 0, W: 1}, {H: 8, L: 8, N: 0, W: 1}, {H: 8, L: 0, N: 1 << 60, W: 256}} {
		if TileExists(bad, 1<<62) {
			t.Errorf("TileExists(%+v) = true", bad)
		}
	}
	if s, ok := TileStart(tlog.Tile{H: 8, L: EntriesLevel, N: 3, W: 1}); !ok || s != 768 {
		t.Error("TileStart of bundle 3")
	}
	if s, ok := TileStart(tlog.Tile{H: 8, L: 1, N: 2, W: 1}); !ok || s != 2<<16 {
		t.Error("TileStart of tile 1/2")
	}
	if _, ok := TileStart(tlog.Tile{H: 8, L: 7, N: 1, W: 1}); ok {
		t.Error("TileStart of tile 7/1 overflows int64 but reported ok")
	}
	if s, ok := TileStart(tlog.Tile{H: 8, L: 6, N: 1, W: 1}); !ok || s != 1<<56 {
		t.Error("TileStart of tile 6/1")
	}
}

// TestStoredHashReaderTiles checks StoredHashReader against x/mod over tiles
// built by x/mod, and that it refuses short tiles and miscounted answers.
func TestStoredHashReaderTiles(t *testing.T) {
	var entries [][]byte
	for i := 0; i < 700; i++ {
		entries = append(entries, []byte(fmt.Sprintf("entry %d", i)))
	}
	hashes := tlogtest.NewTree(entries...)
	n := int64(len(entries))
	tiles := map[[2]int64][]byte{}
	for _, tile := range tlog.NewTiles(TileHeight, 0, n) {
		data, err := tlog.ReadTileData(tile, hashes)
		if err != nil {
			t.Fatal(err)
		}
		tiles[[2]int64{int64(tile.L), tile.N}] = data
	}
	calls := 0
	r := StoredHashReader(func(ts []tlog.Tile) ([][]byte, error) {
		calls++
		out := make([][]byte, len(ts))
		seen := map[[2]int64]bool{}
		for i, tile := range ts {
			k := [2]int64{int64(tile.L), tile.N}
			if seen[k] {
				return nil, fmt.Errorf("tile %v asked twice in one call", k)
			}
			seen[k] = true
			out[i] = tiles[k]
		}
		return out, nil
	})
	var all []int64
	for i := int64(0); i < tlog.StoredHashCount(n); i++ {
		all = append(all, i)
	}
	want, err := hashes.ReadHashes(all)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadHashes(all)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("stored hash %d differs", i)
		}
	}
	if calls != 1 {
		t.Errorf("StoredHashReader read tiles in %d calls, want 1", calls)
	}
	short := StoredHashReader(func(ts []tlog.Tile) ([][]byte, error) {
		out := make([][]byte, len(ts))
		for i := range ts {
			out[i] = make([]byte, ts[i].W*32-1)
		}
		return out, nil
	})
	if _, err := short.ReadHashes([]int64{0, 1}); err == nil {
		t.Error("StoredHashReader accepted a short tile")
	}
	miscount := StoredHashReader(func(ts []tlog.Tile) ([][]byte, error) { return nil, nil })
	if _, err := miscount.ReadHashes([]int64{0}); err == nil {
		t.Error("StoredHashReader accepted a reader returning no tiles")
	}
	failing := StoredHashReader(func(ts []tlog.Tile) ([][]byte, error) { return nil, errors.New("disk on fire") })
	if _, err := failing.ReadHashes([]int64{0}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("StoredHashReader error = %v", err)
	}
}
