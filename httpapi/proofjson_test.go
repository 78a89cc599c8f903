package httpapi

import (
	"crypto/rand"
	"encoding/json"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
)

// TestProofJSON: the hand-written proof bodies are byte for byte what
// encoding/json writes for the wire types (echo's JSON adds a newline), for
// empty and long proofs and large numbers.
func TestProofJSON(t *testing.T) {
	for _, n := range []int{0, 1, 2, 17, 63} {
		hs := make([]tlog.Hash, n)
		for i := range hs {
			rand.Read(hs[i][:])
		}
		for _, v := range [][2]int64{{0, 0}, {4, 9}, {1<<62 + 7, 1<<63 - 1}} {
			want, err := json.Marshal(client.NewInclusionProof(v[0], v[1], hs))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, '\n')
			if got := appendProofJSON(nil, "index", v[0], "tree_size", v[1], hs); string(got) != string(want) {
				t.Errorf("inclusion, %d hashes:\n got %s\nwant %s", n, got, want)
			}
			want, err = json.Marshal(client.NewConsistencyProof(v[0], v[1], hs))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, '\n')
			if got := appendProofJSON(nil, "from", v[0], "to", v[1], hs); string(got) != string(want) {
				t.Errorf("consistency, %d hashes:\n got %s\nwant %s", n, got, want)
			}
		}
	}
}

func BenchmarkProofJSON(b *testing.B) {
	hs := make([]tlog.Hash, 20)
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(client.NewInclusionProof(12345, 10_000_000, hs)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 2048)
		for b.Loop() {
			buf = appendProofJSON(buf[:0], "index", 12345, "tree_size", 10_000_000, hs)
		}
	})
}
