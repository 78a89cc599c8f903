package httpapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

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
	skey, vkey, _ := note.GenerateKey(rand.Reader, "example.com/witnessed")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
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
	srv := httptest.NewServer(New(Config{Log: l}).Handler())
	defer srv.Close()
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
