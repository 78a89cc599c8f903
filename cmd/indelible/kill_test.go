package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// Kill test parameters. INDELIBLE_KILLS raises the number of kills for a
// soak run (e.g. INDELIBLE_KILLS=500).
const (
	defaultKills    = 20
	killWriters     = 32
	maxKillDelay    = 300 * time.Millisecond
	checkpointPoll  = 5 * time.Millisecond
	killTestTimeout = 5 * time.Second // per HTTP request
)

// killRounds returns how many times a kill test kills the server:
// defaultKills, or INDELIBLE_KILLS when set.
func killRounds(t testing.TB) int {
	s := os.Getenv("INDELIBLE_KILLS")
	if s == "" {
		return defaultKills
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("INDELIBLE_KILLS=%q", s)
	}
	return n
}

// killMidRound SIGKILLs p after a random delay under maxKillDelay, then
// stops the round's writers and waits for them; a round in which a writer
// failed ends the test.
func killMidRound(t testing.TB, p interface{ kill() }, cancel context.CancelFunc, wg *sync.WaitGroup) {
	t.Helper()
	time.Sleep(rand.N(maxKillDelay))
	p.kill() // SIGKILL
	cancel()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// logEntries reads the log's first n entries from its entry bundles.
func logEntries(ctx context.Context, t testing.TB, c *client.Client, n int64) [][]byte {
	t.Helper()
	var entries [][]byte
	for k := int64(0); k*256 < n; k++ {
		w := int(min(256, n-k*256))
		b, err := c.Tile(ctx, tlog.Tile{H: itlog.TileHeight, L: -1, N: k, W: w}, nil)
		if err != nil {
			t.Fatal(err)
		}
		es, err := itlog.ParseBundle(b, w)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, es...)
	}
	return entries
}

// logClient returns a client for the log at url that does not retry.
func logClient(t testing.TB, url string) *client.Client {
	c, err := client.New(url, "", client.WithOptions(client.Options{Retries: -1}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seenCheckpoint is a verified checkpoint observed while the server ran.
type seenCheckpoint struct {
	round int
	tree  tlog.Tree
}

// TestKillRecovery starts the real binary, appends from many concurrent
// writers, SIGKILLs it at a random moment, restarts it, and repeats. At the
// end it proves that every index ever acknowledged holds the entry its
// writer sent (bundles over HTTP, and leaf hashes read through x/mod's
// TileHashReader, which authenticates the tiles against the final signed
// checkpoint), that no index was ever given out twice, and that every
// checkpoint seen is consistent with the next (x/mod CheckTree on the
// server's consistency proofs) and never goes backwards.
func TestKillRecovery(t *testing.T) {
	kills := killRounds(t)
	dir := filepath.Join(t.TempDir(), "data")
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: killWriters * 2},
		Timeout:   killTestTimeout,
	}
	var (
		mu      sync.Mutex
		acked   = make(map[int64][]byte)
		seen    []seenCheckpoint
		vkey    string
		verif   note.Verifier
		entryNo int
	)
	record := func(idx int64, entry []byte) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := acked[idx]; ok {
			t.Errorf("index %d acknowledged twice: %q and then %q", idx, prev, entry)
		}
		acked[idx] = entry
	}
	for round := 0; round < kills; round++ {
		p := startServe(t, dir)
		if vkey == "" {
			vkey = p.vkey
			v, err := note.NewVerifier(vkey)
			if err != nil {
				t.Fatal(err)
			}
			verif = v
		} else if p.vkey != vkey {
			t.Fatalf("round %d: key changed across restarts", round)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range killWriters {
			mu.Lock()
			entryNo++
			base := entryNo
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; ctx.Err() == nil; k++ {
					entry := fmt.Appendf(nil, "round %d writer %d entry %d (%d)", round, w, k, base)
					idx, err := postEntry(ctx, client, p.url, entry)
					if err != nil {
						if ctx.Err() == nil {
							time.Sleep(time.Millisecond) // the server is going down
						}
						continue
					}
					record(idx, entry)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last tlog.Tree
			for ctx.Err() == nil {
				if cp, err := getCheckpoint(ctx, client, p.url, verif); err == nil && cp.Tree != last {
					last = cp.Tree
					mu.Lock()
					seen = append(seen, seenCheckpoint{round, cp.Tree})
					mu.Unlock()
				}
				time.Sleep(checkpointPoll)
			}
		}()
		killMidRound(t, p, cancel, &wg)
	}

	// Restart once more and check everything against the final log.
	p := startServe(t, dir)
	final, err := getCheckpoint(context.Background(), client, p.url, verif)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kills: %d entries acknowledged, %d checkpoints seen, final size %d", kills, len(acked), len(seen), final.N)
	if len(acked) == 0 {
		t.Fatal("no entry was acknowledged")
	}
	seen = append(seen, seenCheckpoint{kills, final.Tree})

	// Checkpoints: never backwards, one root per size, each consistent with
	// the next.
	for i := 1; i < len(seen); i++ {
		a, b := seen[i-1].tree, seen[i].tree
		if b.N < a.N {
			t.Fatalf("checkpoint size went backwards: %d (round %d) then %d (round %d)", a.N, seen[i-1].round, b.N, seen[i].round)
		}
		if a.N == b.N {
			if a.Hash != b.Hash {
				t.Fatalf("two roots for size %d", a.N)
			}
			continue
		}
		if a.N == 0 {
			continue
		}
		proof, err := logClient(t, p.url).ConsistencyProof(context.Background(), a.N, b.N)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(proof, b.N, b.Hash, a.N, a.Hash); err != nil {
			t.Fatalf("checkpoint %d (round %d) is not consistent with %d (round %d): %v", a.N, seen[i-1].round, b.N, seen[i].round, err)
		}
	}

	// Every acknowledged index: present, same entry, authenticated leaf hash.
	indexes := make([]int64, 0, len(acked))
	for idx := range acked {
		if idx >= final.N {
			t.Fatalf("acknowledged index %d is beyond the final size %d", idx, final.N)
		}
		indexes = append(indexes, idx)
	}
	slices.Sort(indexes)
	bundles := make(map[int64][][]byte)
	for _, idx := range indexes {
		b := idx / 256
		if _, ok := bundles[b]; !ok {
			w := min(final.N-b*256, 256)
			entries, err := getBundle(logClient(t, p.url), b, int(w))
			if err != nil {
				t.Fatal(err)
			}
			bundles[b] = entries
		}
		if got := bundles[b][idx%256]; !bytes.Equal(got, acked[idx]) {
			t.Fatalf("index %d holds %q, but %q was acknowledged", idx, got, acked[idx])
		}
	}
	hr := tlog.TileHashReader(final.Tree, tlogtest.TileReader{URL: p.url, Client: client})
	stored := make([]int64, len(indexes))
	for i, idx := range indexes {
		stored[i] = tlog.StoredHashIndex(0, idx)
	}
	hashes, err := hr.ReadHashes(stored)
	if err != nil {
		t.Fatalf("reading leaf hashes authenticated by the final checkpoint: %v", err)
	}
	for i, idx := range indexes {
		if hashes[i] != tlog.RecordHash(acked[idx]) {
			t.Fatalf("leaf hash of index %d does not match the acknowledged entry", idx)
		}
	}
	p.stop(t)
}

func postEntry(ctx context.Context, c *http.Client, url string, entry []byte) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/add", bytes.NewReader(entry))
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST /add: %s: %s", resp.Status, b)
	}
	return strconv.ParseInt(strings.TrimSuffix(string(b), "\n"), 10, 64)
}

