package audit

import (
	"crypto/sha256"

	"golang.org/x/mod/sumdb/tlog"
)

// hasher computes RFC 6962 hashes with reusable scratch space, so the hot
// loops allocate nothing. A hasher is used by one goroutine at a time.
type hasher struct {
	leaf []byte   // 0x00 || entry
	node [65]byte // 0x01 || left || right
	tmp  []byte   // scratch for subtree roots
}

// leafHash returns SHA-256(0x00 || entry).
func (h *hasher) leafHash(entry []byte) tlog.Hash {
	h.leaf = append(h.leaf[:0], 0)
	h.leaf = append(h.leaf, entry...)
	return sha256.Sum256(h.leaf)
}

// nodeHash returns SHA-256(0x01 || l || r) of two concatenated hashes lr.
func (h *hasher) nodeHash(lr []byte) tlog.Hash {
	h.node[0] = 1
	copy(h.node[1:], lr[:2*tlog.HashSize])
	return sha256.Sum256(h.node[:])
}

// subtreeRoot returns the root of the perfect subtree whose leaves (or
// lower-level nodes) are the concatenated hashes in hs. The number of hashes
// must be a power of two (1 to 256); hs is not modified.
func (h *hasher) subtreeRoot(hs []byte) tlog.Hash {
	n := len(hs) / tlog.HashSize
	if n&(n-1) != 0 || n == 0 || len(hs)%tlog.HashSize != 0 {
		panic("audit: subtreeRoot of a non-power-of-two number of hashes")
	}
	if n == 1 {
		return tlog.Hash(hs)
	}
	h.tmp = append(h.tmp[:0], hs...)
	b := h.tmp
	for ; n > 1; n /= 2 {
		for i := 0; i < n/2; i++ {
			x := h.nodeHash(b[2*i*tlog.HashSize:])
			copy(b[i*tlog.HashSize:], x[:])
		}
	}
	return tlog.Hash(b[:tlog.HashSize])
}

// rootOf returns the RFC 6962 root of a tree given the roots of its perfect
// subtrees from left to right (the compact range of [0, n)): MTH folds them
// from the right. It returns the empty-tree root for no subtrees.
func (h *hasher) rootOf(subtrees []tlog.Hash) tlog.Hash {
	if len(subtrees) == 0 {
		return sha256.Sum256(nil)
	}
	r := subtrees[len(subtrees)-1]
	var lr [2 * tlog.HashSize]byte
	for i := len(subtrees) - 2; i >= 0; i-- {
		copy(lr[:], subtrees[i][:])
		copy(lr[tlog.HashSize:], r[:])
		r = h.nodeHash(lr[:])
	}
	return r
}
