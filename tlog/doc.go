// Package tlog holds the pure formats and math of a C2SP transparency log:
// checkpoints (c2sp.org/tlog-checkpoint), tile and entry-bundle paths and
// encodings (c2sp.org/tlog-tiles), inclusion and consistency proofs
// (RFC 6962), and offline receipts (c2sp.org/tlog-proof).
//
// It does no I/O: no storage, no network, no logging, no context. Proofs are
// computed against the tiny [tlog.HashReader] interface of
// golang.org/x/mod/sumdb/tlog, whose math this package builds on rather than
// re-derives. Tiles here always have height 8 (256 hashes or entries per full
// tile), as C2SP requires.
//
// A worked example, the size-2 tree of the entries "one" and "two":
//
//	h0 := tlog.RecordHash([]byte("one"))           // SHA-256(0x00 || "one")
//	h1 := tlog.RecordHash([]byte("two"))
//	root := tlog.NodeHash(h0, h1)                   // SHA-256(0x01 || h0 || h1)
//	cp := Checkpoint{Origin: "example.com/log", Tree: tlog.Tree{N: 2, Hash: root}}
//	text := cp.String()                             // "example.com/log\n2\nT1X2...=\n"
//	path := TilePath(tlog.Tile{H: 8, L: 0, N: 0, W: 2}) // "tile/0/000.p/2"
package tlog
