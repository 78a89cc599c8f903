package eventstore

import (
	"bytes"
	"fmt"
	"slices"
)

// streamItem is one payload a stream scanned: its index and its value.
type streamItem struct {
	i int64
	v []byte
}

// chunkInputs reads what opening a chunk of scanned payloads (in index
// order) needs besides the payloads: the log entry of each, one bundle
// read per 256 entries instead of one per event, and the 't' value of each
// version-2 payload, in one sorted pass instead of a point lookup each
// (both were 70% of an export's CPU). A 't' value not found is left nil:
// opening the payload then looks it up again and finds the event gone, as
// a read of that one event would.
func (l *Layer) chunkInputs(items []streamItem) (ents, tvals [][]byte, err error) {
	idx := make([]int64, len(items))
	for k, it := range items {
		idx[k] = it.i
	}
	ents = make([][]byte, len(items))
	if err := l.log.EntriesFunc(idx, func(k int, e []byte) error {
		ents[k] = bytes.Clone(e)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("events: reading the log entries of events %d to %d: %w", idx[0], idx[len(idx)-1], err)
	}
	var keys [][]byte
	var of []int // of[j]: the item of keys[j]
	for k, it := range items {
		if _, tk, err := payloadDay(it.v); err == nil && tk != nil {
			keys = append(keys, timeIndexKey(tk, it.i))
			of = append(of, k)
		} // a malformed payload: recordOf reports it
	}
	order := make([]int, len(keys))
	for j := range order {
		order[j] = j
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
	sorted := make([][]byte, len(keys))
	for j, o := range order {
		sorted[j] = keys[o]
	}
	tvals = make([][]byte, len(items))
	if err := l.log.GetExtSorted(sorted, func(j int, v []byte) {
		tvals[of[order[j]]] = bytes.Clone(v)
	}); err != nil {
		return nil, nil, fmt.Errorf("events: reading the keys of events %d to %d: %w", idx[0], idx[len(idx)-1], err)
	}
	return ents, tvals, nil
}
