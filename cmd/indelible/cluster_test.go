package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/api"
	"indelible.dev/client"
	"indelible.dev/internal/nettest"
	"indelible.dev/internal/pgtest"
	"indelible.dev/internal/s3test"
	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

const clusterWriters = 32

// clusterLease is the nodes' lease: 2 s, or INDELIBLE_CLUSTER_LEASE (e.g.
// 10s, to measure a takeover at the documented lease).
var clusterLease = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("INDELIBLE_CLUSTER_LEASE")); err == nil && d >= time.Second {
		return d
	}
	return 2 * time.Second
}()

// takeoverWithin bounds a standby's takeover in the tests that do not
// measure it (TestClusterKill does): the lease's expiry, then opening the
// store, checking the bucket and re-indexing, which on a loaded CI machine
// (every package's tests at once, -race) took over 5 s.
var takeoverWithin = clusterLease + 20*time.Second

// clusterNode is one `indelible serve --lease` process of a test.
type clusterNode struct {
	*proc
	name string
	url  string
	args []string
}

// startClusterNode starts a raw-mode node on the shared store and key.
func startClusterNode(t testing.TB, name, store, keyFile string, extra ...string) *clusterNode {
	t.Helper()
	addr := freeAddr(t)
	n := &clusterNode{name: name, url: "http://" + addr}
	n.args = append([]string{"serve", "--mode", "raw", "--data", filepath.Join(t.TempDir(), name), "--listen", addr, "--key", keyFile,
		"--store", store, "--lease", clusterLease.String(), "--node", name, "--advertise", n.url}, extra...)
	n.proc = startProc(t, n.args, func(line string) bool { return strings.HasPrefix(line, "cluster node ") })
	return n
}

