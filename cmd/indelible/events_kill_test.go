package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"indelible.dev/client"
	itlog "indelible.dev/tlog"
)

// Parameters of the events-mode kill test.
const (
	eventsKillWriters = 4
	eventsKillBatch   = 25
)

// TestEventsKillRecovery SIGKILLs the real binary in events mode at random
// moments under concurrent NDJSON writers, 20 times (INDELIBLE_KILLS for
// more). Afterwards every acknowledged event is fetchable at its index with
// its id, every index below the tree size holds a whole event (its record
// is there and its commitment recomputes and equals the public log entry),
// and no index was acknowledged twice.
func TestEventsKillRecovery(t *testing.T) {
	kills := killRounds(t)
	dir := filepath.Join(t.TempDir(), "data")
	var (
		mu    sync.Mutex
		acked = make(map[int64]string) // index -> id
	)
	newClient := func(p *eventsProc) *client.Client {
		c, err := client.New(p.url, "", client.WithOptions(client.Options{Token: p.token, Retries: -1}))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for round := range kills {
		p := startEvents(t, dir, "--token-rate", "0") // its writers and readers go as fast as they can
		c := newClient(p)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range eventsKillWriters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := 0; ctx.Err() == nil; b++ {
					var nd strings.Builder
					ids := make([]string, eventsKillBatch)
					for j := range ids {
						ids[j] = fmt.Sprintf("r%d-w%d-b%d-e%d", round, w, b, j)
						fmt.Fprintf(&nd, `{"action":"kill.test","id":%q,"reason":"KILLMARKER"}`+"\n", ids[j])
					}
					rctx, rcancel := context.WithTimeout(ctx, killTestTimeout)
					res, err := c.AppendNDJSON(rctx, []byte(nd.String()), false)
					rcancel()
					if err != nil {
						time.Sleep(time.Millisecond) // the server is going down
						continue
					}
					if len(res) != len(ids) {
						t.Errorf("%d results for %d events", len(res), len(ids))
						return
					}
					mu.Lock()
					for j, r := range res {
						if r.ID != ids[j] {
							t.Errorf("event %s acknowledged as %q", ids[j], r.ID)
						}
						if prev, ok := acked[r.Index]; ok {
							t.Errorf("index %d acknowledged twice: %s and %s", r.Index, prev, ids[j])
						}
						acked[r.Index] = ids[j]
					}
					mu.Unlock()
				}
			}()
		}
		killMidRound(t, p, cancel, &wg)
	}

	p := startEvents(t, dir, "--token-rate", "0")
	c := newClient(p)
	ctx := t.Context()
	var hi int64 = -1
	for i := range acked {
		hi = max(hi, i)
	}
	if hi < 0 {
		t.Fatal("no event was acknowledged")
	}
	// The published size covers every acknowledged event.
	var n int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := c.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		text, _, _ := itlog.SplitNote(b)
		cp, err := itlog.ParseCheckpoint(string(text))
		if err != nil {
			t.Fatal(err)
		}
		if n = cp.N; n > hi {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("published size %d after restart, but index %d was acknowledged", n, hi)
		}
	}
	t.Logf("%d kills: %d events acknowledged, final size %d", kills, len(acked), n)

	entries := logEntries(ctx, t, c, n)
	// Every index below the size is a whole event.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(w); i < n; i += 8 {
				r, err := c.Event(ctx, i)
				if err != nil {
					t.Errorf("index %d: %v (a log entry without its event)", i, err)
					continue
				}
				if sum := recomputeCommitment(r); !bytes.Equal(sum, r.Commitment) || !bytes.Equal(r.Commitment, entries[i]) {
					t.Errorf("index %d: commitment %x, recomputed %x, log entry %x", i, r.Commitment, sum, entries[i])
				}
				e, err := r.Decode()
				if err != nil {
					t.Errorf("index %d: %v", i, err)
					continue
				}
				mu.Lock()
				id, ok := acked[i]
				mu.Unlock()
				if ok && e.ID != id {
					t.Errorf("index %d: id %q, acknowledged as %q", i, e.ID, id)
				}
			}
		}()
	}
	wg.Wait()
	p.stop(t)
	checkEventsStore(t, dir)
}
