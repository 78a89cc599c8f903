package eventstore

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

// fieldRun builds a run of n 'f' keys of one field as requestWrites.add
// does (blind(16) time(12) index placeholder(8)), with blind and time
// values from the given functions.
func fieldRun(n int, blind func(i int) [blindSize]byte, tm func(i int) [timeKeySize]byte) []write {
	run := make([]write, n)
	for i := range run {
		k := make([]byte, 0, 2+blindSize+timeKeySize+indexSize)
		k = append(k, prefixField, fieldActor)
		b, t := blind(i), tm(i)
		k = append(k, b[:]...)
		k = append(k, t[:]...)
		k = append(k, make([]byte, indexSize)...)
		run[i] = write{key: k, order: binary.BigEndian.Uint64(k[2:]), ev: int32(i)}
	}
	return run
}

// TestAppendSortedMatchesSortFunc checks that the bucket sort of the 'f'
// runs gives exactly the order of a comparison sort with compareWrites, on
// uniform blind values (the usual case) and on runs made to defeat it:
// equal blind values (one actor), equal times too (ties by event), blind
// values equal in their first 8 bytes (equal orders), all in one bucket,
// few distinct values, sizes around the bucket thresholds.
func TestAppendSortedMatchesSortFunc(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	randBlind := func(int) (b [blindSize]byte) {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	randTime := func(int) (tk [timeKeySize]byte) {
		binary.BigEndian.PutUint64(tk[:], 1<<60+r.Uint64N(1000))
		return tk
	}
	oneTime := func(int) (tk [timeKeySize]byte) { return tk }
	shared := randBlind(0)
	sameBlind := func(int) [blindSize]byte { return shared }
	sameHead := func(int) [blindSize]byte { // equal orders, the rest differs
		b := randBlind(0)
		copy(b[:8], shared[:8])
		return b
	}
	oneBucket := func(int) [blindSize]byte { // top 16 bits equal: one bucket
		b := randBlind(0)
		b[0], b[1] = 0x42, 0x17
		return b
	}
	var few [][blindSize]byte
	for range 5 {
		few = append(few, randBlind(0))
	}
	fewBlinds := func(int) [blindSize]byte { return few[r.IntN(len(few))] }
	cases := []struct {
		name  string
		blind func(int) [blindSize]byte
		time  func(int) [timeKeySize]byte
	}{
		{"random", randBlind, randTime},
		{"random, one time", randBlind, oneTime},
		{"one blind value", sameBlind, randTime},
		{"one blind value and time", sameBlind, oneTime},
		{"equal orders", sameHead, randTime},
		{"one bucket", oneBucket, randTime},
		{"few values", fewBlinds, randTime},
		{"few values, one time", fewBlinds, oneTime},
	}
	for _, c := range cases {
		for _, n := range []int{0, 1, 2, 31, 32, 33, 100, 1000, 1024, 1025, 5000} {
			for round := range 3 {
				run := fieldRun(n, c.blind, c.time)
				r.Shuffle(n, func(i, j int) { run[i], run[j] = run[j], run[i] })
				want := slices.Clone(run)
				slices.SortFunc(want, compareWrites)
				prefix := []write{{key: []byte{prefixIdem}}} // what came before: kept
				got := appendSorted(slices.Clip(prefix), slices.Clone(run))
				if len(got) != n+1 || got[0].key[0] != prefixIdem {
					t.Fatalf("%s, n=%d: %d writes, or the earlier ones changed", c.name, n, len(got))
				}
				for i := range want {
					if got[i+1].ev != want[i].ev {
						t.Fatalf("%s, n=%d, round %d: write %d is event %d, want %d", c.name, n, round, i, got[i+1].ev, want[i].ev)
					}
				}
			}
		}
	}
}

// BenchmarkSortFieldRun compares sorting a run of 1,000 random 'f' keys by
// comparisons and by buckets.
func BenchmarkSortFieldRun(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	run := fieldRun(1000, func(int) (v [blindSize]byte) {
		for i := range v {
			v[i] = byte(r.Uint32())
		}
		return v
	}, func(int) (tk [timeKeySize]byte) { return tk })
	work := make([]write, len(run))
	out := make([]write, 0, len(run))
	b.Run("compare", func(b *testing.B) {
		for b.Loop() {
			copy(work, run)
			slices.SortFunc(work, compareWrites)
			out = append(out[:0], work...)
		}
	})
	b.Run("bucket", func(b *testing.B) {
		for b.Loop() {
			copy(work, run)
			out = appendSorted(out[:0], work)
		}
	})
}
