package witness

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

// The pebble key space. Every key is a one-byte prefix and then either an
// origin (variable length, the rest of the key) or a fixed-width integer.
//
//	's' origin         latest cosigned state: size (8 BE) || root (32) || checkpoint note
//	'f' origin         fork marker: present while the origin is refused (value: evidence ID, 8 BE)
//	'e' id(8)          fork evidence record (JSON)
//	'd' digest(32)     evidence already recorded for this pair of checkpoints (value: evidence ID)
const (
	prefixState    = 's'
	prefixFork     = 'f'
	prefixEvidence = 'e'
	prefixDigest   = 'd'
)

func stateKey(origin string) []byte { return append([]byte{prefixState}, origin...) }
func forkKey(origin string) []byte  { return append([]byte{prefixFork}, origin...) }
func evidenceKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixEvidence}, id)
}
func digestKey(d [32]byte) []byte { return append([]byte{prefixDigest}, d[:]...) }

// get returns a copy of the value at key, or nil if there is none.
func (w *Witness) get(key []byte) ([]byte, error) {
	v, closer, err := w.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("witness: reading store: %w", err)
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

func (w *Witness) readState(origin string) (cosigned, error) {
	v, err := w.get(stateKey(origin))
	if err != nil {
		return cosigned{}, err
	}
	if v == nil {
		return cosigned{tree: tlog.Tree{N: 0, Hash: itlog.EmptyRoot}}, nil
	}
	if len(v) < 8+tlog.HashSize {
		return cosigned{}, fmt.Errorf("witness: stored state of %q is %d bytes", origin, len(v))
	}
	var st cosigned
	st.tree.N = int64(binary.BigEndian.Uint64(v))
	copy(st.tree.Hash[:], v[8:])
	st.note = v[8+tlog.HashSize:]
	if st.tree.N < 0 || len(st.note) == 0 {
		return cosigned{}, fmt.Errorf("witness: stored state of %q is corrupt", origin)
	}
	return st, nil
}

// writeState stores st for origin and syncs it to disk.
func (w *Witness) writeState(origin string, st cosigned) error {
	v := make([]byte, 8+tlog.HashSize, 8+tlog.HashSize+len(st.note))
	binary.BigEndian.PutUint64(v, uint64(st.tree.N))
	copy(v[8:], st.tree.Hash[:])
	v = append(v, st.note...)
	if err := w.db.Set(stateKey(origin), v, pebble.Sync); err != nil {
		return fmt.Errorf("witness: storing state of %q: %w", origin, err)
	}
	w.stats.stateWrites.Add(1)
	return nil
}

func (w *Witness) isForked(origin string) (bool, error) {
	v, err := w.get(forkKey(origin))
	return v != nil, err
}

func (w *Witness) lastEvidenceID() (uint64, error) {
	it, err := w.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixEvidence}, UpperBound: []byte{prefixEvidence + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	k := it.Key()
	if len(k) != 9 {
		return 0, fmt.Errorf("witness: corrupt evidence key %x", k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// Forks returns every fork evidence record, oldest first, cleared ones
// included.
func (w *Witness) Forks() ([]Evidence, error) {
	it, err := w.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixEvidence}, UpperBound: []byte{prefixEvidence + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := []Evidence{}
	for ok := it.First(); ok; ok = it.Next() {
		var e Evidence
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			return nil, fmt.Errorf("witness: corrupt evidence record %x: %w", it.Key(), err)
		}
		out = append(out, e)
	}
	return out, it.Error()
}