func (n *clusterNode) status(c *http.Client) (api.Cluster, error) {
	var st api.Cluster
	resp, err := c.Get(n.url + "/v1/cluster")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("GET /v1/cluster: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitRole waits until n reports role, and returns its status.
func (n *clusterNode) waitRole(t testing.TB, c *http.Client, role string, within time.Duration) api.Cluster {
	t.Helper()
	deadline := time.Now().Add(within)
	var last api.Cluster
	var err error
	for time.Now().Before(deadline) {
		if last, err = n.status(c); err == nil && last.Role == role {
			return last
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("node %s not %s within %v: %+v, %v\nstderr:\n%s", n.name, role, within, last, err, n.stderr)
	return last
}

// clusterLog records what the writers and observers of a cluster test saw.
type clusterLog struct {
	t       testing.TB
	mu      sync.Mutex
	acked   map[int64][]byte
	seen    []tlog.Tree
	lastAck map[string]time.Time // by URL: when its last acknowledgement arrived
	writers int                  // default clusterWriters
}

func (cl *clusterLog) record(url string, idx int64, entry []byte) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.lastAck == nil {
		cl.lastAck = map[string]time.Time{}
	}
	cl.lastAck[url] = time.Now()
	if prev, ok := cl.acked[idx]; ok {
		cl.t.Errorf("index %d acknowledged twice: %q and then %q", idx, prev, entry)
	}
	cl.acked[idx] = entry
}

// write runs cl.writers writers, spread over the nodes' URLs (a
// standby forwards), and a checkpoint observer per node, until ctx ends.
func (cl *clusterLog) write(ctx context.Context, wg *sync.WaitGroup, c *http.Client, v note.Verifier, tag string, urls ...string) {
	writers := cl.writers
	if writers == 0 {
		writers = clusterWriters
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				entry := fmt.Appendf(nil, "%s writer %d entry %d", tag, w, k)
				u := urls[(w+k)%len(urls)]
				idx, err := postEntry(ctx, c, u, entry)
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				cl.record(u, idx, entry)
			}
		}()
	}
	for _, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last tlog.Tree
			for ctx.Err() == nil {
				if cp, err := getCheckpoint(ctx, c, u, v); err == nil && cp.Tree != last {
					last = cp.Tree
					cl.mu.Lock()
					cl.seen = append(cl.seen, cp.Tree)
					cl.mu.Unlock()
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
}

// check proves, against the log served at url: every acknowledged index
// holds its entry byte for byte (and its leaf hash is authenticated by the
// final checkpoint); every checkpoint seen on any node is consistent with
// the final one, and two checkpoints of one size have one root.
func (cl *clusterLog) check(c *http.Client, url string, v note.Verifier) tlog.Tree {
	t := cl.t
	t.Helper()
	if len(cl.acked) == 0 {
		t.Fatal("nothing was acknowledged")
	}
	top := slices.Max(slices.Collect(maps.Keys(cl.acked)))
	// The published checkpoint may lag the acknowledgements a little (a
	// bucket releases it once it holds it).
	var final itlog.Checkpoint
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		final, err = getCheckpoint(context.Background(), c, url, v)
		if err == nil && final.N > top || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	roots := map[int64]tlog.Hash{}
	for _, s := range append(cl.seen, final.Tree) {
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
		proof, err := logClient(t, url).ConsistencyProof(context.Background(), s.N, final.N)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(proof, final.N, final.Hash, s.N, s.Hash); err != nil {
			t.Fatalf("checkpoint %d is not consistent with the final %d: %v", s.N, final.N, err)
		}
	}
	indexes := make([]int64, 0, len(cl.acked))
	for idx := range cl.acked {
		if idx >= final.N {
			t.Fatalf("acknowledged index %d is beyond the final size %d", idx, final.N)
		}
		indexes = append(indexes, idx)
	}
	slices.Sort(indexes)
	bundles := map[int64][][]byte{}
	for _, idx := range indexes {
		b := idx / 256
		if _, ok := bundles[b]; !ok {
			entries, err := getBundle(logClient(t, url), b, int(min(final.N-b*256, 256)))
			if err != nil {
				t.Fatal(err)
			}
			bundles[b] = entries
		}
		if got := bundles[b][idx%256]; !bytes.Equal(got, cl.acked[idx]) {
			t.Fatalf("index %d holds %q, but %q was acknowledged", idx, got, cl.acked[idx])
		}
	}
	hr := tlog.TileHashReader(final.Tree, tlogtest.TileReader{URL: url, Client: c})
	stored := make([]int64, len(indexes))
	for i, idx := range indexes {
		stored[i] = tlog.StoredHashIndex(0, idx)
	}
	hashes, err := hr.ReadHashes(stored)
	if err != nil {
		t.Fatalf("reading leaf hashes authenticated by the final checkpoint: %v", err)
	}
	for i, idx := range indexes {
		if hashes[i] != tlog.RecordHash(cl.acked[idx]) {
			t.Fatalf("leaf hash of index %d does not match the acknowledged entry", idx)
		}
	}
	return final.Tree
}

// TestClusterKill: two nodes on one PostgreSQL store; 64 writers append
// through both (the standby forwards); SIGKILL the active node: the
// standby takes over within lease + 2 s, and every acknowledged entry is
// in the log byte for byte, no index was given twice, every checkpoint
// seen on either node is consistent with the final one. With
// INDELIBLE_PG_SYNC_STANDBY=1 the store has a synchronous standby (benchDSN).
func TestClusterKill(t *testing.T) {
	store := benchDSN(t)
	keyFile, vkey := newLogKey(t, "example.com/cluster")
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: killTestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	a := startClusterNode(t, "a", store, keyFile, "--init")
	sa := a.waitRole(t, c, "active", 3*clusterLease)
	b := startClusterNode(t, "b", store, keyFile)
	sb := b.waitRole(t, c, "standby", clusterLease)
	for deadline := time.Now().Add(2 * clusterLease); sb.Active.Node != "a" && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		sb, _ = b.status(c)
	}
	if sb.Active != (api.ClusterNode{Node: "a", URL: a.url}) || sb.Epoch != sa.Epoch {
		t.Fatalf("b's view %+v, a's %+v", sb, sa)
	}
	if code, _ := httpGet(t, b.url+"/readyz"); code != 200 {
		t.Fatalf("standby /readyz: %d with the active node up", code)
	}

	cl := &clusterLog{t: t, acked: map[int64][]byte{}, writers: 64}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	cl.write(ctx, &wg, c, v, "before", a.url, b.url)
	time.Sleep(2 * time.Second)
	cl.mu.Lock()
	before := len(cl.acked)
	cl.mu.Unlock()
	a.kill() // SIGKILL
	killed := time.Now()
	st := b.waitRole(t, c, "active", clusterLease+5*time.Second)
	took := time.Since(killed)
	if st.Epoch <= sa.Epoch || st.Active.Node != "b" {
		t.Fatalf("after the takeover: %+v", st)
	}
	time.Sleep(time.Second) // writes go on on b
	cancel()
	wg.Wait()
	cl.mu.Lock()
	after := len(cl.acked) - before
	cl.mu.Unlock()
	t.Logf("takeover %v after SIGKILL (lease %v); %d entries acknowledged before, %d around and after; %d checkpoints seen",
		took.Round(time.Millisecond), clusterLease, before, after, len(cl.seen))
	if took > clusterLease+2*time.Second {
		t.Errorf("takeover took %v: want at most lease + 2s = %v", took, clusterLease+2*time.Second)
	}
	if before == 0 || after == 0 {
		t.Fatalf("acknowledged %d before the kill and %d after: want some of each", before, after)
	}
	final := cl.check(c, b.url, v)
	if final.N < int64(len(cl.acked)) {
		t.Fatalf("final size %d < %d acknowledged", final.N, len(cl.acked))
	}
	b.proc.cmd.Process.Signal(syscall.SIGTERM)
	<-b.exited
}

// startPair starts node a (active, --init) and node b (standby), and
// returns them once b knows a is active.
func startPair(t testing.TB, c *http.Client, storeA, storeB, keyFile string, extra ...string) (a, b *clusterNode, epoch int64) {
	t.Helper()
	a = startClusterNode(t, "a", storeA, keyFile, append([]string{"--init"}, extra...)...)
	sa := a.waitRole(t, c, "active", 3*clusterLease)
	b = startClusterNode(t, "b", storeB, keyFile, extra...)
	for deadline := time.Now().Add(3 * clusterLease); ; {
		sb, err := b.status(c)
		if err == nil && sb.Role == "standby" && sb.Active.Node == "a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's view %+v, %v", sb, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return a, b, sa.Epoch
}

// TestClusterFrozen: SIGSTOP the active node past its lease; the standby
// takes over and commits; SIGCONT: the old node is fenced (its commits
// fail on the stale epoch), acknowledges nothing it has not committed
// under its epoch, steps down, and forwards to the new active node.
func TestClusterFrozen(t *testing.T) {
	store := pgtest.DSN(t)
	keyFile, vkey := newLogKey(t, "example.com/cluster")
	v, _ := note.NewVerifier(vkey)
	c := &http.Client{Timeout: killTestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: clusterWriters * 2}}
	a, b, ea := startPair(t, c, store, store, keyFile)

	cl := &clusterLog{t: t, acked: map[int64][]byte{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	cl.write(ctx, &wg, c, v, "cluster", a.url, b.url)
	time.Sleep(1500 * time.Millisecond)
	a.cmd.Process.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	st := b.waitRole(t, c, "active", takeoverWithin)
	t.Logf("b active %v after SIGSTOP, epoch %d (a's %d)", time.Since(stopped).Round(time.Millisecond), st.Epoch, ea)
	cl.mu.Lock()
	n0 := len(cl.acked)
	cl.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		cl.mu.Lock()
		n := len(cl.acked)
		cl.mu.Unlock()
		if n >= n0+20 { // writers sending to the frozen node wait out their timeout
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b committed %d entries in 10s after the takeover", n-n0)
		}
	}
	a.cmd.Process.Signal(syscall.SIGCONT)
	sa := a.waitRole(t, c, "standby", clusterLease)
	if sa.Active.Node != "b" && sa.Epoch != st.Epoch {
		// It may not have read the lease yet; it must not be active.
		t.Logf("a after SIGCONT: %+v", sa)
	}
	time.Sleep(time.Second) // writers go on through both (a forwards)
	cancel()
	wg.Wait()
	cl.check(c, b.url, v)
	if sb, _ := b.status(c); sb.Role != "active" || sb.Epoch != st.Epoch {
		t.Fatalf("b after a's return: %+v, want active at epoch %d", sb, st.Epoch)
	}
	if !strings.Contains(a.stderr.String(), "stepping down") {
		t.Errorf("a's log does not say it stepped down:\n%s", a.stderr)
	}
}

// TestClusterPartition: the active node loses PostgreSQL (a proxy that
// blackholes its connections): it acknowledges nothing once its lease has
// ended; the standby takes over and the writes go on there.
func TestClusterPartition(t *testing.T) {
	store := pgtest.DSN(t)
	u, err := url.Parse(store)
	if err != nil {
		t.Fatal(err)
	}
	px := nettest.NewProxy(t, u.Host)
	u.Host = px.Addr()
	keyFile, vkey := newLogKey(t, "example.com/cluster")
	v, _ := note.NewVerifier(vkey)
	c := &http.Client{Timeout: killTestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: clusterWriters * 2}}
	a, b, _ := startPair(t, c, u.String(), store, keyFile)

	cl := &clusterLog{t: t, acked: map[int64][]byte{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	cl.write(ctx, &wg, c, v, "cluster", a.url, b.url)
	time.Sleep(1500 * time.Millisecond)
	cl.mu.Lock()
	before := len(cl.acked)
	cl.mu.Unlock()
	px.Blackhole()
	cut := time.Now()
	st := b.waitRole(t, c, "active", takeoverWithin)
	t.Logf("b active %v after the partition, epoch %d", time.Since(cut).Round(time.Millisecond), st.Epoch)
	// Writers stuck on a (until their client timeout) come back to b.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		cl.mu.Lock()
		n := len(cl.acked)
		cl.mu.Unlock()
		if n >= before+50 || time.Now().After(deadline) {
			break
		}
	}
	cancel()
	wg.Wait()
	cl.mu.Lock()
	lastA, after := cl.lastAck[a.url], len(cl.acked)-before
	cl.mu.Unlock()
	// a's lease ends at most one lease after its last renewal was sent,
	// which was before the cut; the margin is for the client's own delay
	// in reading a reply sent just before.
	if limit := cut.Add(clusterLease + 500*time.Millisecond); lastA.After(limit) {
		t.Fatalf("a acknowledged a write %v after the partition (lease %v)", lastA.Sub(cut), clusterLease)
	}
	if before == 0 || after == 0 {
		t.Fatalf("acknowledged %d before the partition and %d after", before, after)
	}
	t.Logf("last acknowledgement from a %v after the cut; %d acknowledged before, %d after", lastA.Sub(cut).Round(time.Millisecond), before, after)
	cl.check(c, b.url, v)
	if sa, err := a.status(c); err != nil || sa.Role != "standby" {
		t.Fatalf("a after the partition: %+v, %v", sa, err)
	}
}

// TestClusterEvents: events mode on a cluster. The first admin token (made
// by the first active node) works on every node; an event appended through
// the standby (forwarded, with its token) is readable, decrypted, from the
// standby once it has taken over, and the token goes on working there.
func TestClusterEvents(t *testing.T) {
	store := pgtest.DSN(t)
	keyFile, _ := newLogKey(t, "example.com/cluster-events")
	master := filepath.Join(t.TempDir(), "master.key")
	mk := make([]byte, 32)
	rand.Read(mk)
	if err := os.WriteFile(master, []byte(hex.EncodeToString(mk)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: killTestTimeout}
	a := startClusterNode(t, "a", store, keyFile, "--init", "--mode", "events", "--master-key", master)
	a.waitRole(t, hc, "active", 3*clusterLease)
	tok, err := os.ReadFile(filepath.Join(a.args[slices.Index(a.args, "--data")+1], adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	b := startClusterNode(t, "b", store, keyFile, "--mode", "events", "--master-key", master)
	b.waitRole(t, hc, "standby", clusterLease)
	cb, err := client.New(b.url, "", client.WithOptions(client.Options{Token: token, Retries: -1}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var res []client.Appended
	for deadline := time.Now().Add(3 * clusterLease); ; time.Sleep(100 * time.Millisecond) {
		// b may not have read the lease yet (503: no active node known).
		if res, err = cb.Append(ctx, []client.Event{{Action: "door.open", Actor: &client.Actor{ID: "cluster-alice"}}}, true); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("append through the standby: %v", err)
		}
	}
	if len(res) != 1 || len(res[0].Receipt) == 0 {
		t.Fatalf("append through the standby with wait=checkpoint: %+v", res)
	}
	if _, err := mustClient(t, b.url, "not-a-token").Append(ctx, []client.Event{{Action: "x"}}, false); err == nil {
		t.Fatal("a bad token was accepted through the standby")
	}
	a.kill()
	b.waitRole(t, hc, "active", takeoverWithin)
	rec, err := cb.Event(ctx, res[0].Index)
	if err != nil {
		t.Fatalf("reading the event on the new active node: %v", err)
	}
	ev, err := rec.Decode()
	if err != nil || ev.Action != "door.open" || ev.Actor == nil || ev.Actor.ID != "cluster-alice" {
		t.Fatalf("the event on the new active node: %+v, %v", ev, err)
	}
	if _, err := cb.Append(ctx, []client.Event{{Action: "door.close", Actor: &client.Actor{ID: "cluster-alice"}}}, false); err != nil {
		t.Fatalf("append on the new active node: %v", err)
	}
	// Both nodes derived the key that authenticates forwarded callers'
	// addresses from the master key (httpapi/forwardauth.go).
	for _, n := range []*clusterNode{a, b} {
		if strings.Contains(n.stderr.String(), "no authenticated caller address") {
			t.Errorf("node %s forwards without an authenticated caller address:\n%s", n.name, n.stderr)
		}
	}
}

func mustClient(t testing.TB, url, token string) *client.Client {
	c, err := client.New(url, "", client.WithOptions(client.Options{Token: token, Retries: -1}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClusterBucket: both nodes mirror to one bucket; SIGKILL the active
// node under writers: the new active node resumes the mirror, the bucket
// catches up with it, every checkpoint seen on the nodes and in the bucket
// is consistent with the final one, and indelible audit and tessera's fsck
// (TestTesseraFsckCorruptTile shows it fails on a corrupted tile) pass on
// the bucket.
func TestClusterBucket(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	bucketHTTP := srv.URL + "/" + s3test.Bucket
	store := pgtest.DSN(t)
	keyFile, vkey := newLogKey(t, "example.com/cluster-bucket")
	v, _ := note.NewVerifier(vkey)
	c := &http.Client{Timeout: killTestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: clusterWriters * 2}}
	a, b, _ := startPair(t, c, store, store, keyFile, "--bucket", s3test.BucketURL(srv.URL))

	cl := &clusterLog{t: t, acked: map[int64][]byte{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	cl.write(ctx, &wg, c, v, "bucket", a.url, b.url)
	var bucketSeen []tlog.Tree
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			// A read racing the checkpoint's replacement in the test
			// server may fail: skip it.
			if cp, err := getCheckpoint(ctx, c, bucketHTTP, v); err == nil {
				if len(bucketSeen) > 0 && cp.N < bucketSeen[len(bucketSeen)-1].N {
					t.Errorf("the bucket's checkpoint went back from %d to %d", bucketSeen[len(bucketSeen)-1].N, cp.N)
				}
				bucketSeen = append(bucketSeen, cp.Tree)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(2 * time.Second)
	a.kill()
	b.waitRole(t, c, "active", takeoverWithin)
	time.Sleep(1500 * time.Millisecond)
	cancel()
	wg.Wait()
	cl.seen = append(cl.seen, bucketSeen...)
	final := cl.check(c, b.url, v)
	// Appends in flight when the writers stopped may still land: compare
	// the bucket with what b serves now, and check both against final.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		cp, err := getCheckpoint(context.Background(), c, bucketHTTP, v)
		served, serr := getCheckpoint(context.Background(), c, b.url, v)
		if err == nil && serr == nil && cp.Tree == served.Tree {
			final = cp.Tree
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bucket's checkpoint %+v (%v), b's %+v (%v) after 20s\nb's log:\n%s", cp.Tree, err, served.Tree, serr, b.stderr)
		}
	}
	cl.check(c, b.url, v) // every checkpoint seen against the bucket's final one
	if out, errOut, code := run(t, nil, "audit", "--url", bucketHTTP, "--key", vkey, "--no-progress"); code != 0 ||
		!strings.Contains(out, fmt.Sprintf("size %d", final.N)) {
		t.Fatalf("indelible audit of the bucket: exit %d\n%s\n%s", code, out, errOut)
	}
	fsckStart := time.Now()
	if err := tesseraFsck(context.Background(), bucketHTTP, "example.com/cluster-bucket", vkey); err != nil {
		t.Fatalf("tessera's fsck of the bucket: %v", err)
	}
	t.Logf("%d acknowledged, final size %d, %d bucket checkpoints seen; tessera's fsck took %v", len(cl.acked), final.N, len(bucketSeen),
		time.Since(fsckStart).Round(time.Millisecond))
}

// TestClusterHandover: SIGTERM the active node: it stops cleanly (exit 0)
// and gives its lease up, so the standby takes over at its next read of the
// lease, long before the lease would have expired (a lease of 10 s here).
func TestClusterHandover(t *testing.T) {
	store := pgtest.DSN(t)
	keyFile, _ := newLogKey(t, "example.com/cluster-handover")
	c := &http.Client{Timeout: killTestTimeout}
	a, b, _ := startPair(t, c, store, store, keyFile, "--lease", "10s")
	if idx := httpAdd(t, b.url, []byte("through b")); idx != 0 {
		t.Fatalf("first entry at %d", idx)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	stopped := time.Now()
	select {
	case <-a.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("a did not stop within 15s of SIGTERM")
	}
	if a.err != nil {
		t.Fatalf("a exited with %v after SIGTERM\n%s", a.err, a.stderr)
	}
	b.waitRole(t, c, "active", 10*time.Second)
	took := time.Since(stopped)
	t.Logf("b active %v after a's SIGTERM (lease 10s)", took.Round(time.Millisecond))
	if took > 7*time.Second {
		t.Fatalf("handover took %v: the lease was not given up", took)
	}
	if idx := httpAdd(t, b.url, []byte("on b")); idx != 1 {
		t.Fatalf("second entry at %d", idx)
	}
}

// TestClusterStartTogether: two nodes started at once on an empty store
// (both with --init): one becomes active and creates the log, the other is
// its standby; then the standby's data directory is wiped and it is
// started again: it rejoins, and takes over when the active node is killed,
// with nothing lost.
func TestClusterStartTogether(t *testing.T) {
	store := pgtest.DSN(t)
	keyFile, vkey := newLogKey(t, "example.com/cluster-together")
	v, _ := note.NewVerifier(vkey)
	c := &http.Client{Timeout: killTestTimeout}
	var nodes [2]*clusterNode
	var wg sync.WaitGroup
	for i, name := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i] = startClusterNode(t, name, store, keyFile, "--init")
		}()
	}
	wg.Wait()
	if nodes[0] == nil || nodes[1] == nil {
		t.FailNow()
	}
	var active, standby *clusterNode
	for deadline := time.Now().Add(4 * clusterLease); active == nil || standby == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no active node and standby naming it")
		}
		active, standby = nil, nil
		for i, n := range nodes {
			st, err := n.status(c)
			if err != nil {
				continue
			}
			o, _ := nodes[1-i].status(c)
			if st.Role == "active" && o.Role == "standby" && o.Active.Node == n.name {
				active, standby = n, nodes[1-i]
			}
		}
	}
	acked := map[int64][]byte{}
	for i := range 20 {
		n := []*clusterNode{active, standby}[i%2]
		e := fmt.Appendf(nil, "together %d", i)
		idx := httpAdd(t, n.url, e)
		if _, ok := acked[idx]; ok {
			t.Fatalf("index %d twice", idx)
		}
		acked[idx] = e
	}
	if len(acked) != 20 || acked[0] == nil || acked[19] == nil {
		t.Fatalf("one log from 0 to 19 expected: %d entries", len(acked))
	}
	// Wipe the standby's data directory and start it again.
	standby.kill()
	dataDir := standby.args[slices.Index(standby.args, "--data")+1]
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	standby = startClusterNode(t, standby.name, store, keyFile)
	active.kill()
	standby.waitRole(t, c, "active", takeoverWithin)
	e := []byte("after the wipe")
	acked[httpAdd(t, standby.url, e)] = e
	cl := &clusterLog{t: t, acked: acked}
	cl.check(c, standby.url, v)
}
