package ledger

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSequencer measures durable (fsync'd) appends per second with many
// concurrent appenders, 128-byte entries, in-process (no HTTP).
//
//	go test ./ledger -run '^$' -bench Sequencer -benchtime 2000000x
func BenchmarkSequencer(b *testing.B) {
	for _, writers := range []int{256, 1024} {
		b.Run(fmtInt("writers", writers), func(b *testing.B) { benchAppend(b, writers) })
	}
}

func fmtInt(k string, v int) string { return k + "=" + itoa(v) }

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

func benchAppend(b *testing.B, writers int) {
	s, _ := testSigner(b)
	l, err := Open(b.TempDir(), Options{Signer: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var next atomic.Int64
	var commits atomic.Int64
	l.opts.OnCommit = func(CommitInfo) { commits.Add(1) }
	ctx := context.Background()
	b.SetBytes(128)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entry := make([]byte, 128)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				binary.BigEndian.PutUint64(entry, uint64(i))
				for {
					_, err := l.Append(ctx, entry)
					if err == ErrPushback {
						time.Sleep(time.Millisecond)
						continue
					}
					if err != nil {
						b.Error(err)
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "entries/s")
	if c := commits.Load(); c > 0 {
		b.ReportMetric(float64(b.N)/float64(c), "entries/commit")
	}
}

// BenchmarkInclusionProof measures inclusion proofs of random entries in a
// 1,000,000-entry log at its published size (the /v1/proof/inclusion work
// without HTTP), from concurrent readers.
//
//	go test ./ledger -run '^$' -bench InclusionProof
func BenchmarkInclusionProof(b *testing.B) { benchmarkInclusionProof(b, 0) }

// BenchmarkInclusionProofMisses is BenchmarkInclusionProof with a tile
// cache holding a tenth of the level-0 tiles, as the default cache does for
// a 10M-entry log: most proofs miss at level 0.
func BenchmarkInclusionProofMisses(b *testing.B) { benchmarkInclusionProof(b, 390) }

func benchmarkInclusionProof(b *testing.B, tileCache int) {
	s, _ := testSigner(b)
	l, err := Open(b.TempDir(), Options{Signer: s, TileCacheSize: tileCache, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n = 1_000_000
	batch := make([]Entry, 10_000)
	for i := 0; i < n; i += len(batch) {
		for j := range batch {
			e := make([]byte, 128)
			binary.BigEndian.PutUint64(e, uint64(i+j))
			batch[j] = Entry{Data: e}
		}
		if _, err := l.AppendEntries(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	cp, _ := l.Checkpoint()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		x := uint64(time.Now().UnixNano())
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			if _, err := l.InclusionProof(int64(x%uint64(cp.N)), cp.N); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
