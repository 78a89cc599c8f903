package httpapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
)

// testWitness is a real witness (pebble store, HTTP server) for one log.
type testWitness struct {
	w    *witness.Witness
	ts   *httptest.Server
	vkey string
}

func newTestWitness(t *testing.T, name string, logs []witness.Log, peers []witness.Peer, gossip time.Duration) *testWitness {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	cs, err := itlog.NewCosigner(name, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.Open(t.TempDir(), witness.Options{Cosigner: cs, Logs: logs, Peers: peers, GossipInterval: gossip})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{})
	s.MountWitness(w, WitnessConfig{})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); w.Close() })
	return &testWitness{w: w, ts: ts, vkey: cs.VKey()}
}

// TestLogWitnessedInProcess runs a real log with three real witnesses over
// HTTP, quorum 2: the served checkpoint carries verified cosignatures, one
// witness going away does not stop ingestion or the quorum, and the
// witnessing catches up.
func TestLogWitnessedInProcess(t *testing.T) {
	key := tlogtest.NewKey(t, "example.com/witnessed")
	signer, verifier := key.Signer, key.Verifier
	logs := []witness.Log{{Origin: "example.com/witnessed", Verifiers: []note.Verifier{verifier}}}
	var ws []*testWitness
	var clients []ledger.Witness
	for i := 0; i < 3; i++ {
		tw := newTestWitness(t, fmt.Sprintf("w%d.example", i), logs, nil, -1)
		ws = append(ws, tw)
		c, err := witness.NewClient(tw.vkey, tw.ts.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, MinFreeBytes: -1,
		Witnessing: ledger.WitnessConfig{Witnesses: clients, Quorum: 2, Timeout: 2 * time.Second, Retry: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	appendN := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := l.Append(ctx, []byte(fmt.Sprintf("entry %d %d", i, time.Now().UnixNano()))); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitCosigned := func(min int64, want int, alive []*testWitness) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			cp, signed := l.Checkpoint()
			if cp.N >= min {
				n := 0
				for _, tw := range alive {
					fv, _ := fnote.NewVerifierForCosignatureV1(tw.vkey)
					if nn, err := note.Open(signed, note.VerifierList(verifier, fv)); err == nil && len(nn.Sigs) == 2 {
						n++
					}
				}
				if n >= want {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint >= %d with %d cosignatures; have %d:\n%s\nstats %+v", min, want, cp.N, signed, l.WitnessStats())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	appendN(20)
	waitCosigned(20, 3, ws)

	// Stop one witness: ingestion continues and quorum 2 still holds.
	ws[2].ts.Close()
	appendN(30)
	waitCosigned(50, 2, ws[:2])
	st := l.WitnessStats()
	if st.Witnesses[2].Failures == 0 || st.Published < 50 {
		t.Fatalf("stats do not show the failing witness: %+v", st)
	}
	// The served checkpoint is what GET /checkpoint returns.
	metrics := NewMetrics()
	metrics.WatchWitnessing(l)
	srv := httptest.NewServer(New(Config{Log: l, Metrics: metrics}).Handler())
	defer srv.Close()
	mresp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{"indelible_witnessed_tree_size ", "indelible_witness_lag_entries ", `indelible_witness_failures_total{witness="w2.example"} `, `indelible_witness_known_size{witness="w0.example"} `} {
		if !strings.Contains(string(mb), want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(string(mb), `indelible_witness_failures_total{witness="w2.example"} 0`+"\n") {
		t.Fatal("/metrics does not count the stopped witness's failures")
	}
	resp, err := http.Get(srv.URL + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Count(string(body), "\n— ") < 3 {
		t.Fatalf("GET /checkpoint lacks cosignatures:\n%s", body)
	}
}

// lazyServer is an HTTP server whose URL is known before its handler.
type lazyServer struct {
	ln  net.Listener
	URL string
	hs  *http.Server
}

func newLazyServer(t *testing.T) *lazyServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &lazyServer{ln: ln, URL: "http://" + ln.Addr().String()}
}

func (s *lazyServer) serve(t *testing.T, h http.Handler) {
	s.hs = &http.Server{Handler: h}
	go s.hs.Serve(s.ln)
	t.Cleanup(func() { s.hs.Close() })
}

// TestGossipDetectsFork runs two logs that share one key but hold different
// entries (a split view), each witnessed by its own witness. The witnesses
// gossip; both must record fork evidence within a few intervals (one by a
// consistency proof from its log's tiles, the other by verifying the
// evidence its peer holds), and then refuse to cosign the origin.
func TestGossipDetectsFork(t *testing.T) {
	for _, sizes := range [][2]int{{3, 5}, {4, 4}} {
		t.Run(fmt.Sprintf("sizes %d and %d", sizes[0], sizes[1]), func(t *testing.T) { testGossipDetectsFork(t, sizes) })
	}
}

func testGossipDetectsFork(t *testing.T, sizes [2]int) {
	const origin = "example.com/forked"
	key := tlogtest.NewKey(t, origin)
	signer, verifier := key.Signer, key.Verifier
	logSrv := []*lazyServer{newLazyServer(t), newLazyServer(t)}
	witSrv := []*lazyServer{newLazyServer(t), newLazyServer(t)}
	var cos []*itlog.Cosigner
	for i := 0; i < 2; i++ {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		c, _ := itlog.NewCosigner(fmt.Sprintf("w%d.example", i), priv, nil)
		cos = append(cos, c)
	}
	var ws []*witness.Witness
	var logs []*ledger.Log
	const interval = 100 * time.Millisecond
	for i := 0; i < 2; i++ {
		peer := 1 - i
		w, err := witness.Open(t.TempDir(), witness.Options{
			Cosigner:       cos[i],
			Logs:           []witness.Log{{Origin: origin, Verifiers: []note.Verifier{verifier}, URL: logSrv[i].URL}},
			Peers:          []witness.Peer{{Verifier: cos[peer].Verifier(), URL: witSrv[peer].URL}},
			GossipInterval: interval,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		s := New(Config{})
		s.MountWitness(w, WitnessConfig{})
		witSrv[i].serve(t, s.Handler())
		ws = append(ws, w)

		c, err := witness.NewClient(cos[i].VKey(), witSrv[i].URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, MinFreeBytes: -1,
			Witnessing: ledger.WitnessConfig{Witnesses: []ledger.Witness{c}, Retry: 50 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		logSrv[i].serve(t, New(Config{Log: l}).Handler())
		logs = append(logs, l)
	}
	ctx := context.Background()
	for i, n := range sizes {
		for j := 0; j < n; j++ {
			if _, err := logs[i].Append(ctx, []byte(fmt.Sprintf("log %d entry %d", i, j))); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(20 * interval * 5)
	for {
		f0, _ := ws[0].Forks()
		f1, _ := ws[1].Forks()
		if len(f0) > 0 && len(f1) > 0 {
			for _, f := range append(f0, f1...) {
				if err := witness.VerifyEvidence(f, verifier); err != nil {
					t.Fatalf("recorded evidence does not verify: %v", err)
				}
			}
			t.Logf("w0: %s (%s); w1: %s (%s)", f0[0].Reason, f0[0].Source, f1[0].Reason, f1[0].Source)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fork not detected by both witnesses: w0 %d records, w1 %d records; log stats %+v %+v", len(f0), len(f1), logs[0].WitnessStats(), logs[1].WitnessStats())
		}
		time.Sleep(interval / 2)
	}
	// Neither cosigns the origin any more.
	for i := range logs {
		if _, err := logs[i].Append(ctx, []byte("after the fork")); err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range ws {
		cp, signed := logs[i].Checkpoint()
		_ = cp
		// Re-submit the log's newest checkpoint directly: refused.
		last, _ := w.Checkpoint(origin)
		lastCP, _ := itlog.ParseCheckpoint(strings.SplitN(string(last), "\n\n", 2)[0] + "\n")
		_, err := w.AddCheckpoint(ctx, []byte(fmt.Sprintf("old %d\n\n%s", lastCP.N, signed)))
		if !errors.Is(err, witness.ErrForked) {
			t.Fatalf("witness %d still cosigns after the fork: %v", i, err)
		}
		if st := w.Stats(); st.ForkedLogs != 1 || st.Forks < 1 {
			t.Fatalf("witness %d stats %+v", i, st)
		}
	}
}
