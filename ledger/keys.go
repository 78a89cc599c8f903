package ledger

import (
	"encoding/binary"

	"golang.org/x/mod/sumdb/tlog"
)

// The pebble key space. Every key is a one-byte prefix and fixed-width
// big-endian integers, so index order is key order.
//
//	'm' "format"          store format version (decimal text)
//	'm' "origin"          the log's origin line
//	'm' "key"             the log key: its name, a space, its key hash
//	                      (8 hex digits), so another key is refused
//	'm' "storeid"         16 random bytes naming this store (keyguard.go)
//	's'                   tree state: size (8 bytes BE) || root hash (32)
//	't' L(1) N(8)         hash tile at level L, index N: full (8192 bytes) or,
//	                      for L >= 1, the current partial (a prefix of the
//	                      future full tile). The partial level-0 tile is not
//	                      stored: it is the leaf hashes of the partial bundle.
//	'i' L(1) N(8)         the inner nodes of full hash tile L/N: tree levels
//	                      8L+1 .. 8L+7 of the subtree it spans (128+64+...+2 =
//	                      254 hashes, level by level), kept for proofs
//	'b' N(8)              entry bundle N, once full (256 entries)
//	'e' i(8)              entries i, i+1, ... of the current partial bundle,
//	                      bundle-encoded, as appended by one commit (deleted
//	                      when the bundle is full: see edge.go)
//	'H' leafhash[:8] i(8) leaf-hash index: entry i's leaf hash starts with
//	                      these 8 bytes (value empty; a lookup checks the
//	                      whole hash in the level-0 tile). Format 2.
//	'h' leafhash(32) i(8) the leaf-hash index of format 1 (the whole hash):
//	                      read, no longer written (see index.go)
//	'x' ...               extension namespace, for the layers above (events)
const (
	prefixMeta   = 'm'
	prefixState  = 's'
	prefixTile   = 't'
	prefixBundle = 'b'
	prefixDelta  = 'e'
	prefixInner  = 'i'
	prefixLeaf   = 'H'
	prefixLeaf1  = 'h' // format 1
	prefixExt    = 'x'
)

// formatVersion is the key space's version. Format 1 stores (whose
// leaf-hash index keys hold the whole hash) are still read: Open moves them
// to today's (see index.go), after which a binary that knows only 1 refuses
// them. Format 3 differs from 2 only in the events layer's extension keys:
// it may hold payloads of version 3 (eventstore), which a binary knowing
// format 2 could not open; Open moves a format 1 or 2 store to 3 by
// rewriting the marker alone, so such a binary refuses the store instead.
const (
	formatVersion  = "3"
	formatVersion2 = "2"
	formatVersion1 = "1"
)

var (
	keyFormat  = []byte("mformat")
	keyOrigin  = []byte("morigin")
	keyKey     = []byte("mkey")
	keyStoreID = []byte("mstoreid")
	keyState   = []byte{prefixState}
)

// seqKey is the 9-byte key prefix, n (big-endian): keys of one prefix sort
// by n.
func seqKey(prefix byte, n int64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 9), prefix), uint64(n))
}

func tileKey(l int, n int64) []byte {
	k := make([]byte, 10)
	k[0] = prefixTile
	k[1] = byte(l)
	binary.BigEndian.PutUint64(k[2:], uint64(n))
	return k
}

func bundleKey(n int64) []byte { return seqKey(prefixBundle, n) }

func innerKey(l int, n int64) []byte {
	k := tileKey(l, n)
	k[0] = prefixInner
	return k
}

// innerHashes is the number of inner nodes of a full tile (levels 1 to 7
// within it); innerStart(k) is where level k starts in an inner record.
const innerHashes = 254

func innerStart(k int) int { return 256 - 512>>k }

func deltaKey(i int64) []byte { return seqKey(prefixDelta, i) }

// leafPrefixLen is how much of a leaf hash a leaf-hash index key holds.
const leafPrefixLen = 8

func appendLeafKey(k []byte, h tlog.Hash, i int64) []byte {
	k = append(k, prefixLeaf)
	k = append(k, h[:leafPrefixLen]...)
	return binary.BigEndian.AppendUint64(k, uint64(i))
}

// appendLeafKey1 is appendLeafKey in format 1.
func appendLeafKey1(k []byte, h tlog.Hash, i int64) []byte {
	k = append(k, prefixLeaf1)
	k = append(k, h[:]...)
	return binary.BigEndian.AppendUint64(k, uint64(i))
}

func encodeState(t tlog.Tree) []byte {
	v := make([]byte, 8+tlog.HashSize)
	binary.BigEndian.PutUint64(v, uint64(t.N))
	copy(v[8:], t.Hash[:])
	return v
}

func decodeState(v []byte) (tlog.Tree, bool) {
	if len(v) != 8+tlog.HashSize {
		return tlog.Tree{}, false
	}
	var t tlog.Tree
	t.N = int64(binary.BigEndian.Uint64(v))
	if t.N < 0 {
		return tlog.Tree{}, false
	}
	copy(t.Hash[:], v[8:])
	return t, true
}

func extKey(key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = prefixExt
	copy(k[1:], key)
	return k
}
