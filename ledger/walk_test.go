package ledger

import (
	"errors"
	"math/rand/v2"
	"testing"

	itlog "indelible.dev/tlog"
)

// TestWalkEntries checks walkEntries against the bundle's parsed entries:
// wanted entries of varying lengths (empty ones included) anywhere in a
// bundle, repeats, the last one; and that a bundle too short for a wanted
// entry, or with a truncated entry before it, is corrupt.
func TestWalkEntries(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n := int64(round % 7)
		w := 1 + r.IntN(itlog.TileWidth)
		var data []byte
		var ents [][]byte
		for j := range w {
			e := make([]byte, r.IntN(70))
			for x := range e {
				e[x] = byte(j + x)
			}
			ents = append(ents, e)
			data = itlog.AppendBundleEntry(data, e)
		}
		var want []int64
		for j := range w {
			for range r.IntN(3) * r.IntN(2) {
				want = append(want, n*itlog.TileWidth+int64(j))
			}
		}
		if len(want) == 0 {
			want = []int64{n*itlog.TileWidth + int64(w-1)}
		}
		got := 0
		err := walkEntries(n, data, want, func(k int, e []byte) error {
			if k != got {
				t.Fatalf("round %d: call for want[%d], expected want[%d]", round, k, got)
			}
			if exp := ents[want[k]-n*itlog.TileWidth]; string(e) != string(exp) {
				t.Fatalf("round %d: entry %d = %x, want %x", round, want[k], e, exp)
			}
			got++
			return nil
		})
		if err != nil || got != len(want) {
			t.Fatalf("round %d: %d of %d entries, %v", round, got, len(want), err)
		}
		// One entry past the bundle's end, and the bundle cut short
		// inside the last wanted entry or its length prefix.
		past := append(want[:len(want):len(want)], n*itlog.TileWidth+int64(w))
		if err := walkEntries(n, data, past, func(int, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("round %d: an entry past the bundle: %v", round, err)
		}
		if cut := len(data) - 1; cut > 0 {
			last := []int64{n*itlog.TileWidth + int64(w-1)}
			if err := walkEntries(n, data[:cut], last, func(int, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("round %d: a truncated bundle: %v", round, err)
			}
		}
	}
	// The callback's error stops the walk and is returned as it is.
	stop := errors.New("stop")
	data := itlog.AppendBundleEntry(itlog.AppendBundleEntry(nil, []byte("a")), []byte("b"))
	calls := 0
	if err := walkEntries(0, data, []int64{0, 1}, func(int, []byte) error { calls++; return stop }); err != stop || calls != 1 {
		t.Fatalf("callback error: %v after %d calls", err, calls)
	}
}

// BenchmarkWalkEntries: one wanted entry in each of 100 full bundles of
// 32-byte entries (a listing's scattered candidates), at a random place.
func BenchmarkWalkEntries(b *testing.B) {
	var data []byte
	for range itlog.TileWidth {
		data = itlog.AppendBundleEntry(data, make([]byte, 32))
	}
	r := rand.New(rand.NewPCG(1, 2))
	want := make([]int64, 100)
	for j := range want {
		want[j] = int64(r.IntN(itlog.TileWidth))
	}
	b.ReportAllocs()
	for b.Loop() {
		for j := range want {
			if err := walkEntries(0, data, want[j:j+1], func(int, []byte) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	}
}
