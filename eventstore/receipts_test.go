package eventstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/event"
	"indelible.dev/ledger"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pebblekv"
	"indelible.dev/receipt"
	itlog "indelible.dev/tlog"
)

// countingStore counts the reads a store serves (each Get, GetSorted,
// GetNear and Scan call: on PostgreSQL each is a round trip, a Scan one
// per page at least).
type countingStore struct {
	kv.Store
	reads atomic.Int64
}

func (s *countingStore) Get(key []byte) ([]byte, io.Closer, error) {
	s.reads.Add(1)
	return s.Store.Get(key)
}

func (s *countingStore) GetSorted(keys [][]byte, f func(i int, value []byte)) error {
	s.reads.Add(1)
	return s.Store.GetSorted(keys, f)
}

func (s *countingStore) GetNear(keys [][]byte, f func(i int, value []byte)) error {
	s.reads.Add(1)
	return s.Store.GetNear(keys, f)
}

func (s *countingStore) Scan(lo, hi []byte, reverse bool, f func(key, value []byte) bool) error {
	s.reads.Add(1)
	return s.Store.Scan(lo, hi, reverse, f)
}

// countingEpocher is countingStore over a shared store (PostgreSQL), whose
// fence the ledger checks at open.
type countingEpocher struct {
	*countingStore
	kv.Epocher
}

// openCounted opens a log and the layer over it in a new directory, on the
// suite's store (pebble, or PostgreSQL under INDELIBLE_TEST_STORE), with
// its reads counted; tileCache sets the ledger's expanded-tile cache.
func openCounted(t *testing.T, tileCache int) (*Layer, *ledger.Log, *countingStore, string) {
	t.Helper()
	dir := t.TempDir()
	var inner kv.Store
	var err error
	if ledger.TestingStore != nil {
		inner, err = ledger.TestingStore(dir)
	} else {
		inner, err = pebblekv.Open(dir, pebblekv.Options{Logger: slog.New(slog.DiscardHandler)})
	}
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: inner}
	var st kv.Store = cs
	if ep, ok := inner.(kv.Epocher); ok {
		st = countingEpocher{cs, ep}
	}
	s, vkey := newSigner(t)
	log, err := ledger.Open(dir, ledger.Options{Signer: s, Store: st, TileCacheSize: tileCache, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		inner.Close()
		t.Fatal(err)
	}
	master := make([]byte, MasterKeySize)
	rand.Read(master)
	kr, err := NewKeyring(master)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(Config{Log: log, Keyring: kr})
	if err != nil {
		log.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); log.Close() })
	return l, log, cs, vkey
}

// appendN appends n events in requests of up to per events, and returns
// their indexes.
func appendN(t *testing.T, l *Layer, n, per int) []int64 {
	t.Helper()
	var out []int64
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for len(out) < n {
		var evs []event.Event
		for k := 0; k < per && len(out)+len(evs) < n; k++ {
			j := len(out) + len(evs)
			evs = append(evs, ev(fmt.Sprintf("actor-%d", j%7), "write", fmt.Sprintf("res-%d", j), "success", "kube", base.Add(time.Duration(j)*time.Second)))
		}
		a, err := l.Append(context.Background(), "writer", evs)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range a {
			out = append(out, x.Index)
		}
	}
	return out
}

