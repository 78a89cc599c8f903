package ledger

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"

	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pebblekv"
)

// TestBatchSizedUpFront: a commit's batch is given, up front, room for
// everything the ledger and the sidecars write into it, so pebble never
// copies it into a bigger buffer half-way (issue 21: it did once per
// commit, 1.8 KB allocated and copied per event). 70,000 entries of 32
// bytes (an event's commitment) in calls of 1 to 1,000, across the
// completion of level-0 tiles, inner records and the first level-1 tile
// (65,536 entries), each with a sidecar that writes a key per entry.
func TestBatchSizedUpFront(t *testing.T) {
	var mu sync.Mutex
	var commits, over int
	var worst float64
	batchBuilt = func(b kv.Batch, sized int) {
		pb, ok := b.(*pebblekv.Batch)
		if !ok {
			return // another store: nothing to check
		}
		mu.Lock()
		defer mu.Unlock()
		commits++
		if n := pb.Pebble().Len(); n > sized {
			over++
			worst = max(worst, float64(n)/float64(sized))
		}
	}
	t.Cleanup(func() { batchBuilt = nil })
	l, _ := openTempLog(t)
	const total = 70_000
	val := make([]byte, 100)
	for sent, c := 0, 0; sent < total; c++ {
		n := min(total-sent, 1+(c*337)%1000)
		entries := make([]Entry, n)
		for j := range entries {
			entries[j].Data = binary.BigEndian.AppendUint64(make([]byte, 24, 32), uint64(sent+j))
		}
		hint := n * (9 + len(val) + 8)
		_, err := l.AppendBatch(context.Background(), entries, func(indexes []int64, w Writer) error {
			for _, i := range indexes {
				if err := w.Set(binary.BigEndian.AppendUint64([]byte("b"), uint64(i)), val); err != nil {
					return err
				}
			}
			return nil
		}, hint)
		if err != nil {
			t.Fatal(err)
		}
		sent += n
	}
	mu.Lock()
	defer mu.Unlock()
	if commits == 0 {
		t.Skip("not a pebble store")
	}
	if over > 0 {
		t.Errorf("%d of %d commits outgrew the batch size given up front (the worst by %.2fx)", over, commits, worst)
	}
}
