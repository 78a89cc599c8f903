package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
	"indelible.dev/internal/pgtest"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger/kv/pgkv"
	itlog "indelible.dev/tlog"
)

// The standby's bounds the tests hold it to: standbyRefresh (250 ms) plus
// a margin for a loaded machine (2 cores shared by many processes).
const standbyBound = standbyRefresh + 2*time.Second

// standbyLease is the lease of the tests that freeze the active node: long
// enough that every read of the frozen phase happens before the standby
// may take over.
const standbyLease = "20s"

// get fetches url with an optional bearer token and returns the status and
// body.
func get(c *http.Client, url, token string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// servedLocally returns how many requests node n's own server answered on
// route (indelible_http_requests_total): a standby counts the requests it
// forwards under route="forwarded".
func servedLocally(t testing.TB, c *http.Client, n *clusterNode, route, token string) int {
	t.Helper()
	code, b, err := get(c, n.url+"/metrics", token)
	if err != nil || code != 200 {
		t.Fatalf("GET %s/metrics: %d %v", n.name, code, err)
	}
	total := 0
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "indelible_http_requests_total{") || !strings.Contains(line, `route="`+route+`"`) {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		total += int(v)
	}
	return total
}

// noRace fails t if a node's log holds a race report (the binary is built
// with the race detector when the tests run with GOFLAGS=-race).
func noRace(t testing.TB, nodes ...*clusterNode) {
	t.Helper()
	for _, n := range nodes {
		if strings.Contains(n.stderr.String(), "DATA RACE") {
			t.Errorf("node %s reported a data race:\n%s", n.name, n.stderr)
		}
	}
}

// freeze SIGSTOPs n and waits until the kernel reports it stopped (the
// signal is delivered asynchronously: a request sent right after Signal
// could still be answered), and SIGCONTs it when the test ends.
func freeze(t testing.TB, n *clusterNode) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { n.cmd.Process.Signal(syscall.SIGCONT) })
	stat := fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid)
	tlogtest.Eventually(t, 5*time.Second, "node "+n.name+" stopped", func() (bool, string) {
		b, err := os.ReadFile(stat)
		if err != nil {
			return false, err.Error()
		}
		// pid (comm) STATE ...: the state follows the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		return len(f) > 0 && (f[0] == "T" || f[0] == "t"), string(b)
	})
}

// waitView waits until the standby serves reads from its view of the store.
func waitView(t testing.TB, n *clusterNode) {
	t.Helper()
	tlogtest.Eventually(t, 20*time.Second, "the standby's read-only view", func() (bool, string) {
		return strings.Contains(n.stderr.String(), "the standby serves the log's reads"), n.stderr.String()
	})
}

