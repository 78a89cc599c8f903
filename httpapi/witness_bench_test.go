package httpapi

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
)

// BenchmarkAddCheckpoint measures POST /add-checkpoint through HTTP against
// a witness with durable state (every cosignature waits for a pebble Sync),
// with one log (one client advancing it one entry at a time, as a log
// does) and with 100 logs (100 concurrent clients, one per log). It reports
// requests/s and the p99 latency.
//
//	go test -run '^$' -bench BenchmarkAddCheckpoint -benchtime 3000x ./httpapi/
func BenchmarkAddCheckpoint(b *testing.B) {
	for _, logs := range []int{1, 100} {
		b.Run(fmt.Sprintf("logs=%d", logs), func(b *testing.B) { benchAddCheckpoint(b, logs) })
	}
}

func benchAddCheckpoint(b *testing.B, nlogs int) {
	steps := b.N/nlogs + 1
	tree := tlogtest.NewTreeStrings(benchEntries(steps)...)
	proofs := make([]string, steps+1)
	for i := 1; i < steps; i++ {
		proofs[i] = tlogtest.ProofLines(tree.ConsistencyProof(int64(i), int64(i+1)))
	}
	type benchLog struct {
		bodies []string
	}
	var known []witness.Log
	logs := make([]benchLog, nlogs)
	for j := range logs {
		origin := fmt.Sprintf("bench.example/log%d", j)
		key := tlogtest.NewKey(b, origin)
		s, v := key.Signer, key.Verifier
		known = append(known, witness.Log{Origin: origin, Verifiers: []note.Verifier{v}})
		for i := 1; i <= steps; i++ {
			cp, err := itlog.SignCheckpoint(itlog.Checkpoint{Origin: origin, Tree: tlog.Tree{N: int64(i), Hash: tree.Root(int64(i))}}, s)
			if err != nil {
				b.Fatal(err)
			}
			logs[j].bodies = append(logs[j].bodies, addBody(int64(i-1), proofs[i-1], string(cp)))
		}
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	cs, _ := itlog.NewCosigner("bench.example/witness", priv, nil)
	w, err := witness.Open(b.TempDir(), witness.Options{Cosigner: cs, Logs: known, GossipInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	s := New(Config{})
	s.MountWitness(w, WitnessConfig{})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: nlogs}}

	lat := make([][]time.Duration, nlogs)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for j := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, body := range logs[j].bodies[:steps-1] {
				t0 := time.Now()
				resp, err := client.Post(ts.URL+"/add-checkpoint", "", strings.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				lat[j] = append(lat[j], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
}

func benchEntries(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("entry %d", i)
	}
	return out
}
