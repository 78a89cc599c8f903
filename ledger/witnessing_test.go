package ledger

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// The real witness (indelible.dev/witness) is exercised with this package in
// httpapi and cmd/indelible tests; ledger must not import it. testWitness is
// a small in-process witness that still does the real work: it checks the
// log signature and the consistency proof against its own state, answers a
// stale old size with its known size, and cosigns with a real cosignature/v1
// key. Knobs let a test make it slow, wrong or down.
type testWitness struct {
	cosigner *itlog.Cosigner
	logV     note.Verifier

	mu   sync.Mutex
	tree tlog.Tree

	block    chan struct{} // if non-nil, requests wait on it
	down     atomic.Bool   // refuse every request
	badSig   atomic.Bool   // answer with a signature by another key
	inflight atomic.Int32
	maxIn    atomic.Int32
	calls    atomic.Int32
}

type sizeErr struct{ n int64 }

func (e *sizeErr) Error() string    { return fmt.Sprintf("409: known size %d", e.n) }
func (e *sizeErr) KnownSize() int64 { return e.n }

func newTestWitness(t *testing.T, name string, logV note.Verifier) *testWitness {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	c, err := itlog.NewCosigner(name, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &testWitness{cosigner: c, logV: logV, tree: tlog.Tree{Hash: itlog.EmptyRoot}}
}

func (w *testWitness) Verifier() note.Verifier { return w.cosigner.Verifier() }

func (w *testWitness) AddCheckpoint(ctx context.Context, old int64, proof tlog.TreeProof, checkpoint []byte) ([]byte, error) {
	w.calls.Add(1)
	n := w.inflight.Add(1)
	defer w.inflight.Add(-1)
	for {
		m := w.maxIn.Load()
		if n <= m || w.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	if w.block != nil {
		select {
		case <-w.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if w.down.Load() {
		return nil, errors.New("witness down")
	}
	cp, _, err := itlog.OpenCheckpoint(checkpoint, w.logV)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old != w.tree.N {
		return nil, &sizeErr{w.tree.N}
	}
	if err := itlog.CheckConsistency(proof, old, w.tree.Hash, cp.N, cp.Hash); err != nil {
		return nil, err
	}
	signer := note.Signer(w.cosigner)
	if w.badSig.Load() {
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		signer, _ = itlog.NewCosigner(w.cosigner.Name(), other, nil)
	}
	signed, err := note.Sign(&note.Note{Text: cp.String()}, signer)
	if err != nil {
		return nil, err
	}
	w.tree = cp.Tree
	return signed[len(cp.String())+1:], nil
}

func cosignedBy(signed []byte, ws ...*testWitness) int {
	n := 0
	for _, w := range ws {
		if nn, err := note.Open(signed, note.VerifierList(w.Verifier())); err == nil && len(nn.Sigs) == 1 {
			n++
		}
	}
	return n
}

func TestWitnessingQuorumAndVerification(t *testing.T) {
	s, v := testSigner(t)
	w0, w1, w2 := newTestWitness(t, "w0.example", v), newTestWitness(t, "w1.example", v), newTestWitness(t, "w2.example", v)
	w2.badSig.Store(true) // its cosignatures never verify: never attached
	var rounds atomic.Int32
	l, err := Open(t.TempDir(), Options{Signer: s, MinFreeBytes: -1, Witnessing: WitnessConfig{
		Witnesses: []Witness{w0, w1, w2}, Quorum: 2, Retry: 10 * time.Millisecond,
		OnRound: func(WitnessStats) { rounds.Add(1) },
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	appendN(t, l, "e", 50)
	tlogtest.Eventually(t, 10*time.Second, "size 50 witnessed", func() (bool, string) { cp, _ := l.Checkpoint(); return cp.N == 50, "" })
	cp, signed := l.Checkpoint()
	if cosignedBy(signed, w0, w1) != 2 || cosignedBy(signed, w2) != 0 || strings.Count(string(signed), "— w2.example") != 0 {
		t.Fatalf("checkpoint %d carries the wrong cosignatures:\n%s", cp.N, signed)
	}
	if _, _, err := itlog.OpenCheckpoint(signed, v); err != nil {
		t.Fatalf("served checkpoint no longer verifies: %v", err)
	}
	st := l.WitnessStats()
	if st.Witnessed != 50 || st.Witnesses[2].Failures == 0 || !strings.Contains(st.Witnesses[2].LastError, "does not verify") {
		t.Fatalf("stats %+v", st)
	}
	if rounds.Load() == 0 {
		t.Fatal("OnRound never called")
	}

	// Only one witness left: below the quorum, the served checkpoint stays.
	w1.down.Store(true)
	for i := 0; i < 10; i++ {
		if _, err := l.Append(ctx, []byte(fmt.Sprintf("f%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	tlogtest.Eventually(t, 10*time.Second, "w0 to cosign size 60", func() (bool, string) { w0.mu.Lock(); defer w0.mu.Unlock(); return w0.tree.N == 60, "" })
	time.Sleep(50 * time.Millisecond)
	if cp, _ := l.Checkpoint(); cp.N != 50 {
		t.Fatalf("served size %d without the quorum", cp.N)
	}
	// Back up: it catches up (the log retries without new appends).
	w1.down.Store(false)
	tlogtest.Eventually(t, 10*time.Second, "size 60 witnessed after recovery", func() (bool, string) { cp, _ := l.Checkpoint(); return cp.N == 60, "" })
}

// TestWitnessingConflictRetry: a witness that already knows a larger size
// (it restarted with state, or a previous log process reached it) answers
// 409 with its size; the log retries from there.
func TestWitnessingConflictRetry(t *testing.T) {
	s, v := testSigner(t)
	dir := t.TempDir()
	l, err := Open(dir, Options{Signer: s, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		l.Append(ctx, []byte(fmt.Sprintf("e%d", i)))
	}
	cp, _ := l.Checkpoint()
	l.Close()
	w := newTestWitness(t, "w.example", v)
	w.tree = cp.Tree // the witness is ahead of what this log process has sent it

	l, err = Open(dir, Options{Signer: s, MinFreeBytes: -1, Witnessing: WitnessConfig{Witnesses: []Witness{w}, Retry: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tlogtest.Eventually(t, 10*time.Second, "size 20 cosigned", func() (bool, string) { _, signed := l.Checkpoint(); return cosignedBy(signed, w) == 1, "" })
	l.Append(ctx, []byte("more"))
	tlogtest.Eventually(t, 10*time.Second, "size 21 cosigned", func() (bool, string) {
		cp, signed := l.Checkpoint()
		return cp.N == 21 && cosignedBy(signed, w) == 1, ""
	})

	// The witnessed checkpoint survives a restart of the log.
	l.Close()
	w.down.Store(true)
	l, err = Open(dir, Options{Signer: s, MinFreeBytes: -1, Witnessing: WitnessConfig{Witnesses: []Witness{w}, Retry: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if cp, signed := l.Checkpoint(); cp.N != 21 || cosignedBy(signed, w) != 1 {
		t.Fatalf("after restart: size %d, %s", cp.N, signed)
	}
}

// TestWitnessingNeverBlocksIngestion: with every witness hanging, appends
// still complete, and at most one request per witness is in flight.
func TestWitnessingNeverBlocksIngestion(t *testing.T) {
	s, v := testSigner(t)
	w := newTestWitness(t, "slow.example", v)
	w.block = make(chan struct{})
	l, err := Open(t.TempDir(), Options{Signer: s, MinFreeBytes: -1, Witnessing: WitnessConfig{Witnesses: []Witness{w}, Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	appendN(t, l, "e", 200)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("appends took %v with a hanging witness", d)
	}
	if st := l.WitnessStats(); st.Published != 200 || st.Witnessed != -1 {
		t.Fatalf("stats %+v", st)
	}
	close(w.block)
	tlogtest.Eventually(t, 10*time.Second, "catch up", func() (bool, string) { cp, _ := l.Checkpoint(); return cp.N == 200, "" })
	if m := w.maxIn.Load(); m != 1 {
		t.Fatalf("%d requests in flight at once to one witness", m)
	}
	if c := w.calls.Load(); c > 10 {
		t.Fatalf("%d calls: rounds did not skip to the newest checkpoint", c)
	}
	l.Close()
}

// TestWitnessingSlowWitnessDoesNotDelayQuorum: with quorum 2 of 3 and one
// witness hanging, the served checkpoint follows the two others.
func TestWitnessingSlowWitnessDoesNotDelayQuorum(t *testing.T) {
	s, v := testSigner(t)
	w0, w1, slow := newTestWitness(t, "w0.example", v), newTestWitness(t, "w1.example", v), newTestWitness(t, "slow.example", v)
	slow.block = make(chan struct{})
	l, err := Open(t.TempDir(), Options{Signer: s, MinFreeBytes: -1, Witnessing: WitnessConfig{
		Witnesses: []Witness{w0, slow, w1}, Quorum: 2, Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	defer close(slow.block)
	appendN(t, l, "e", 30)
	start := time.Now()
	tlogtest.Eventually(t, 10*time.Second, "a witnessed checkpoint", func() (bool, string) {
		cp, signed := l.Checkpoint()
		return cp.N > 0 && cosignedBy(signed, w0, w1) == 2, ""
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("quorum waited %v for the hanging witness", d)
	}
}

// TestWaitSizeWaitsForWitnesses: with witnessing, WaitSize (behind POST
// ?wait=checkpoint and receipts) returns the served, cosigned checkpoint,
// not merely the log-signed one.
func TestWaitSizeWaitsForWitnesses(t *testing.T) {
	s, v := testSigner(t)
	w0 := newTestWitness(t, "w0.example", v)
	l, err := Open(t.TempDir(), Options{Signer: s, MinFreeBytes: -1, Logger: quietLogger(), Witnessing: WitnessConfig{
		Witnesses: []Witness{w0}, Quorum: 1, Retry: 10 * time.Millisecond,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		idx, err := l.Append(ctx, []byte(fmt.Sprintf("e%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		cp, signed, err := l.WaitSize(ctx, idx+1)
		if err != nil {
			t.Fatal(err)
		}
		if cp.N < idx+1 || cosignedBy(signed, w0) != 1 {
			t.Fatalf("WaitSize(%d) returned size %d with %d cosignatures", idx+1, cp.N, cosignedBy(signed, w0))
		}
	}
}
