package ledger

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/ledger/kv"
	itlog "indelible.dev/tlog"
)

// What indelible migrate needs to know of a store without opening a Log on
// it (which would sign): the tree it holds, and a check of that tree against
// the entries it holds.

// StoredTree returns the tree a store holds (the size and root its next
// commit extends) and its origin, or ok false if it holds no log.
func StoredTree(s kv.Store) (tree tlog.Tree, origin string, ok bool, err error) {
	get := func(k []byte) ([]byte, error) {
		v, c, err := s.Get(k)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return append([]byte(nil), v...), nil
	}
	o, err := get(keyOrigin)
	if errors.Is(err, kv.ErrNotFound) {
		return tlog.Tree{}, "", false, nil
	}
	if err != nil {
		return tlog.Tree{}, "", false, err
	}
	v, err := get(keyState)
	if err != nil {
		return tlog.Tree{}, "", false, fmt.Errorf("%w: the store has an origin but no tree state: %w", ErrCorrupt, err)
	}
	t, okState := decodeState(v)
	if !okState {
		return tlog.Tree{}, "", false, fmt.Errorf("%w: bad tree state", ErrCorrupt)
	}
	return t, string(o), true, nil
}

// CheckEntries recomputes the root of tree from the entries s holds (its full
// bundles, then the partial bundle's records) and fails unless it is
// tree.Hash: every entry of the tree is there, in order, byte for byte as
// the log signed it. progress, if set, is called with the entries hashed so
// far, after each bundle.
func CheckEntries(s kv.Store, tree tlog.Tree, progress func(n int64)) error {
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	var n int64
	var bad error
	leaf := func(e []byte) bool {
		if n >= tree.N {
			bad = fmt.Errorf("%w: more entries stored than the tree's %d", ErrCorrupt, tree.N)
			return false
		}
		h := tlog.RecordHash(e)
		if err := rng.Append(h[:], nil); err != nil {
			bad = err
			return false
		}
		n++
		return true
	}
	full := tree.N / itlog.TileWidth
	// Full bundles: 'b' N for N < full, in order.
	next := int64(0)
	err := s.Scan(bundleKey(0), bundleKey(full), false, func(k, v []byte) bool {
		if got := decodeSeq(k); got != next {
			bad = fmt.Errorf("%w: bundle %d is missing (found %d)", ErrCorrupt, next, got)
			return false
		}
		before := n
		if err := itlog.WalkBundle(v, leaf); err != nil {
			bad = fmt.Errorf("%w: bundle %d: %w", ErrCorrupt, next, err)
			return false
		}
		if bad != nil {
			return false
		}
		if n-before != itlog.TileWidth {
			bad = fmt.Errorf("%w: bundle %d holds %d entries, want %d", ErrCorrupt, next, n-before, itlog.TileWidth)
			return false
		}
		next++
		if progress != nil {
			progress(n)
		}
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return err
	}
	if next != full {
		return fmt.Errorf("%w: %d full bundles stored, the tree of size %d needs %d", ErrCorrupt, next, tree.N, full)
	}
	// The partial bundle: its 'e' records, contiguous from its first entry.
	if w := tree.N % itlog.TileWidth; w > 0 {
		start := full * itlog.TileWidth
		err := s.Scan(deltaKey(start), deltaKey(start+itlog.TileWidth), false, func(k, v []byte) bool {
			if got := decodeSeq(k); got != n {
				bad = fmt.Errorf("%w: partial bundle %d: record for entry %d, want %d", ErrCorrupt, full, got, n)
				return false
			}
			if err := itlog.WalkBundle(v, leaf); err != nil {
				bad = fmt.Errorf("%w: partial bundle %d: %w", ErrCorrupt, full, err)
				return false
			}
			return bad == nil
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return err
		}
	}
	if n != tree.N {
		return fmt.Errorf("%w: the store holds %d entries, the tree %d", ErrCorrupt, n, tree.N)
	}
	if progress != nil {
		progress(n)
	}
	root := itlog.EmptyRoot
	if n > 0 {
		r, err := rng.GetRootHash(nil)
		if err != nil {
			return err
		}
		copy(root[:], r)
	}
	if root != tree.Hash {
		return fmt.Errorf("%w: the stored entries hash to root %v at size %d, the tree state says %v", ErrCorrupt, root, tree.N, tree.Hash)
	}
	return nil
}

// decodeSeq returns n of a seqKey.
func decodeSeq(k []byte) int64 {
	var n int64
	for _, c := range k[1:] {
		n = n<<8 | int64(c)
	}
	return n
}
