package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
	"indelible.dev/internal/pgtest"
	itlog "indelible.dev/tlog"
)

// pgFailoverWriters is the number of concurrent writers of the PostgreSQL
// failover tests (the acceptance asks for 64).
const pgFailoverWriters = 64

// pgFailoverAsync, when set (INDELIBLE_PGFAILOVER_ASYNC=1), runs
// TestPGFailover and TestPGFailoverLease with the standby asynchronous (synchronous_standby_names
// emptied): the check that the test can fail. Acknowledged events are then
// expected to be lost, and the test to fail saying so.
var pgFailoverAsync = os.Getenv("INDELIBLE_PGFAILOVER_ASYNC") == "1"

// lagWindow counts the acknowledgements (count's growth) in the 500 ms
// before the primary is killed, once the standby has been cut off for
// 300 ms: replies to commits made before the cut have arrived by then, so
// with a synchronous standby there are none.
func lagWindow(count func() int) int {
	time.Sleep(300 * time.Millisecond)
	settled := count()
	time.Sleep(500 * time.Millisecond)
	return count() - settled
}

// eventsAck is what a writer sent and what the node acknowledged.
type eventsAck struct {
	id   string
	sent []byte // the event's JSON, as sent
}

// TestPGFailover is issue 20's "kill the PostgreSQL primary and promote its
// synchronous standby: nothing acknowledged is lost", with the real binary
// in events mode on a real primary and synchronous standby
// (pgtest.StartPairWith, Cuttable). 64 writers append events with ids; mid-load the
// standby's replication link is cut (a dead network: the standby falls
// behind), then the primary is SIGKILLed with everything it started, and
// the standby is promoted as it is. The node, whose commit's answer was lost,
// must stop (exit, saying to restart it against the promoted primary),
// never sign from memory. Restarted with the same multi-host --store
// (both servers, target_session_attrs=read-write: pgx connects to the
// promoted one), it goes on. Then every acknowledged event is at its index
// with what was sent, no index was acknowledged twice, every checkpoint
// seen before and after is consistent with the final one, and indelible
// audit passes against the node.
//
// The standby's lag at the kill is what makes this a test: had the standby
// been asynchronous, the commits made while it was cut off would have been
// acknowledged and lost with the primary (INDELIBLE_PGFAILOVER_ASYNC=1
// shows it). With a synchronous standby they wait, unacknowledged.
func TestPGFailover(t *testing.T) {
	pair := pgtest.StartPairWith(t, pgtest.PairOptions{Cuttable: true})
	if pgFailoverAsync {
		pair.SetPrimary("synchronous_standby_names", "''")
		t.Log("INDELIBLE_PGFAILOVER_ASYNC=1: the standby is asynchronous; this run is expected to lose acknowledged events")
	}
	store := pair.MultiHost()
	dir := filepath.Join(t.TempDir(), "data")
	p := startEvents(t, dir, "--store", store, "--token-rate", "0")
	v, err := note.NewVerifier(p.vkey)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: killTestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: pgFailoverWriters * 2}}
	newClient := func(url string) *client.Client {
		c, err := client.New(url, "", client.WithOptions(client.Options{Token: p.token, Retries: -1, HTTPClient: hc}))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	var (
		mu    sync.Mutex
		acked = map[int64]eventsAck{}
		seen  []tlog.Tree
		url   = p.url // the node's URL: it changes at the restart
	)
	currentURL := func() string { mu.Lock(); defer mu.Unlock(); return url }
	write := func(ctx context.Context, wg *sync.WaitGroup, tag string) {
		for w := range pgFailoverWriters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := 0; ctx.Err() == nil; b++ {
					const batch = 4
					var nd bytes.Buffer
					ids := make([]string, batch)
					sent := make([][]byte, batch)
					for j := range ids {
						ids[j] = fmt.Sprintf("%s-w%d-b%d-e%d", tag, w, b, j)
						sent[j] = fmt.Appendf(nil, `{"action":"pg.failover","id":%q,"actor":{"id":"writer-%d"},"reason":"batch %d event %d of %s"}`, ids[j], w, b, j, tag)
						nd.Write(sent[j])
						nd.WriteByte('\n')
					}
					rctx, cancel := context.WithTimeout(ctx, killTestTimeout)
					res, err := newClient(currentURL()).AppendNDJSON(rctx, nd.Bytes(), false)
					cancel()
					if err != nil {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					if len(res) != batch {
						t.Errorf("%d results for %d events", len(res), batch)
						return
					}
					mu.Lock()
					for j, r := range res {
						if r.ID != ids[j] {
							t.Errorf("event %s acknowledged as %q", ids[j], r.ID)
						}
						if prev, ok := acked[r.Index]; ok {
							t.Errorf("index %d acknowledged twice: %s and %s", r.Index, prev.id, ids[j])
						}
						acked[r.Index] = eventsAck{ids[j], sent[j]}
					}
					mu.Unlock()
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last tlog.Tree
			for ctx.Err() == nil {
				if cp, err := getCheckpoint(ctx, hc, currentURL(), v); err == nil && cp.Tree != last {
					last = cp.Tree
					mu.Lock()
					seen = append(seen, cp.Tree)
					mu.Unlock()
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	maxAcked := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Max(slices.Collect(maps.Keys(acked)))
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	write(ctx, &wg, "before")
	time.Sleep(2 * time.Second)
	if !pgFailoverAsync {
		if ok, err := pair.WithSyncStandby(context.Background()); err != nil || !ok {
			t.Fatalf("the primary has no synchronous standby under load: %v %v", ok, err)
		}
	}
	before := count()
	pair.CutStandby() // never healed: the standby is promoted as it is
	duringLag := lagWindow(count)
	pair.KillPrimary()
	killed := time.Now()

	// The node must stop: its commit's outcome is unknown.
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the node still runs 30 s after its database died\nstderr:\n%s", p.stderr)
	}
	cancel()
	wg.Wait()
	stopped := time.Since(killed)
	stderr := p.stderr.String()
	t.Logf("the node exited %v after the kill (%v); %d events acknowledged before the standby lagged, %d while it lagged; its last words:\n%s",
		stopped.Round(time.Millisecond), p.err, before, duringLag, lastLines(stderr, 3))
	if !pgFailoverAsync && duringLag > 0 {
		t.Errorf("%d events were acknowledged while the synchronous standby was cut off", duringLag)
	}
	if p.err == nil {
		t.Errorf("the node exited 0 after its database died")
	}
	for _, want := range []string{"PostgreSQL", "promoted"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the node's message does not name %q:\n%s", want, lastLines(stderr, 5))
		}
	}

	pair.Promote()
	promoted := time.Since(killed)
	// Straight from the promoted database: its fence covers every
	// acknowledged index (the clearest statement of a loss).
	top := maxAcked()
	if size := pgtest.QueryInt(t, pair.Standby, "SELECT size FROM indelible_fence"); size <= top {
		t.Fatalf("the promoted standby's log has %d entries, but index %d was acknowledged: acknowledged events were lost (%d acknowledged in all)", size, top, count())
	}

	// Restarted with the same --store, the node finds the promoted primary.
	p = startEvents(t, dir, "--store", store, "--token-rate", "0")
	mu.Lock()
	url = p.url
	mu.Unlock()
	t.Logf("the node serves again %v after the kill (promotion done after %v)", time.Since(killed).Round(time.Millisecond), promoted.Round(time.Millisecond))
	afterRestart := count()
	ctx, cancel = context.WithCancel(context.Background())
	write(ctx, &wg, "after")
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	if count() == afterRestart {
		t.Fatal("nothing was acknowledged after the restart")
	}

	c := newClient(p.url)
	final := pgFailoverCheck(t, c, hc, p.url, v, acked, seen)
	t.Logf("%d events acknowledged, final size %d, %d checkpoints seen", len(acked), final.N, len(seen))
	if out, errOut, code := run(t, nil, "audit", "--url", p.url, "--key", p.vkey, "--no-progress"); code != 0 {
		t.Fatalf("indelible audit: exit %d\n%s\n%s", code, out, errOut)
	}
	p.stop(t)
}

// pgFailoverCheck proves, against the node at url: the final checkpoint
// covers every acknowledged index; every checkpoint seen is consistent
// with it (and two of one size have one root); every acknowledged index
// holds an event with the acknowledged id and every field that was sent,
// whose commitment recomputes and is the log's entry at that index (read
// from the entry bundles the final checkpoint authenticates).
func pgFailoverCheck(t *testing.T, c *client.Client, hc *http.Client, url string, v note.Verifier, acked map[int64]eventsAck, seen []tlog.Tree) itlog.Checkpoint {
	t.Helper()
	ctx := t.Context()
	top := slices.Max(slices.Collect(maps.Keys(acked)))
	var final itlog.Checkpoint
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		final, err = getCheckpoint(ctx, hc, url, v)
		if err == nil && final.N > top || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if final.N <= top {
		t.Fatalf("final size %d, but index %d was acknowledged", final.N, top)
	}
	roots := map[int64]tlog.Hash{}
	for _, s := range append(slices.Clone(seen), final.Tree) {
		if h, ok := roots[s.N]; ok && h != s.Hash {
			t.Fatalf("two roots for size %d", s.N)
		}
		roots[s.N] = s.Hash
		if s.N > final.N {
			t.Fatalf("a checkpoint of size %d was seen, beyond the final %d", s.N, final.N)
		}
		if s.N == 0 || s.N == final.N {
			continue
		}
		proof, err := c.ConsistencyProof(ctx, s.N, final.N)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(proof, final.N, final.Hash, s.N, s.Hash); err != nil {
			t.Fatalf("checkpoint %d is not consistent with the final %d: %v", s.N, final.N, err)
		}
	}
	entries := logEntries(ctx, t, c, final.N)
	indexes := slices.Sorted(maps.Keys(acked))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < len(indexes); k += 8 {
				i := indexes[k]
				a := acked[i]
				r, err := c.Event(ctx, i)
				if err != nil {
					t.Errorf("acknowledged index %d (%s): %v", i, a.id, err)
					continue
				}
				if sum := recomputeCommitment(r); !bytes.Equal(sum, r.Commitment) || !bytes.Equal(r.Commitment, entries[i]) {
					t.Errorf("index %d: commitment %x, recomputed %x, log entry %x", i, r.Commitment, sum, entries[i])
				}
				var sent, stored map[string]any
				if err := json.Unmarshal(a.sent, &sent); err != nil {
					t.Error(err)
					continue
				}
				if err := json.Unmarshal(r.EventBytes, &stored); err != nil {
					t.Errorf("index %d: %v", i, err)
					continue
				}
				for k, want := range sent {
					if got := stored[k]; !reflect.DeepEqual(got, want) {
						t.Errorf("index %d (%s): %s is %v, %v was sent", i, a.id, k, got, want)
					}
				}
			}
		}()
	}
	wg.Wait()
	return final
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestPGFailoverLease is TestPGFailover for a cluster (--lease, raw mode):
// two nodes on the pair's multi-host URL, 64 writers through both (the
// standby forwards), the standby's replication link cut, the primary
// SIGKILLed and the standby promoted. The active node dies with its
// database (its commit is ambiguous: it exits); the standby node, which
// reconnects to the promoted primary by itself, takes the lease over and
// goes on; restarted, the old active node rejoins as a standby. Every
// acknowledged entry is in the log byte for byte, no index was
// acknowledged twice, every checkpoint seen is consistent with the final
// one, and indelible audit passes.
func TestPGFailoverLease(t *testing.T) {
	pair := pgtest.StartPairWith(t, pgtest.PairOptions{Cuttable: true})
	if pgFailoverAsync {
		pair.SetPrimary("synchronous_standby_names", "''")
		t.Log("INDELIBLE_PGFAILOVER_ASYNC=1: the standby is asynchronous; this run is expected to lose acknowledged entries")
	}
	store := pair.MultiHost()
	keyFile, vkey := newLogKey(t, "example.com/pg-failover-lease")
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: killTestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: pgFailoverWriters * 2}}
	// As startPair, with more room for a loaded machine.
	a := startClusterNode(t, "a", store, keyFile, "--init")
	epoch := a.waitRole(t, c, "active", 3*clusterLease+10*time.Second).Epoch
	b := startClusterNode(t, "b", store, keyFile)
	for deadline := time.Now().Add(3*clusterLease + 10*time.Second); ; time.Sleep(50 * time.Millisecond) {
		sb, err := b.status(c)
		if err == nil && sb.Role == "standby" && sb.Active.Node == "a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b does not see a as the active node: %+v, %v\nb's log:\n%s", sb, err, lastLines(b.stderr.String(), 10))
		}
	}

	cl := &clusterLog{t: t, acked: map[int64][]byte{}, writers: pgFailoverWriters}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	cl.write(ctx, &wg, c, v, "before", a.url, b.url)
	time.Sleep(2 * time.Second)
	count := func() int { cl.mu.Lock(); defer cl.mu.Unlock(); return len(cl.acked) }
	before := count()
	pair.CutStandby() // never healed: the standby is promoted as it is
	duringLag := lagWindow(count)
	pair.KillPrimary()
	killed := time.Now()
	pair.Promote()
	promoted := time.Since(killed)

	// b becomes active on the promoted standby: the lease, in the database,
	// expires there on the database's clock.
	st := b.waitRole(t, c, "active", 3*clusterLease+10*time.Second)
	took := time.Since(killed)
	if st.Epoch <= epoch || st.Active.Node != "b" {
		t.Fatalf("after the failover: %+v (epoch before %d)", st, epoch)
	}
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("a still runs 10 s after its database died\nstderr:\n%s", a.stderr)
	}
	aErr := a.stderr.String()
	t.Logf("b active %v after the kill (promotion done after %v); a exited (%v): %s",
		took.Round(time.Millisecond), promoted.Round(time.Millisecond), a.err, lastLines(aErr, 1))
	if !strings.Contains(aErr, "promoted primary") {
		t.Errorf("a's last words do not say to restart it against the promoted primary:\n%s", lastLines(aErr, 5))
	}
	// Restarted with the same arguments, a rejoins as a standby.
	a = startClusterNode(t, "a", store, keyFile)
	a.waitRole(t, c, "standby", 3*clusterLease)
	afterFailover := count()
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	after := count() - afterFailover
	t.Logf("%d entries acknowledged before the standby lagged, %d while it lagged, %d after the failover; %d checkpoints seen",
		before, duringLag, after, len(cl.seen))
	if !pgFailoverAsync && duringLag > 0 {
		t.Errorf("%d entries were acknowledged while the synchronous standby was cut off", duringLag)
	}
	if before == 0 || after == 0 {
		t.Fatalf("acknowledged %d before the failover and %d after: want some of each", before, after)
	}
	final := cl.check(c, b.url, v)
	if out, errOut, code := run(t, nil, "audit", "--url", b.url, "--key", vkey, "--no-progress"); code != 0 {
		t.Fatalf("indelible audit: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("final size %d, %d entries acknowledged in all", final.N, len(cl.acked))
}

// TestPGFailoverIdle: a single node whose database fails over while it
// commits nothing (no append in flight, none during the outage) has
// nothing ambiguous to stop for: once the standby is promoted it goes on
// by itself, without a restart, through its multi-host --store (its
// connections to the dead primary are replaced by ones to the promoted
// one); every entry acknowledged before is there, and new ones follow.
// TestPGFailoverOutage has an append during the outage.
func TestPGFailoverIdle(t *testing.T) {
	pair, _, p, v, hc, cl := failoverNode(t, "before the failover")
	// Let the node finish what follows an append (checkpoints, the
	// leaf-hash index) so that nothing is in flight at the kill.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if cp, err := getCheckpoint(t.Context(), hc, p.url, v); err == nil && cp.N == 50 {
			cl.seen = append(cl.seen, cp.Tree)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint of size 50")
		}
	}
	time.Sleep(500 * time.Millisecond)
	pair.KillPrimary()
	pair.Promote()
	var (
		idx int64
		err error
	)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		e := []byte("after the failover")
		if idx, err = postEntry(t.Context(), hc, p.url, e); err == nil {
			cl.record(p.url, idx, e)
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("the node exited after an idle failover: %v\n%s", p.err, lastLines(p.stderr.String(), 5))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no append acknowledged 20 s after the promotion: %v\n%s", err, lastLines(p.stderr.String(), 5))
		}
	}
	for i := range 20 {
		e := fmt.Appendf(nil, "after the failover %d", i)
		cl.record(p.url, httpAdd(t, p.url, e), e)
	}
	final := cl.check(hc, p.url, v)
	t.Logf("the first append after the promotion at index %d; final size %d", idx, final.N)
	p.stop(t)
}