// waitSame waits until b serves the checkpoint a serves (a is not being
// written to), and returns it with how long b took.
func waitSame(t testing.TB, c *http.Client, a, b *clusterNode, token string) ([]byte, time.Duration) {
	t.Helper()
	start := time.Now()
	var got, want []byte
	for time.Since(start) < 20*time.Second {
		// a's again each time: an append whose client left may still
		// have been committing.
		_, want, err := get(c, a.url+"/checkpoint", token)
		if err != nil {
			t.Fatal(err)
		}
		if _, got, err = get(c, b.url+"/checkpoint", token); err == nil && string(got) == string(want) {
			return want, time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the standby serves %q, the active node %q", got, want)
	return nil, 0
}

// TestStandbyServesReads: a standby answers the log's reads itself, from
// the store: with the active node frozen (SIGSTOP, well within its lease),
// the standby still serves the checkpoint, every tile and entry bundle and
// the proofs, byte for byte as the active node served them, and they verify
// against that checkpoint; a write sent to it fails (the forward cannot
// reach the frozen node). While writers append, the standby's checkpoint
// never goes ahead of the active node's, and it catches up within the
// refresh bound once they stop.
func TestStandbyServesReads(t *testing.T) {
	store := pgtest.DSN(t)
	keyFile, vkey := newLogKey(t, "example.com/standby")
	v, _ := note.NewVerifier(vkey)
	c := &http.Client{Timeout: 10 * time.Second}
	a, b, _ := startPair(t, c, store, store, keyFile, "--lease", standbyLease)
	waitView(t, b)

	// Writers append through both nodes (b forwards); a checker compares
	// b's checkpoint with a's, read right after it.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				u := []string{a.url, b.url}[(w+k)%2]
				if i, err := postEntry(ctx, c, u, fmt.Appendf(nil, "writer %d entry %d", w, k)); err == nil {
					mu.Lock()
					acked = append(acked, i)
					mu.Unlock()
				}
			}
		}()
	}
	samples, ahead := 0, 0
	var bSizes []int64
	var bTrees []tlog.Tree
	var prevB itlog.Checkpoint
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		cb, err := getCheckpoint(ctx, c, b.url, v)
		if err != nil {
			t.Fatalf("b's checkpoint: %v", err)
		}
		ca, err := getCheckpoint(ctx, c, a.url, v)
		if err != nil {
			t.Fatalf("a's checkpoint: %v", err)
		}
		samples++
		if cb.N > ca.N {
			ahead++
			t.Errorf("b served size %d, a then served %d", cb.N, ca.N)
		}
		if cb.N < prevB.N {
			t.Errorf("b's checkpoint went back from %d to %d", prevB.N, cb.N)
		}
		if cb.N != prevB.N {
			bSizes = append(bSizes, cb.N)
			bTrees = append(bTrees, cb.Tree)
		}
		prevB = cb
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	mu.Lock()
	n := int64(len(acked))
	mu.Unlock()
	if n < 100 || len(bSizes) < 3 {
		t.Fatalf("%d entries acknowledged, b served %d sizes: too few to prove anything", n, len(bSizes))
	}
	signed, took := waitSame(t, c, a, b, "")
	if took > standbyBound {
		t.Errorf("b caught up with a %v after the writers stopped, bound %v", took, standbyBound)
	}
	t.Logf("%d entries; b served %d sizes in %d samples, none ahead of a; caught up %v after the last append", n, len(bSizes), samples, took.Round(time.Millisecond))
	cp, _, err := itlog.OpenCheckpoint(signed, v)
	if err != nil || cp.N < n {
		t.Fatalf("the final checkpoint (size %d, %v) does not cover the %d entries acknowledged", cp.N, err, n)
	}

	// Every tree b served is the active node's at that size: its root is
	// the one a's final tiles give.
	thrA := tlog.TileHashReader(cp.Tree, tlogtest.TileReader{URL: a.url, Client: c})
	for _, tr := range bTrees {
		if h, err := tlog.TreeHash(tr.N, thrA); err != nil || h != tr.Hash {
			t.Fatalf("b served size %d with root %v; a's tree has %v (%v)", tr.N, tr.Hash, h, err)
		}
	}

	// What a serves, before it freezes.
	paths := []string{"/checkpoint",
		fmt.Sprintf("/v1/proof/inclusion?index=0&size=%d", cp.N),
		fmt.Sprintf("/v1/proof/inclusion?index=%d&size=%d", cp.N-1, cp.N),
		fmt.Sprintf("/v1/proof/consistency?from=%d&to=%d", bSizes[0], cp.N)}
	for _, tile := range tlog.NewTiles(itlog.TileHeight, 0, cp.N) {
		paths = append(paths, "/"+itlog.TilePath(tile))
		if tile.L == 0 {
			tile.L = itlog.EntriesLevel
			paths = append(paths, "/"+itlog.TilePath(tile))
		}
	}
	want := map[string][]byte{}
	for _, p := range paths {
		code, body, err := get(c, a.url+p, "")
		if err != nil || code != 200 {
			t.Fatalf("a: GET %s: %d %v", p, code, err)
		}
		want[p] = body
	}
	before := servedLocally(t, c, b, "/tile/*", "")

	freeze(t, a)
	frozen := time.Now()
	fc := &http.Client{Timeout: 3 * time.Second}
	for _, p := range paths {
		code, body, err := get(fc, b.url+p, "")
		if err != nil || code != 200 {
			t.Fatalf("b, with a frozen: GET %s: %d %v", p, code, err)
		}
		if string(body) != string(want[p]) {
			t.Fatalf("b, with a frozen: GET %s differs from what a served", p)
		}
	}
	// The tiles b serves authenticate against b's checkpoint.
	thr := tlog.TileHashReader(cp.Tree, tlogtest.TileReader{URL: b.url, Client: fc})
	for _, i := range []int64{0, cp.N / 3, cp.N - 1} {
		p, err := tlog.ProveRecord(cp.N, i, thr)
		if err != nil {
			t.Fatalf("proving %d from b's tiles: %v", i, err)
		}
		bundle, err := getBundle(mustClient(t, b.url, ""), i/itlog.TileWidth, int(min(cp.N-i/itlog.TileWidth*itlog.TileWidth, itlog.TileWidth)))
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, cp.N, cp.Hash, i, tlog.RecordHash(bundle[i%itlog.TileWidth])); err != nil {
			t.Fatalf("entry %d in b's bundle does not verify against b's checkpoint: %v", i, err)
		}
	}
	// A write cannot reach the frozen active node.
	if i, err := postEntry(context.Background(), fc, b.url, []byte("while a is frozen")); err == nil {
		t.Fatalf("a write through b was acknowledged (index %d) with a frozen", i)
	} else {
		t.Logf("a write through b with a frozen: %v", err)
	}
	if st, err := b.status(fc); err != nil || st.Role != "standby" {
		t.Fatalf("b during the frozen phase: %+v %v (the reads must be a standby's)", st, err)
	}
	if got := servedLocally(t, fc, b, "/tile/*", "") - before; got < len(paths)-4 {
		t.Fatalf("b's own server answered %d tile requests, want at least %d", got, len(paths)-4)
	}
	t.Logf("frozen phase: %d reads from b in %v", len(paths), time.Since(frozen).Round(time.Millisecond))
	a.cmd.Process.Signal(syscall.SIGCONT)

	// Writes through b go on once a is back.
	var idx int64
	tlogtest.Eventually(t, 10*time.Second, "a write through b after SIGCONT", func() (bool, string) {
		var err error
		idx, err = postEntry(context.Background(), c, b.url, []byte("after SIGCONT"))
		return err == nil, fmt.Sprint(err)
	})
	_, took = waitSame(t, c, a, b, "")
	if cp, err := getCheckpoint(context.Background(), c, b.url, v); err != nil || cp.N <= idx {
		t.Fatalf("b's checkpoint %d after the write at %d: %v", cp.N, idx, err)
	}
	t.Logf("b caught up %v after a write", took.Round(time.Millisecond))
	noRace(t, a, b)
}

