package witness

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

const (
	testLogVKey = tlogtest.TesseraVKey
	testOrigin  = tlogtest.TesseraOrigin
)

// addCheckpointBody returns an add-checkpoint body from old to n over m,
// with a correct proof and the checkpoint signed by the test log key.
func addCheckpointBody(t testing.TB, m *tlogtest.Tree, old, n int64) string {
	return m.AddCheckpointBody(old, n, m.Checkpoint(testOrigin, n, tlogtest.TesseraKey(t).Signer))
}

func openTestWitness(t testing.TB, dir string, key ed25519.PrivateKey) *Witness {
	t.Helper()
	cs, err := itlog.NewCosigner("witness.example/race", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := note.NewVerifier(testLogVKey)
	w, err := Open(dir, Options{Cosigner: cs, Logs: []Log{{Origin: testOrigin, Verifiers: []note.Verifier{v}}}, GossipInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestConcurrentAddCheckpoint fires many concurrent add-checkpoint requests
// for one origin with interleaved sizes (and checkpoints of a second,
// conflicting tree). The accepted requests must form one chain (each old
// size is the previous accepted size), the stored size never goes below a
// cosigned size, no size is cosigned with two roots, and the state survives
// a restart.
func TestConcurrentAddCheckpoint(t *testing.T) {
	const n = 64
	main := tlogtest.NewTreeN(n, "main %d")
	evil := tlogtest.NewTreeN(n, "evil %d")
	_, key, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	w := openTestWitness(t, dir, key)
	ctx := context.Background()
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, 0, 1))); err != nil {
		t.Fatal(err)
	}

	type accepted struct {
		old, n int64
		root   tlog.Hash
	}
	var mu sync.Mutex
	var got []accepted
	var maxCosigned int64 = 1
	stop := make(chan struct{})
	monitorErr := make(chan error, 1)
	go func() { // the stored size never moves backwards nor below a cosigned size
		last := int64(0)
		for {
			select {
			case <-stop:
				monitorErr <- nil
				return
			default:
			}
			mu.Lock()
			floor := maxCosigned
			mu.Unlock()
			b, err := w.Checkpoint(testOrigin)
			if err != nil {
				monitorErr <- err
				return
			}
			cp, _ := itlog.ParseCheckpoint(string(mustText(b)))
			if cp.N < last || cp.N < floor {
				monitorErr <- fmt.Errorf("stored size %d after %d (cosigned up to %d)", cp.N, last, floor)
				return
			}
			last = cp.N
		}
	}()

	var wg sync.WaitGroup
	for g := 0; g < 12; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			known := int64(1)
			for i := 0; i < 40; i++ {
				newN := int64(1 + r.IntN(n))
				old := int64(r.IntN(int(newN) + 1))
				if r.IntN(4) != 0 {
					// Like a log: from the size the witness told us, to a
					// size a little ahead (many goroutines race on it).
					old = known
					newN = min(int64(n), known+int64(r.IntN(3)))
				}
				if old == 0 {
					old = 1
				}
				tree := main
				if r.IntN(4) == 0 && newN > old {
					// A conflicting tree: its proofs never verify against
					// the main tree's roots. (At the stored size itself it
					// would be fork evidence, tested elsewhere.)
					tree = evil
				}
				if old > newN {
					continue
				}
				body := addCheckpointBody(t, tree, old, newN)
				_, err := w.AddCheckpoint(ctx, []byte(body))
				var ce *ConflictError
				switch {
				case err == nil:
					mu.Lock()
					got = append(got, accepted{old, newN, tree.Root(newN)})
					if newN > maxCosigned {
						maxCosigned = newN
					}
					mu.Unlock()
				case errors.As(err, &ce):
					known = ce.Known
				case errors.Is(err, ErrInconsistent):
				default:
					t.Errorf("unexpected error: %v", err)
					return
				}
			}
		}(uint64(g))
	}
	wg.Wait()
	close(stop)
	if err := <-monitorErr; err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("nothing accepted")
	}
	roots := map[int64]tlog.Hash{1: main.Root(1)}
	for _, a := range got {
		if r, ok := roots[a.n]; ok && r != a.root {
			t.Fatalf("size %d cosigned with two roots", a.n)
		}
		roots[a.n] = a.root
		if a.root != main.Root(a.n) {
			t.Fatalf("cosigned a root of the conflicting tree at size %d", a.n)
		}
	}
	// The accepted requests form one chain from size 1.
	byOld := map[int64][]accepted{}
	for _, a := range got {
		byOld[a.old] = append(byOld[a.old], a)
	}
	cur, steps := int64(1), 0
	for steps < len(got) {
		next := byOld[cur]
		if len(next) == 0 {
			t.Fatalf("chain breaks at %d after %d of %d accepted requests", cur, steps, len(got))
		}
		// Same-size resubmissions keep cur; take them first. Two requests
		// moving on from one size would leave one behind and break the chain.
		k := 0
		for j, a := range next {
			if a.n == cur {
				k = j
			}
		}
		a := next[k]
		byOld[cur] = append(next[:k:k], next[k+1:]...)
		cur = a.n
		steps++
	}
	final := cur
	t.Logf("%d requests accepted, final size %d", len(got), final)
	if forks, _ := w.Forks(); len(forks) != 0 {
		t.Fatalf("fork evidence recorded: %+v", forks)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: the state is the final one.
	w = openTestWitness(t, dir, key)
	defer w.Close()
	b, err := w.Checkpoint(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := itlog.ParseCheckpoint(string(mustText(b)))
	if cp.N != final || cp.N != maxCosigned || cp.Hash != main.Root(final) {
		t.Fatalf("after restart: size %d, want %d (max cosigned %d)", cp.N, final, maxCosigned)
	}
	_, err = w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, 1, n)))
	var ce *ConflictError
	if final != 1 && (!errors.As(err, &ce) || ce.Known != final) {
		t.Fatalf("stale request after restart: %v", err)
	}
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, final, n))); err != nil {
		t.Fatalf("continuing after restart: %v", err)
	}
}