// TestReceiptsBatchSameBytes builds the receipts of one request both ways
// on the same store, the batch (one pass over the store) and one event at
// a time (the path before it, still Receipt's), and compares their bytes;
// each verifies offline. With the default tile cache and with a cache of
// one tile (the proofs' level-0 tiles then come from the store: a log of
// millions of events).
func TestReceiptsBatchSameBytes(t *testing.T) {
	for _, cache := range []int{0, 1} {
		t.Run(fmt.Sprintf("tilecache=%d", cache), func(t *testing.T) {
			l, log, _, vkey := openCounted(t, cache)
			idx := appendN(t, l, 1300, 100)
			v, err := note.NewVerifier(vkey)
			if err != nil {
				t.Fatal(err)
			}
			// A random set across full and partial bundles and tiles,
			// unsorted, with repeats; a run across a bundle's boundary;
			// the first and the last event.
			var want []int64
			for range 150 {
				r, _ := rand.Int(rand.Reader, big.NewInt(int64(len(idx))))
				want = append(want, idx[r.Int64()])
			}
			want = append(want, want[3], want[7])
			for i := int64(240); i < 280; i++ {
				want = append(want, i)
			}
			want = append(want, 0, idx[len(idx)-1])
			cp, signed, err := log.WaitSize(context.Background(), idx[len(idx)-1]+1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := l.receipts(want, cp, signed)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d receipts for %d indexes", len(got), len(want))
			}
			for k, i := range want {
				old, err := l.receipt(i, cp, signed)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[k], old) {
					t.Fatalf("receipt %d (index %d): the batch's bytes differ from the per-event path's:\n%s\n---\n%s", k, i, got[k], old)
				}
				vr, err := receipt.Verify(got[k], itlog.Policy{Log: v})
				if err != nil {
					t.Fatalf("receipt of %d: %v", i, err)
				}
				if vr.Index != i {
					t.Fatalf("receipt %d proves index %d, want %d", k, vr.Index, i)
				}
			}
			// Errors: the first index's error in request order, as the
			// per-event path returns it.
			if _, err := l.Erase(context.Background(), idx[500], "admin", "test"); err != nil {
				t.Fatal(err)
			}
			_, err = l.receipts([]int64{idx[10], idx[500], idx[20]}, cp, signed)
			_, oldErr := l.receipt(idx[500], cp, signed)
			if !errors.Is(err, ErrGone) || err.Error() != oldErr.Error() {
				t.Fatalf("an erased event's receipt: %v, the per-event path's %v", err, oldErr)
			}
			if _, err := l.receipts([]int64{idx[10], cp.N}, cp, signed); !errors.Is(err, ErrNotFound) {
				t.Fatalf("an index past the checkpoint: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestReceiptsRoundTrips: the receipts of a request of N events with
// wait=checkpoint read the store a bounded number of times, not once or
// more per event (on PostgreSQL, round trips). The per-event path's count
// is printed beside it (and checked to be at least N, so that the bound is
// a real one).
func TestReceiptsRoundTrips(t *testing.T) {
	for _, cache := range []int{0, 1} {
		t.Run(fmt.Sprintf("tilecache=%d", cache), func(t *testing.T) {
			l, log, cs, _ := openCounted(t, cache)
			waitIDs(t, l)           // the id filter's scan at open reads the store too
			appendN(t, l, 700, 100) // full bundles and tiles below
			counts := map[int]int64{}
			for _, n := range []int{1, 10, 256} {
				idx := appendN(t, l, n, n)
				if _, _, err := log.WaitSize(context.Background(), idx[len(idx)-1]+1); err != nil {
					t.Fatal(err)
				}
				before := cs.reads.Load()
				rcs, err := l.WaitReceipts(context.Background(), idx)
				if err != nil {
					t.Fatal(err)
				}
				counts[n] = cs.reads.Load() - before
				if len(rcs) != n {
					t.Fatalf("%d receipts for %d events", len(rcs), n)
				}
				cp, signed := log.Checkpoint()
				before = cs.reads.Load()
				for _, i := range idx {
					if _, err := l.receipt(i, cp, signed); err != nil {
						t.Fatal(err)
					}
				}
				old := cs.reads.Load() - before
				t.Logf("%d events: %d store reads for the request's receipts (one event at a time: %d)", n, counts[n], old)
				if old < int64(n) {
					t.Fatalf("the per-event path read the store %d times for %d events: the count misses reads", old, n)
				}
			}
			// Payloads, time-index values, full bundles, tiles with their
			// inner records: four multi-gets at most, whatever N.
			for n, c := range counts {
				if c > 4 {
					t.Errorf("%d events: %d store reads for their receipts, want at most 4", n, c)
				}
			}
		})
	}
}