func getCheckpoint(ctx context.Context, c *http.Client, url string, v note.Verifier) (itlog.Checkpoint, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/checkpoint", nil)
	if err != nil {
		return itlog.Checkpoint{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return itlog.Checkpoint{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return itlog.Checkpoint{}, err
	}
	cp, _, err := itlog.OpenCheckpoint(b, v)
	return cp, err
}

// getBundle fetches entry bundle n of width w and parses it.
func getBundle(c *client.Client, n int64, w int) ([][]byte, error) {
	b, err := c.Tile(context.Background(), tlog.Tile{H: itlog.TileHeight, L: itlog.EntriesLevel, N: n, W: w}, nil)
	if err != nil {
		return nil, err
	}
	return itlog.ParseBundle(b, w)
}

// TestGracefulShutdownUnderLoad sends SIGTERM while writers append: the
// process exits cleanly, and after a restart every acknowledged entry is
// there.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dir)
	client := &http.Client{Timeout: killTestTimeout}
	var mu sync.Mutex
	acked := make(map[int64][]byte)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				entry := fmt.Appendf(nil, "writer %d entry %d", w, k)
				idx, err := postEntry(ctx, client, p.url, entry)
				if err != nil {
					return // the server is shutting down
				}
				mu.Lock()
				acked[idx] = entry
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	p.stop(t) // SIGTERM, and a clean exit
	cancel()
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged before the shutdown")
	}
	p2 := startServe(t, dir)
	v, _ := note.NewVerifier(p.vkey)
	cp, err := getCheckpoint(context.Background(), client, p2.url, v)
	if err != nil {
		t.Fatal(err)
	}
	bundles := make(map[int64][][]byte)
	for idx, entry := range acked {
		if idx >= cp.N {
			t.Fatalf("acknowledged index %d beyond the size %d after restart", idx, cp.N)
		}
		b := idx / 256
		entries, ok := bundles[b]
		if !ok {
			if entries, err = getBundle(logClient(t, p2.url), b, int(min(cp.N-b*256, 256))); err != nil {
				t.Fatal(err)
			}
			bundles[b] = entries
		}
		if !bytes.Equal(entries[idx%256], entry) {
			t.Fatalf("index %d holds %q, want %q", idx, entries[idx%256], entry)
		}
	}
	p2.stop(t)
}