func TestParseAddCheckpointLimits(t *testing.T) {
	if _, err := parseAddCheckpoint(make([]byte, MaxBodySize+1)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized body: %v", err)
	}
	r, err := parseAddCheckpoint([]byte("old 0\n\nx"))
	if err != nil || r.old != 0 || len(r.proof) != 0 || string(r.note) != "x" {
		t.Fatalf("minimal body: %+v %v", r, err)
	}
}

func FuzzParseAddCheckpoint(f *testing.F) {
	f.Add([]byte("old 14\nGiUtVP0XhIaZ/fl7ReMLgw+9YUtjFAt8kaTdfOe2u/I=\n\nexample.com/log/testdata\n15\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=\n\n— x y\n"))
	f.Add([]byte("old 0\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseAddCheckpoint(b)
		if err != nil {
			return
		}
		if len(r.proof) > MaxProofLines || r.old < 0 || len(r.note) == 0 {
			t.Fatalf("accepted invalid request %+v", r)
		}
	})
}

// TestCrashAfterCosign clones a crashable filesystem (only synced data
// survives) after every answer: whenever a cosignature was returned, the
// crashed store holds that checkpoint; a rejected request leaves the
// previous state.
func TestCrashAfterCosign(t *testing.T) {
	m := tlogtest.NewTreeN(40, "crash %d")
	_, key, _ := ed25519.GenerateKey(nil)
	cs, _ := itlog.NewCosigner("witness.example/crash", key, nil)
	v, _ := note.NewVerifier(testLogVKey)
	fs := vfs.NewCrashableMem()
	open := func(fs vfs.FS) *Witness {
		w, err := Open("store", Options{Cosigner: cs, Logs: []Log{{Origin: testOrigin, Verifiers: []note.Verifier{v}}}, GossipInterval: -1, FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := open(fs)
	defer w.Close()
	ctx := context.Background()
	cur := int64(0)
	for step, next := range []int64{1, 3, 3, 7, 2, 20, 40} {
		old := cur
		if next < cur {
			old = next // a stale request: rejected
		}
		_, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, m, old, next)))
		if err == nil {
			cur = next
		}
		crashed := open(fs.CrashClone(vfs.CrashCloneCfg{}))
		b, err2 := crashed.Checkpoint(testOrigin)
		crashed.Close()
		if err2 != nil {
			t.Fatalf("step %d: crashed store: %v", step, err2)
		}
		cp, _ := itlog.ParseCheckpoint(string(mustText(b)))
		if cp.N != cur || cp.Hash != m.Root(cur) {
			t.Fatalf("step %d (add %d, err %v): crashed store at size %d, want %d", step, next, err, cp.N, cur)
		}
	}
}

// TestNonCanonicalSignatureRejected: note.Open decodes signatures leniently,
// so a log signature whose last base64 character differs only in unused low
// bits would still verify. The witness must refuse it (one signed checkpoint
// has exactly one byte form) and not move its state.
func TestNonCanonicalSignatureRejected(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	w := openTestWitness(t, t.TempDir(), key)
	defer w.Close()
	m := tlogtest.NewTreeN(4, "entry %d")
	body := addCheckpointBody(t, m, 0, 4)
	// The signature line ends "...X=\n" where X carries 2 unused bits: flip one.
	i := strings.LastIndex(body, "=\n") - 1
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	pos := strings.IndexByte(alphabet, body[i])
	mutated := body[:i] + string(alphabet[pos^1]) + body[i+1:]
	if _, err := w.AddCheckpoint(t.Context(), []byte(mutated)); err == nil {
		t.Fatal("checkpoint with a non-canonical signature was cosigned")
	}
	if cp, err := w.Checkpoint(testOrigin); err == nil {
		t.Fatalf("state moved after a rejected request: %q", cp)
	}
	if _, err := w.AddCheckpoint(t.Context(), []byte(body)); err != nil {
		t.Fatalf("canonical checkpoint rejected: %v", err)
	}
}