// TestPGFailoverOutage: an append arriving while no PostgreSQL server
// accepts writes (the primary dead, the standby not yet promoted) fails,
// and the log stops; the node then exits (exit code 2) with a message
// naming the store and saying to restart it against the promoted primary,
// instead of answering 500 to every write until someone notices.
// Started again before the promotion, it refuses to start; after it, with
// the same --store, it goes on with everything acknowledged before.
func TestPGFailoverOutage(t *testing.T) {
	pair, dir, p, v, hc, cl := failoverNode(t, "before the outage")
	store := pair.MultiHost()
	pair.KillPrimary()
	if _, err := postEntry(t.Context(), hc, p.url, []byte("while no primary")); err == nil {
		t.Fatal("an append was acknowledged while no PostgreSQL server accepted writes")
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the node still runs 10 s after its log stopped\n%s", lastLines(p.stderr.String(), 5))
	}
	last := lastLines(p.stderr.String(), 1)
	t.Logf("the node exited (%v): %s", p.err, last)
	if p.err == nil || !strings.Contains(last, "the PostgreSQL store postgres://postgres@127.0.0.1:") || !strings.Contains(last, "promoted primary") {
		t.Errorf("the node's exit (%v) does not name the store or say to restart it against the promoted primary:\n%s", p.err, last)
	}
	// Started meanwhile, it refuses: no server accepts writes.
	if _, errOut, code := run(t, nil, "serve", "--mode", "raw", "--data", dir, "--listen", "127.0.0.1:0", "--store", store); code == 0 ||
		!strings.Contains(errOut, "opening the store postgres://postgres@127.0.0.1:") {
		t.Fatalf("serve started with no server accepting writes: exit %d\n%s", code, errOut)
	} else {
		t.Logf("started during the outage: exit %d: %s", code, lastLines(errOut, 1))
	}
	pair.Promote()
	p = startServe(t, dir, "--store", store)
	for i := range 20 {
		e := fmt.Appendf(nil, "after the outage %d", i)
		cl.record(p.url, httpAdd(t, p.url, e), e)
	}
	final := cl.check(hc, p.url, v)
	t.Logf("final size %d", final.N)
	p.stop(t)
}

// failoverNode starts a PostgreSQL pair and a raw-mode node on its
// multi-host URL, and appends 50 entries named after what.
func failoverNode(t *testing.T, what string) (*pgtest.Pair, string, *serveProc, note.Verifier, *http.Client, *clusterLog) {
	t.Helper()
	pair := pgtest.StartPair(t)
	dir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dir, "--store", pair.MultiHost())
	v, err := note.NewVerifier(p.vkey)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: killTestTimeout}
	cl := &clusterLog{t: t, acked: map[int64][]byte{}}
	for i := range 50 {
		e := fmt.Appendf(nil, "%s %d", what, i)
		cl.record(p.url, httpAdd(t, p.url, e), e)
	}
	return pair, dir, p, v, hc, cl
}
