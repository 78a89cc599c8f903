package tlog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// TileHeight is the C2SP tile height: a full tile holds 1<<8 = 256 hashes,
// and a full entry bundle 256 entries.
const TileHeight = 8

// TileWidth is the number of hashes in a full tile or entries in a full bundle.
const TileWidth = 1 << TileHeight

// MaxTileLevel is the largest hash tile level C2SP allows in a path.
const MaxTileLevel = 63

// EntriesLevel is the Tile.L value this package uses for entry bundles, as
// x/mod uses L == -1 for its data tiles.
const EntriesLevel = -1

// ErrMalformedTilePath is returned, possibly wrapped, for a path that is not
// a canonical c2sp.org/tlog-tiles tile or entry bundle path.
var ErrMalformedTilePath = errors.New("malformed tile path")

// TilePath returns the C2SP path of t: "tile/<L>/<N>[.p/<W>]" for a hash tile
// or "tile/entries/<N>[.p/<W>]" for an entry bundle (t.L == EntriesLevel).
// It is x/mod's path with the height segment removed and "data" renamed.
// t.H must be TileHeight and 1 <= t.W <= TileWidth.
func TilePath(t tlog.Tile) string {
	if t.H != TileHeight || t.W < 1 || t.W > TileWidth || t.N < 0 || t.L < EntriesLevel || t.L > MaxTileLevel {
		panic(fmt.Sprintf("tlog: TilePath of invalid tile %+v", t))
	}
	var b strings.Builder
	b.Grow(32)
	b.WriteString("tile/")
	if t.L == EntriesLevel {
		b.WriteString("entries/")
	} else {
		b.WriteString(strconv.Itoa(t.L))
		b.WriteByte('/')
	}
	writeN(&b, t.N)
	if t.W < TileWidth {
		b.WriteString(".p/")
		b.WriteString(strconv.Itoa(t.W))
	}
	return b.String()
}

// writeN writes n as 3-digit groups, all but the last prefixed with "x".
func writeN(b *strings.Builder, n int64) {
	var groups [7]int64
	k := 0
	for {
		groups[k] = n % 1000
		k++
		n /= 1000
		if n == 0 {
			break
		}
	}
	for i := k - 1; i >= 0; i-- {
		if i > 0 {
			b.WriteByte('x')
		}
		g := groups[i]
		b.WriteByte(byte('0' + g/100))
		b.WriteByte(byte('0' + g/10%10))
		b.WriteByte(byte('0' + g%10))
		if i > 0 {
			b.WriteByte('/')
		}
	}
}

// ParseTilePath parses a canonical C2SP tile or entry bundle path (with no
// leading slash): the inverse of TilePath. Anything that TilePath would not
// produce is rejected: leading zeros in L or W, ".p/0", ".p/256", an "x" on
// the last group, groups that are not exactly three digits, levels above 63,
// an index beyond int64, and any extra segments. Every error wraps
// ErrMalformedTilePath.
func ParseTilePath(path string) (tlog.Tile, error) {
	bad := func(why string) (tlog.Tile, error) {
		return tlog.Tile{}, fmt.Errorf("%w %q: %s", ErrMalformedTilePath, path, why)
	}
	if len(path) > 128 {
		return bad("too long")
	}
	rest, ok := strings.CutPrefix(path, "tile/")
	if !ok {
		return bad(`does not start with "tile/"`)
	}
	t := tlog.Tile{H: TileHeight, W: TileWidth}
	level, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("missing index")
	}
	if level == "entries" {
		t.L = EntriesLevel
	} else {
		l, err := parseSmall(level, MaxTileLevel)
		if err != nil {
			return bad("level: " + err.Error())
		}
		t.L = l
	}
	if idx, w, ok := strings.Cut(rest, ".p/"); ok {
		width, err := parseSmall(w, TileWidth-1)
		if err != nil || width == 0 {
			return bad("partial width must be 1 to 255 with no leading zeros")
		}
		t.W = width
		rest = idx
	}
	groups := strings.Split(rest, "/")
	if len(groups) > 7 {
		return bad("index has too many groups")
	}
	var n int64
	for i, g := range groups {
		last := i == len(groups)-1
		if !last {
			var ok bool
			g, ok = strings.CutPrefix(g, "x")
			if !ok {
				return bad(`every index group but the last must start with "x"`)
			}
		}
		if len(g) != 3 || g[0] < '0' || g[0] > '9' || g[1] < '0' || g[1] > '9' || g[2] < '0' || g[2] > '9' {
			return bad("index groups must be three digits")
		}
		v := int64(g[0]-'0')*100 + int64(g[1]-'0')*10 + int64(g[2]-'0')
		if n > (1<<63-1-v)/1000 {
			return bad("index out of range")
		}
		n = n*1000 + v
	}
	if len(groups) > 1 && strings.TrimPrefix(groups[0], "x") == "000" {
		return bad("leading zero group in index")
	}
	t.N = n
	return t, nil
}

// parseSmall parses a decimal in [0, max] with no leading zeros.
func parseSmall(s string, max int) (int, error) {
	if s == "" || len(s) > 3 {
		return 0, errors.New("not a small decimal")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("leading zero")
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a decimal")
		}
		v = v*10 + int(s[i]-'0')
	}
	if v > max {
		return 0, fmt.Errorf("above %d", max)
	}
	return v, nil
}

// TileStart returns the first leaf index covered by tile t, and false if
// that index does not fit in an int64 (tiles far beyond any real tree).
func TileStart(t tlog.Tile) (int64, bool) {
	l := t.L
	if l == EntriesLevel {
		l = 0 // a bundle covers the same entries as the level-0 tile
	}
	shift := uint(l+1) * TileHeight
	if t.N < 0 || l < 0 || shift >= 63 || t.N > (1<<63-1)>>shift {
		return 0, false
	}
	return t.N << shift, true
}

// PartialWidth returns the width of the partial tile at level l (or of the
// partial entry bundle, l == EntriesLevel) for a tree of size n, or 0 if the
// tree has no partial tile at that level.
func PartialWidth(l int, n int64) int {
	if l == EntriesLevel {
		l = 0
	}
	return int((n >> (uint(l) * TileHeight)) % TileWidth)
}

// TileExists reports whether tile t (a hash tile or an entry bundle, full or
// partial) is implied by a tree of size n: a full tile lies entirely inside the
// tree, and a partial tile of width W exists once the tree has at least W
// hashes at that level in that tile (partial tiles are prefixes, so every
// width up to the current one is valid).
func TileExists(t tlog.Tile, n int64) bool {
	if t.N < 0 || t.W < 1 || t.W > TileWidth {
		return false
	}
	l := t.L
	if l == EntriesLevel {
		l = 0
	}
	if l > MaxTileLevel || l < 0 {
		return false
	}
	if uint(l)*TileHeight >= 63 {
		return false
	}
	// Number of hashes stored at this tile level for size n.
	count := n >> (uint(l) * TileHeight)
	if t.N > (count-int64(t.W))/TileWidth {
		return false
	}
	return t.N*TileWidth+int64(t.W) <= count
}