// startEventsPair starts two events-mode nodes on one store (extra flags
// for both) and returns them with the first admin token.
func startEventsPair(t *testing.T, c *http.Client, extra ...string) (a, b *clusterNode, admin string, v note.Verifier) {
	t.Helper()
	store := pgtest.DSN(t)
	keyFile, vkey := newLogKey(t, "example.com/standby-events")
	v, _ = note.NewVerifier(vkey)
	master := filepath.Join(t.TempDir(), "master.key")
	mk := make([]byte, 32)
	rand.Read(mk)
	if err := os.WriteFile(master, []byte(hex.EncodeToString(mk)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := append([]string{"--mode", "events", "--master-key", master, "--lease", standbyLease}, extra...)
	a = startClusterNode(t, "a", store, keyFile, append([]string{"--init"}, flags...)...)
	a.waitRole(t, c, "active", 3*clusterLease)
	tok, err := os.ReadFile(filepath.Join(a.args[slices.Index(a.args, "--data")+1], adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	b = startClusterNode(t, "b", store, keyFile, flags...)
	tlogtest.Eventually(t, 3*clusterLease, "b knows a is active", func() (bool, string) {
		st, err := b.status(c)
		return err == nil && st.Role == "standby" && st.Active.Node == "a", fmt.Sprint(st, err)
	})
	waitView(t, b)
	return a, b, strings.TrimSpace(string(tok)), v
}

// TestStandbyAuditedRead: a read of event content sent to a standby is
// audited, so it is forwarded: exactly one indelible.read record, sequenced
// by the active node; the standby answers the log's reads itself meanwhile.
func TestStandbyAuditedRead(t *testing.T) {
	c := &http.Client{Timeout: 10 * time.Second}
	a, b, admin, _ := startEventsPair(t, c)
	ctx := t.Context()
	ca := mustClient(t, a.url, admin)
	reader, err := ca.CreateToken(ctx, "reader", []string{"read"})
	if err != nil {
		t.Fatal(err)
	}
	auditor, err := ca.CreateToken(ctx, "auditor", []string{"read"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ca.Append(ctx, []client.Event{{Action: "door.open", Actor: &client.Actor{ID: "standby-alice"}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	i := res[0].Index
	waitSame(t, c, a, b, "")
	localBefore := servedLocally(t, c, b, "/checkpoint", "")
	fwdBefore := servedLocally(t, c, b, "forwarded", "")

	rec, err := mustClient(t, b.url, reader.Secret).Event(ctx, i)
	if err != nil {
		t.Fatalf("reading event %d through the standby: %v", i, err)
	}
	if ev, err := rec.Decode(); err != nil || ev.Action != "door.open" {
		t.Fatalf("event %d through the standby: %+v %v", i, ev, err)
	}
	if got := servedLocally(t, c, b, "forwarded", "") - fwdBefore; got < 1 {
		t.Fatalf("the event read was not forwarded (%d forwarded requests)", got)
	}
	// The standby's own reads stay local.
	waitSame(t, c, a, b, "")
	if got := servedLocally(t, c, b, "/checkpoint", "") - localBefore; got < 1 {
		t.Fatalf("the standby answered no /checkpoint itself")
	}

	// Exactly one record of that read, by the reader, in the log a
	// sequences (the auditor's query is recorded too, under its own name).
	page, err := mustClient(t, a.url, auditor.Secret).Query(ctx, client.Query{Action: "indelible.read", Actor: "reader", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	reads := 0
	for _, r := range page.Events {
		ev, err := r.Decode()
		if err != nil {
			t.Fatal(err)
		}
		var md struct {
			Route string `json:"route"`
			Index *int64 `json:"index"`
		}
		if err := json.Unmarshal(ev.Metadata, &md); err != nil {
			t.Fatal(err)
		}
		if md.Route == "/v1/events/:index" && md.Index != nil && *md.Index == i {
			reads++
			if r.Index <= i {
				t.Fatalf("the read record %d is not after the event %d", r.Index, i)
			}
		}
	}
	if reads != 1 {
		t.Fatalf("%d indelible.read records of the read of event %d through the standby, want 1: %+v", reads, i, page.Events)
	}
	// The record is in the log both nodes serve.
	waitSame(t, c, a, b, "")
}

// TestStandbyRevokedToken: with --private-log a standby authenticates the
// log's reads itself (it serves them with the active node frozen), with the
// tokens in the store: a token created on the active node works on the
// standby, and once revoked there it is refused (401) by the standby
// within the refresh bound.
func TestStandbyRevokedToken(t *testing.T) {
	c := &http.Client{Timeout: 10 * time.Second}
	a, b, admin, v := startEventsPair(t, c, "--private-log")
	ctx := t.Context()
	ca := mustClient(t, a.url, admin)
	created := time.Now()
	reader, err := ca.CreateToken(ctx, "reader", []string{"read"})
	if err != nil {
		t.Fatal(err)
	}
	tlogtest.Eventually(t, standbyBound, "the new token works on the standby", func() (bool, string) {
		code, body, err := get(c, b.url+"/checkpoint", reader.Secret)
		return code == 200, fmt.Sprint(code, string(body), err)
	})
	t.Logf("a new token works on the standby %v after it was created", time.Since(created).Round(time.Millisecond))
	if code, _, _ := get(c, b.url+"/checkpoint", ""); code != 401 {
		t.Fatalf("GET /checkpoint on the standby without a token: %d, want 401", code)
	}

	// Local: the standby authenticates and serves with a frozen.
	freeze(t, a)
	fc := &http.Client{Timeout: 3 * time.Second}
	code, body, err := get(fc, b.url+"/checkpoint", reader.Secret)
	if err != nil || code != 200 {
		t.Fatalf("GET /checkpoint on the standby with a frozen: %d %v", code, err)
	}
	if _, _, err := itlog.OpenCheckpoint(body, v); err != nil {
		t.Fatal(err)
	}
	if code, _, err := get(fc, b.url+"/checkpoint", "ind_"+strings.Repeat("A", 43)); err != nil || code != 401 {
		t.Fatalf("an unknown token on the standby with a frozen: %d %v, want 401", code, err)
	}
	a.cmd.Process.Signal(syscall.SIGCONT)

	if err := ca.RevokeToken(ctx, "reader"); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	if code, _, _ := get(c, a.url+"/checkpoint", reader.Secret); code != 401 {
		t.Fatalf("the revoked token on the active node: %d, want 401", code)
	}
	var last int
	for {
		code, _, err := get(c, b.url+"/checkpoint", reader.Secret)
		if err == nil && code == 401 {
			break
		}
		last = code
		if time.Since(revoked) > standbyBound {
			t.Fatalf("the standby still answers %d to a token revoked %v ago (bound %v)", last, time.Since(revoked), standbyBound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the standby refused the revoked token %v after the revocation", time.Since(revoked).Round(time.Millisecond))
	// Refused from then on.
	for range 5 {
		if code, _, _ := get(c, b.url+"/checkpoint", reader.Secret); code != 401 {
			t.Fatalf("the revoked token answered %d on the standby", code)
		}
	}
	noRace(t, a, b)
}

// viewSessions counts the database sessions of node's read-only view.
func viewSessions(t testing.TB, store, node string) int {
	t.Helper()
	s, err := pgkv.Open(context.Background(), store, pgkv.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, "indelible-view:"+node).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStandbyTakeover: readers hammer a standby's reads while the active
// node is killed and the standby takes over, and while that node is later
// frozen past its lease, fenced and steps down: no read is ever served from
// a closed view (no 500), the checkpoint never goes back, only 503 (retry)
// answers a read caught in a role change; the view's database sessions end
// when the node becomes active, and come back (its view reopened, serving
// reads itself) when it steps down.
func TestStandbyTakeover(t *testing.T) {
	store := pgtest.DSN(t)
	keyFile, vkey := newLogKey(t, "example.com/standby-takeover")
	v, _ := note.NewVerifier(vkey)
	c := &http.Client{Timeout: 10 * time.Second}
	a, b, _ := startPair(t, c, store, store, keyFile)
	waitView(t, b)
	for k := range 300 {
		if _, err := postEntry(context.Background(), c, a.url, fmt.Appendf(nil, "entry %d", k)); err != nil {
			t.Fatal(err)
		}
	}
	waitSame(t, c, a, b, "")
	if n := viewSessions(t, store, "b"); n == 0 {
		t.Fatal("b's view has no database session")
	}

	// Readers on b, through every phase.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	var maxN int64
	// resumed is set while b is the former active node, resumed from
	// SIGSTOP after another node took over, until it reports itself a
	// standby: its active server's store sessions were ended by the
	// takeover, and a read of the store there fails (500) until it
	// notices and steps down. That is the active node's read path, not
	// the view's.
	var resumed atomic.Bool
	rc := &http.Client{Timeout: time.Second}
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last int64 // this reader's: its reads are one after the other
			for ctx.Err() == nil {
				p := "/checkpoint"
				if r%2 == 1 {
					p = "/tile/entries/000"
				}
				code, body, err := get(rc, b.url+p, "")
				if err != nil {
					continue // b frozen
				}
				mu.Lock()
				codes[code]++
				if code == 200 && p == "/checkpoint" {
					cp, _, err := itlog.OpenCheckpoint(body, v)
					if err != nil {
						t.Errorf("b served a checkpoint that does not verify: %v", err)
					} else if cp.N < last {
						t.Errorf("b's checkpoint went back from %d to %d", last, cp.N)
					} else {
						last = cp.N
					}
					maxN = max(maxN, cp.N)
				}
				if code != 200 && code != 503 && !(code == 500 && resumed.Load()) {
					t.Errorf("GET %s on b: %d %s", p, code, body)
				}
				mu.Unlock()
			}
		}()
	}

	a.kill()
	b.waitRole(t, c, "active", takeoverWithin)
	for k := range 50 {
		if _, err := postEntry(context.Background(), c, b.url, fmt.Appendf(nil, "on b %d", k)); err != nil {
			t.Fatal(err)
		}
	}
	tlogtest.Eventually(t, 5*time.Second, "b's view sessions ended", func() (bool, string) {
		n := viewSessions(t, store, "b")
		return n == 0, fmt.Sprintf("%d sessions", n)
	})

	// A third node joins as standby; b is frozen past its lease, c takes
	// over, b comes back, is fenced, steps down and reopens its view.
	cn := startClusterNode(t, "c", store, keyFile)
	waitView(t, cn)
	freeze(t, b)
	cn.waitRole(t, c, "active", takeoverWithin)
	if _, err := postEntry(context.Background(), c, cn.url, []byte("on c")); err != nil {
		t.Fatal(err)
	}
	resumed.Store(true)
	b.cmd.Process.Signal(syscall.SIGCONT)
	b.waitRole(t, c, "standby", 2*clusterLease+5*time.Second)
	// Its view reopens after its active server has closed: requests in
	// flight from before end first.
	time.Sleep(100 * time.Millisecond)
	resumed.Store(false)
	tlogtest.Eventually(t, 10*time.Second, "b reopens its view", func() (bool, string) {
		return strings.Count(b.stderr.String(), "the standby serves the log's reads") >= 2, b.stderr.String()
	})
	waitSame(t, c, cn, b, "")
	if n := viewSessions(t, store, "b"); n == 0 {
		t.Fatal("b's reopened view has no database session")
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if codes[200] < 100 {
		t.Fatalf("b answered %v: too few reads to prove anything", codes)
	}
	t.Logf("b's answers to the readers: %v; largest checkpoint %d", codes, maxN)
	noRace(t, b, cn)
	if t.Failed() {
		t.Logf("b's log:\n%s", b.stderr)
	}
}
