package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

// verifiedTiles is an x/mod TileReader over Log.ReadTile: wrapped in
// tlog.TileHashReader, every hash tile it reads is authenticated against a
// checkpoint's root before any hash in it is used.
type verifiedTiles struct{ l *Log }

func (v verifiedTiles) Height() int { return itlog.TileHeight }

func (v verifiedTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		d, err := v.l.ReadTile(t)
		if err != nil {
			return nil, fmt.Errorf("ReadTile(%s): %w", itlog.TilePath(t), err)
		}
		out[i] = d
	}
	return out, nil
}

func (v verifiedTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TestConcurrentAppendersAndReaders runs many appenders (single entries and
// batches) against many readers under the race detector. Readers trust
// nothing but the log's key: each takes the current signed checkpoint,
// proves it consistent with the previous one it saw, and checks that every
// tile, bundle, entry and proof it reads verifies against it. Appenders
// check that their entries are in the log at the index they got, provably.
func TestConcurrentAppendersAndReaders(t *testing.T) {
	s, v := testSigner(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := Open(t.TempDir(), Options{Signer: s, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	const appenders, perAppender, readers = 24, 30, 8
	var appendersDone atomic.Bool
	var wgA, wgR sync.WaitGroup
	indexes := make([][]int64, appenders)
	for w := 0; w < appenders; w++ {
		wgA.Add(1)
		go func() {
			defer wgA.Done()
			for k := 0; k < perAppender; k++ {
				var batch []Entry
				for j := 0; j <= k%4*(w%3); j++ {
					batch = append(batch, Entry{Data: []byte(fmt.Sprintf("a%d-%d-%d", w, k, j))})
				}
				idx, err := l.AppendEntries(ctx, batch)
				if err != nil {
					t.Errorf("AppendEntries: %v", err)
					return
				}
				indexes[w] = append(indexes[w], idx...)
				for j := 1; j < len(idx); j++ {
					if idx[j] != idx[0]+int64(j) {
						t.Errorf("batch indexes %v not consecutive", idx)
					}
				}
				// The entry is there, provably, under a checkpoint
				// covering it.
				_, signed, err := l.WaitSize(ctx, idx[len(idx)-1]+1)
				if err != nil {
					t.Error(err)
					return
				}
				cp, _, err := itlog.OpenCheckpoint(signed, v)
				if err != nil {
					t.Error(err)
					return
				}
				for j, i := range idx {
					p, err := l.InclusionProof(i, cp.N)
					if err != nil {
						t.Error(err)
						return
					}
					if err := itlog.CheckInclusion(p, i, cp.N, tlog.RecordHash(batch[j].Data), cp.Hash); err != nil {
						t.Errorf("appender: entry %d in %d: %v", i, cp.N, err)
					}
				}
			}
		}()
	}

	var reads atomic.Int64
	for r := 0; r < readers; r++ {
		wgR.Add(1)
		go func() {
			defer wgR.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 99))
			var prev itlog.Checkpoint
			for iter := 0; !appendersDone.Load() || iter < 20; iter++ {
				if err := readAndVerify(l, v, rng, &prev); err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	wgA.Wait()
	appendersDone.Store(true)
	wgR.Wait()

	// Every index was handed out exactly once, and the log has exactly the
	// entries appended.
	seen := map[int64]bool{}
	total := 0
	for _, idx := range indexes {
		for _, i := range idx {
			if seen[i] {
				t.Fatalf("index %d handed out twice", i)
			}
			seen[i] = true
			total++
		}
	}
	cp, _ := l.Checkpoint()
	if cp.N != int64(total) {
		t.Fatalf("final size %d, %d entries appended", cp.N, total)
	}
	t.Logf("%d entries from %d appenders, %d verified reads", total, appenders, reads.Load())
	if reads.Load() < readers*20 {
		t.Errorf("only %d reads", reads.Load())
	}
}

// readAndVerify is one reader step: it takes the current signed checkpoint,
// checks it against the previous one (*prev), and then verifies a random
// selection of reads against it.
func readAndVerify(l *Log, v note.Verifier, rng *rand.Rand, prev *itlog.Checkpoint) error {
	_, signed := l.Checkpoint()
	cp, _, err := itlog.OpenCheckpoint(signed, v)
	if err != nil {
		return fmt.Errorf("checkpoint: %v", err)
	}
	if cp.N < prev.N {
		return fmt.Errorf("checkpoint went back from %d to %d", prev.N, cp.N)
	}
	p, err := l.ConsistencyProof(prev.N, cp.N)
	if err != nil {
		return fmt.Errorf("ConsistencyProof(%d, %d): %v", prev.N, cp.N, err)
	}
	old := prev.Hash
	if prev.N == 0 {
		old = itlog.EmptyRoot
	}
	if err := itlog.CheckConsistency(p, prev.N, old, cp.N, cp.Hash); err != nil {
		return fmt.Errorf("consistency %d -> %d: %v", prev.N, cp.N, err)
	}
	*prev = cp
	if cp.N == 0 {
		return nil
	}
	hr := tlog.TileHashReader(cp.Tree, verifiedTiles{l})
	i := rng.Int64N(cp.N)
	e, err := l.Entry(i)
	if err != nil {
		return fmt.Errorf("Entry(%d): %v", i, err)
	}
	leaf := tlog.RecordHash(e)
	switch rng.IntN(4) {
	case 0: // inclusion by index
		p, err := l.InclusionProof(i, cp.N)
		if err != nil {
			return err
		}
		if err := itlog.CheckInclusion(p, i, cp.N, leaf, cp.Hash); err != nil {
			return fmt.Errorf("inclusion %d in %d: %v", i, cp.N, err)
		}
	case 1: // inclusion by leaf hash
		j, p, err := l.InclusionProofByHash(leaf, cp.N)
		if err != nil || j != i {
			return fmt.Errorf("InclusionProofByHash(entry %d) = %d, %v", i, j, err)
		}
		if err := itlog.CheckInclusion(p, j, cp.N, leaf, cp.Hash); err != nil {
			return fmt.Errorf("inclusion by hash %d in %d: %v", i, cp.N, err)
		}
	case 2: // the leaf through tiles authenticated by x/mod
		h, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
		if err != nil {
			return fmt.Errorf("verified tile read of leaf %d in %d: %v", i, cp.N, err)
		}
		if h[0] != leaf {
			return fmt.Errorf("entry %d does not hash to its authenticated leaf", i)
		}
		if root, err := tlog.TreeHash(cp.N, hr); err != nil || root != cp.Hash {
			return fmt.Errorf("root from authenticated tiles at %d: %v", cp.N, err)
		}
	case 3: // the entry's bundle, at the width the checkpoint implies
		b := tlog.Tile{H: itlog.TileHeight, L: itlog.EntriesLevel, N: i / 256, W: int(min(256, cp.N-i/256*256))}
		data, err := l.ReadTile(b)
		if err != nil {
			return fmt.Errorf("ReadTile(%s): %v", itlog.TilePath(b), err)
		}
		entries, err := itlog.ParseBundle(data, b.W)
		if err != nil {
			return err
		}
		idx := make([]int64, len(entries))
		for k := range entries {
			idx[k] = tlog.StoredHashIndex(0, b.N*256+int64(k))
		}
		leaves, err := hr.ReadHashes(idx)
		if err != nil {
			return fmt.Errorf("verified leaves of %s: %v", itlog.TilePath(b), err)
		}
		for k, en := range entries {
			if tlog.RecordHash(en) != leaves[k] {
				return fmt.Errorf("%s entry %d does not match its authenticated leaf", itlog.TilePath(b), k)
			}
		}
		if !bytes.Equal(entries[i%256], e) {
			return fmt.Errorf("bundle and Entry(%d) disagree", i)
		}
	}
	// Nothing beyond the checkpoint this reader holds is required to be
	// hidden (the log may have grown), but nothing beyond the log's own
	// published size is served.
	now, _ := l.Checkpoint()
	if _, err := l.Entry(now.N + 1000); !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("Entry beyond the published size: %v", err)
	}
	if _, err := l.InclusionProof(0, now.N+1000); !errors.Is(err, ErrRange) {
		return fmt.Errorf("InclusionProof beyond the published size: %v", err)
	}
	return nil
}

// TestConcurrentPushback fills a small queue from many goroutines: callers
// beyond the queue get ErrPushback (and nothing is appended for them), the
// others get distinct indexes, and the log holds exactly the accepted
// entries.
func TestConcurrentPushback(t *testing.T) {
	s, _ := testSigner(t)
	ctx := context.Background()
	l, err := Open(t.TempDir(), Options{Signer: s, Logger: quietLogger(), QueueSize: 8, MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := map[int64]string{}
	var pushed atomic.Int64
	for w := 0; w < 64; w++ {
		wg.Go(func() {
			for k := 0; k < 10; k++ {
				d := fmt.Sprintf("p%d-%d", w, k)
				i, err := l.Append(ctx, []byte(d))
				if errors.Is(err, ErrPushback) {
					pushed.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if _, dup := accepted[i]; dup {
					t.Errorf("index %d handed out twice", i)
				}
				accepted[i] = d
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	cp, _ := l.Checkpoint()
	if cp.N != int64(len(accepted)) {
		t.Fatalf("log size %d, %d appends accepted (%d pushed back)", cp.N, len(accepted), pushed.Load())
	}
	for i, d := range accepted {
		e, err := l.Entry(i)
		if err != nil || string(e) != d {
			t.Fatalf("Entry(%d) = %q, %v; want %q", i, e, err, d)
		}
	}
	t.Logf("%d accepted, %d pushed back", len(accepted), pushed.Load())
	if _, err := l.AppendEntries(ctx, make([]Entry, 9)); err == nil || errors.Is(err, ErrPushback) {
		t.Errorf("a batch larger than MaxBatch: %v, want a plain error", err)
	}
	if _, err := l.Append(ctx, make([]byte, itlog.MaxEntrySize+1)); !errors.Is(err, ErrEntryTooLarge) {
		t.Errorf("oversized entry: %v, want ErrEntryTooLarge", err)
	}
	if i, err := l.Append(ctx, make([]byte, itlog.MaxEntrySize)); err != nil || i != cp.N {
		t.Errorf("maximum-size entry: %d, %v", i, err)
	}
}
