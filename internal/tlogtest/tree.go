// Package tlogtest holds what the tests of every package share: an in-memory
// reference tree built only with golang.org/x/mod/sumdb/tlog (roots, proofs,
// tiles, bundles, signed checkpoints and c2sp.org/tlog-witness
// add-checkpoint bodies), test keys and the tessera test vectors, Eventually
// for polling, an HTTP tile reader, and a settable clock.
//
// It is independent of indelible.dev/tlog on purpose: it is the reference
// that package's tests check against, and importing it would be a cycle.
// Only tests, and test-helper packages, import it (the deps test checks).
//
// A helper that fails because of the calling test's mistake (an index out of
// range, say) panics: there is no error a test could handle.
package tlogtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TileHeight is the tile height of c2sp.org/tlog-tiles.
const TileHeight = 8

// EntriesLevel is the level x/mod's tlog.Tile uses for entry bundles.
const EntriesLevel = -1

// EmptyRoot is the RFC 6962 root of the empty tree, SHA-256 of nothing.
var EmptyRoot = tlog.Hash(sha256.Sum256(nil))

// Tree is an in-memory log: its entries and x/mod's stored hashes. It is a
// tlog.HashReader. It is not safe for concurrent use.
type Tree struct {
	entries [][]byte
	hashes  []tlog.Hash // indexed by tlog.StoredHashIndex
}

// NewTree returns a tree holding entries.
func NewTree(entries ...[]byte) *Tree {
	t := &Tree{}
	for _, e := range entries {
		t.Add(e)
	}
	return t
}

// NewTreeN returns a tree of n entries, entry i being fmt.Sprintf(format, i).
func NewTreeN(n int, format string) *Tree {
	t := &Tree{}
	for i := range n {
		t.Add(fmt.Appendf(nil, format, i))
	}
	return t
}

// NewTreeStrings returns a tree holding entries.
func NewTreeStrings(entries ...string) *Tree {
	t := &Tree{}
	for _, e := range entries {
		t.Add([]byte(e))
	}
	return t
}

// Add appends a copy of data and returns its index.
func (t *Tree) Add(data []byte) int64 {
	i := t.Size()
	st, err := tlog.StoredHashes(i, data, t)
	if err != nil {
		panic(fmt.Sprintf("tlogtest: adding entry %d: %v", i, err))
	}
	t.entries = append(t.entries, bytes.Clone(data))
	t.hashes = append(t.hashes, st...)
	return i
}

// Size returns the number of entries.
func (t *Tree) Size() int64 { return int64(len(t.entries)) }

// Entry returns entry i (not a copy).
func (t *Tree) Entry(i int64) []byte { return t.entries[i] }

// LeafHash returns the RFC 6962 leaf hash of entry i.
func (t *Tree) LeafHash(i int64) tlog.Hash { return t.hashes[tlog.StoredHashIndex(0, i)] }

// ReadHashes implements tlog.HashReader. An index not stored is an error.
func (t *Tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("tlogtest: stored hash %d not available", x)
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

// Root returns the root of the tree of size n <= Size() (EmptyRoot for 0).
func (t *Tree) Root(n int64) tlog.Hash {
	if n == 0 {
		return EmptyRoot
	}
	h, err := tlog.TreeHash(n, t)
	if err != nil {
		panic(fmt.Sprintf("tlogtest: root of size %d: %v", n, err))
	}
	return h
}

// InclusionProof returns the proof of entry i in the tree of size n.
func (t *Tree) InclusionProof(i, n int64) tlog.RecordProof {
	p, err := tlog.ProveRecord(n, i, t)
	if err != nil {
		panic(fmt.Sprintf("tlogtest: inclusion proof of %d in %d: %v", i, n, err))
	}
	return p
}

// ConsistencyProof returns the proof from size m to size n (empty for m == 0
// or m == n, as RFC 6962 has it).
func (t *Tree) ConsistencyProof(m, n int64) tlog.TreeProof {
	if m == 0 || m == n {
		return tlog.TreeProof{}
	}
	p, err := tlog.ProveTree(n, m, t)
	if err != nil {
		panic(fmt.Sprintf("tlogtest: consistency proof %d -> %d: %v", m, n, err))
	}
	return p
}

// Tile returns the contents of hash tile tile (x/mod's tile data), or of the
// entry bundle tile (tile.L == EntriesLevel) in the C2SP encoding.
func (t *Tree) Tile(tile tlog.Tile) []byte {
	if tile.L == EntriesLevel {
		lo := tile.N * (1 << TileHeight)
		return Bundle(t.entries[lo : lo+int64(tile.W)]...)
	}
	data, err := tlog.ReadTileData(tile, t)
	if err != nil {
		panic(fmt.Sprintf("tlogtest: tile %v: %v", tile, err))
	}
	return data
}

// Checkpoint returns the c2sp.org/tlog-checkpoint of size n, signed by
// signers (the log key first, then any cosigners).
func (t *Tree) Checkpoint(origin string, n int64, signers ...note.Signer) []byte {
	return SignCheckpoint(origin, n, t.Root(n), signers...)
}

// AddCheckpointBody returns a c2sp.org/tlog-witness add-checkpoint request
// body: the old size, the consistency proof from old to the checkpoint's
// size n, a blank line and the signed checkpoint.
func (t *Tree) AddCheckpointBody(old, n int64, checkpoint []byte) string {
	return AddCheckpointBody(old, t.ConsistencyProof(old, n), checkpoint)
}

// AddCheckpointBody returns an add-checkpoint request body with the given
// proof, right or wrong.
func AddCheckpointBody(old int64, proof []tlog.Hash, checkpoint []byte) string {
	return fmt.Sprintf("old %d\n%s\n%s", old, ProofLines(proof), checkpoint)
}

// ProofLines returns the hashes in standard base64, one a line.
func ProofLines(proof []tlog.Hash) string {
	var b strings.Builder
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	return b.String()
}

// SignCheckpoint returns the checkpoint (origin, n, root), without
// extension lines, signed by signers.
func SignCheckpoint(origin string, n int64, root tlog.Hash, signers ...note.Signer) []byte {
	text := fmt.Sprintf("%s\n%d\n%s\n", origin, n, base64.StdEncoding.EncodeToString(root[:]))
	msg, err := note.Sign(&note.Note{Text: text}, signers...)
	if err != nil {
		panic(fmt.Sprintf("tlogtest: signing a checkpoint: %v", err))
	}
	return msg
}

// Bundle returns the c2sp.org/tlog-tiles entry bundle of entries: each with
// a big-endian uint16 length.
func Bundle(entries ...[]byte) []byte {
	var b []byte
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b
}

// TilePath returns the c2sp.org/tlog-tiles path of tile: x/mod's path
// without the height segment, "data" renamed "entries". It is written apart
// from indelible.dev/tlog's TilePath, so each checks the other.
func TilePath(tile tlog.Tile) string {
	p := strings.TrimPrefix(tile.Path(), fmt.Sprintf("tile/%d/", TileHeight))
	if rest, ok := strings.CutPrefix(p, "data/"); ok {
		return "tile/entries/" + rest
	}
	return "tile/" + p
}
