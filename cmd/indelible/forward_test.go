package main

import (
	"bytes"
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
	"strings"
	"sync"
	"testing"
	"time"

	"indelible.dev/api"
	"indelible.dev/client"
	"indelible.dev/cluster"
	"indelible.dev/internal/pgtest"
	"indelible.dev/internal/tlogtest"
)

// TestClusterForwardFrozen: writers send events (each with its own id) to
// the standby, which forwards them to the active node; the active node is
// frozen (SIGSTOP: its kernel still accepts connections, so a forward
// would wait for the caller's own timeout). Every request under way then
// is answered within lease + 2 s, with 503 and Retry-After naming the
// cause, not the writers' 60 s timeout; each writer retries the same
// event until it is acknowledged, by the standby once it has taken over.
// Every event is in the log exactly once and no index was acknowledged
// for two ids.
func TestClusterForwardFrozen(t *testing.T) {
	store := pgtest.DSN(t)
	keyFile, _ := newLogKey(t, "example.com/cluster-forward")
	master := filepath.Join(t.TempDir(), "master.key")
	mk := make([]byte, 32)
	rand.Read(mk)
	if err := os.WriteFile(master, []byte(hex.EncodeToString(mk)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	a := startClusterNode(t, "a", store, keyFile, "--init", "--mode", "events", "--master-key", master)
	a.waitRole(t, hc, "active", 3*clusterLease)
	tok, err := os.ReadFile(filepath.Join(a.args[slices.Index(a.args, "--data")+1], adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	b := startClusterNode(t, "b", store, keyFile, "--mode", "events", "--master-key", master)
	tlogtest.Eventually(t, 3*clusterLease, "b knows a is active", func() (bool, string) {
		st, err := b.status(hc)
		return err == nil && st.Role == "standby" && st.Active.Node == "a", fmt.Sprint(st, err)
	})

	// One event a request, so that each answer is about one id.
	wc := &http.Client{Timeout: 60 * time.Second}
	post := func(id string) (int, []byte, time.Duration, error) {
		body := fmt.Sprintf(`{"id":%q,"action":"door.open","actor":{"id":"forward-test"}}`+"\n", id)
		req, _ := http.NewRequest(http.MethodPost, b.url+"/v1/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		t0 := time.Now()
		resp, err := wc.Do(req)
		if err != nil {
			return 0, nil, time.Since(t0), err
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After: %s", rb)
		}
		return resp.StatusCode, rb, time.Since(t0), nil
	}
	type answer struct {
		code int
		body string
		sent time.Time
		took time.Duration
	}
	var (
		mu      sync.Mutex
		acked   = map[string]int64{} // id -> index
		answers []answer
		frozeAt time.Time
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				id := fmt.Sprintf("w%d-%d", w, k)
				for { // until acknowledged, even after ctx ends
					sent := time.Now()
					code, rb, took, err := post(id)
					if err != nil {
						t.Errorf("POST %s: %v (after %v)", id, err, took)
						return
					}
					mu.Lock()
					answers = append(answers, answer{code, string(rb), sent, took})
					mu.Unlock()
					if code == 200 {
						var reply api.AppendReply
						if err := json.Unmarshal(rb, &reply); err != nil || len(reply.Events) != 1 || reply.Events[0].ID != id {
							t.Errorf("POST %s: %s, %v", id, rb, err)
							return
						}
						mu.Lock()
						acked[id] = reply.Events[0].Index
						mu.Unlock()
						break
					}
					if code != 503 && code != 502 {
						t.Errorf("POST %s: %d %s", id, code, rb)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	tlogtest.Eventually(t, 20*time.Second, "writes forwarded through b", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 40, fmt.Sprint(len(acked), " acknowledged")
	})
	freeze(t, a)
	mu.Lock()
	frozeAt = time.Now()
	mu.Unlock()
	b.waitRole(t, hc, "active", takeoverWithin)
	activeAt := time.Now()
	tookOver := activeAt.Sub(frozeAt)
	mu.Lock()
	n0 := len(acked)
	mu.Unlock()
	tlogtest.Eventually(t, 20*time.Second, "writes acknowledged by b as the active node", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= n0+40, fmt.Sprint(len(acked)-n0, " acknowledged since")
	})
	cancel()
	wg.Wait()

	// Every request under way while a was frozen, until b answered as the
	// active node, was answered within lease + 2 s; those abandoned said
	// why. (Requests b serves as the active node are not forwards.)
	mu.Lock()
	defer mu.Unlock()
	bound := clusterLease + 2*time.Second
	var abandoned int
	var slowest answer
	for _, an := range answers {
		if an.sent.Add(an.took).Before(frozeAt) || an.sent.After(activeAt) {
			continue
		}
		if an.took > slowest.took {
			slowest = an
		}
		if an.took > bound {
			t.Errorf("a request sent %v after the freeze was answered after %v (%d %s), want within lease + 2 s = %v",
				an.sent.Sub(frozeAt).Round(time.Millisecond), an.took.Round(time.Millisecond), an.code, an.body, bound)
		}
		if an.code == 503 && strings.Contains(an.body, "active node") && (strings.Contains(an.body, "changed") || strings.Contains(an.body, "lease")) {
			abandoned++
		}
	}
	if abandoned == 0 {
		t.Errorf("no forwarded request was abandoned naming the active node's change; answers after the freeze: %v", answers)
	}
	t.Logf("b took over %v after the freeze; %d requests abandoned with 503; slowest answer after the freeze %v (%d %s)",
		tookOver.Round(time.Millisecond), abandoned, slowest.took.Round(time.Millisecond), slowest.code, strings.TrimSpace(slowest.body))

	// Each id once in the log, at the index acknowledged for it.
	byIndex := map[int64]string{}
	for id, i := range acked {
		if other, dup := byIndex[i]; dup {
			t.Fatalf("index %d acknowledged for %s and %s", i, id, other)
		}
		byIndex[i] = id
	}
	cb := mustClient(t, b.url, token)
	seen := map[string][]int64{}
	q := client.Query{Actor: "forward-test", Limit: 1000}
	for {
		p, err := cb.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Events {
			e, err := r.Decode()
			if err != nil {
				t.Fatal(err)
			}
			seen[e.ID] = append(seen[e.ID], r.Index)
		}
		if p.NextCursor == "" {
			break
		}
		q.Cursor = p.NextCursor
	}
	for id, idx := range seen {
		if len(idx) != 1 {
			t.Errorf("event %s is in the log %d times, at %v", id, len(idx), idx)
		}
		if want, ok := acked[id]; !ok || want != idx[0] {
			t.Errorf("event %s is at %v, acknowledged at %d (%v)", id, idx, want, ok)
		}
	}
	if len(seen) != len(acked) {
		t.Errorf("%d events in the log, %d acknowledged", len(seen), len(acked))
	}
	if !bytes.Contains([]byte(b.stderr.String()), []byte("took the lease")) {
		t.Errorf("b's log does not say it took the lease:\n%s", b.stderr)
	}
	noRace(t, b)
}

// TestForwardWatch: what a standby's forwards are given up on, by the
// lease as it last read it (TestClusterForwardFrozen runs the takeover
// case with real processes).
func TestForwardWatch(t *testing.T) {
	const target = "http://a.test:8080"
	held := cluster.Status{Node: "b", Role: cluster.Standby, Epoch: 3, Active: cluster.Peer{Node: "a", URL: target}}
	for _, tc := range []struct {
		name string
		st   func(cluster.Status) cluster.Status
		want string // "" for no error
	}{
		{"held, renewed", func(s cluster.Status) cluster.Status { s.Expires = time.Now().Add(time.Second); return s }, ""},
		{"held, no read of its end yet", func(s cluster.Status) cluster.Status { return s }, ""},
		{"ended within the margin", func(s cluster.Status) cluster.Status { s.Expires = time.Now().Add(-500 * time.Millisecond); return s }, ""},
		{"ended unrenewed", func(s cluster.Status) cluster.Status { s.Expires = time.Now().Add(-1500 * time.Millisecond); return s }, "has not renewed its lease"},
		{"this node took over", func(s cluster.Status) cluster.Status {
			s.Role, s.Active, s.Epoch = cluster.Active, cluster.Peer{Node: "b", URL: "http://b.test:8080"}, 4
			return s
		}, "this node (b) took over the lease"},
		{"another node took over", func(s cluster.Status) cluster.Status {
			s.Active, s.Epoch = cluster.Peer{Node: "c", URL: "http://c.test:8080"}, 4
			return s
		}, "c (at http://c.test:8080) holds the lease now"},
		{"no holder known", func(s cluster.Status) cluster.Status { s.Active = cluster.Peer{}; return s }, "no node holds it yet"},
	} {
		st := tc.st(held)
		err := forwardWatch(func() cluster.Status { return st }, 2*time.Second)(target)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want the forward kept", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), ": retry")):
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
