package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// TestAppendBatch: a call's sidecar runs once, after every entry of the call
// has its index, with exactly the indexes the call returns, and its writes
// are readable once the call returns. Concurrent calls interleave in one
// log; each sees only its own indexes.
func TestAppendBatch(t *testing.T) {
	l, _ := openTempLog(t)
	const writers, calls = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				n := 1 + (w*calls+c)%40
				entries := make([]Entry, n)
				for j := range entries {
					entries[j].Data = fmt.Appendf(nil, "w%d c%d e%d", w, c, j)
				}
				var seen [][]int64
				idx, err := l.AppendBatch(context.Background(), entries, func(indexes []int64, wr Writer) error {
					seen = append(seen, slices.Clone(indexes))
					for j, i := range indexes {
						if err := wr.Set(binary.BigEndian.AppendUint64([]byte("b"), uint64(i)), entries[j].Data); err != nil {
							return err
						}
					}
					return nil
				}, 64*n)
				if err != nil {
					t.Error(err)
					return
				}
				if len(seen) != 1 || !slices.Equal(seen[0], idx) {
					t.Errorf("sidecar saw %v, the call returned %v", seen, idx)
					return
				}
				for j, i := range idx {
					if j > 0 && i != idx[j-1]+1 {
						t.Errorf("indexes %v not consecutive", idx)
					}
					v, err := l.GetExt(binary.BigEndian.AppendUint64([]byte("b"), uint64(i)))
					if err != nil || string(v) != string(entries[j].Data) {
						t.Errorf("entry %d: sidecar value %q, %v; want %q", i, v, err, entries[j].Data)
					}
				}
			}
		})
	}
	wg.Wait()
}

// A sidecar's error stops the log (the batch is abandoned).
func TestAppendBatchRefusals(t *testing.T) {
	l, _ := openTempLog(t)
	boom := errors.New("boom")
	_, err := l.AppendBatch(context.Background(), []Entry{{Data: []byte("y")}}, func([]int64, Writer) error { return boom }, 0)
	if !errors.Is(err, ErrFailed) || !errors.Is(err, boom) {
		t.Fatalf("failing sidecar: %v, want ErrFailed wrapping its error", err)
	}
	if _, err := l.Append(context.Background(), []byte("z")); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after a failed sidecar: %v, want ErrFailed", err)
	}
}
