package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/ledger/kv"
	itlog "indelible.dev/tlog"
)

// smugglingWitness cosigns honestly, then rewrites its reply.
type smugglingWitness struct {
	*testWitness
	reply func(checkpoint, resp []byte) []byte
}

func (w *smugglingWitness) AddCheckpoint(ctx context.Context, old int64, proof tlog.TreeProof, checkpoint []byte) ([]byte, error) {
	resp, err := w.testWitness.AddCheckpoint(ctx, old, proof, checkpoint)
	if err != nil {
		return nil, err
	}
	return w.reply(checkpoint, resp), nil
}

// TestWitnessReplyMustBeSignatureLines is issue 8 item 3: a reply that
// carries a valid cosignature but also a blank line (which turns the
// served note into another text) or extra text is refused; the checkpoint
// served stays one every client can verify.
func TestWitnessReplyMustBeSignatureLines(t *testing.T) {
	s, v := testSigner(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	for name, reply := range map[string]func(tw *testWitness, checkpoint, resp []byte) []byte{
		// The witness signs the whole signed note as if it were the text:
		// "<checkpoint>\n\n— log sig\n\n— witness sig over all that\n"
		// verifies with note.Open, but its text is no checkpoint.
		"blank line": func(tw *testWitness, checkpoint, _ []byte) []byte {
			// The witness's own key signs what its Cosigner would refuse.
			ts := uint64(time.Now().Unix())
			sig := binary.BigEndian.AppendUint32(nil, tw.cosigner.KeyHash())
			sig = binary.BigEndian.AppendUint64(sig, ts)
			sig = append(sig, ed25519.Sign(priv, itlog.CosignatureMessage(string(checkpoint), ts))...)
			return fmt.Appendf(nil, "\n— %s %s\n", tw.cosigner.Name(), base64.StdEncoding.EncodeToString(sig))
		},
		"extra text":    func(_ *testWitness, _, resp []byte) []byte { return append([]byte("hello\n"), resp...) },
		"trailing text": func(_ *testWitness, _, resp []byte) []byte { return append(bytes.Clone(resp), "x"...) },
		"no newline":    func(_ *testWitness, _, resp []byte) []byte { return resp[:len(resp)-1] },
	} {
		t.Run(name, func(t *testing.T) {
			c, err := itlog.NewCosigner("w.example", priv, nil)
			if err != nil {
				t.Fatal(err)
			}
			tw := &testWitness{cosigner: c, logV: v, tree: tlog.Tree{Hash: itlog.EmptyRoot}}
			w := &smugglingWitness{testWitness: tw, reply: func(c, r []byte) []byte { return reply(tw, c, r) }}
			l, err := Open(t.TempDir(), Options{Signer: s, MinFreeBytes: -1, Logger: quietLogger(), Witnessing: WitnessConfig{
				Witnesses: []Witness{w}, Quorum: 1, Retry: 10 * time.Millisecond,
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			appendN(t, l, "e", 3)
			waitUntil(t, "a failed witness request", func() bool {
				st := l.WitnessStats()
				return st.Witnesses[0].Failures > 0
			})
			if cp, signed := l.Checkpoint(); signed != nil {
				t.Fatalf("served a checkpoint of size %d from a malformed reply:\n%s", cp.N, signed)
			}
		})
	}
}

// openWitnessedBy opens a log in a temporary directory, witnessed by w
// alone and retrying every 10ms, and closes it when the test ends.
func openWitnessedBy(t *testing.T, s note.Signer, w Witness) *Log {
	t.Helper()
	l, err := Open(t.TempDir(), Options{Signer: s, MinFreeBytes: -1, Logger: quietLogger(), Witnessing: WitnessConfig{
		Witnesses: []Witness{w}, Retry: 10 * time.Millisecond,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestNoUnwitnessedCheckpoint: with witnessing configured, Checkpoint never
// returns a checkpoint that did not meet the quorum (nil until one does).
func TestNoUnwitnessedCheckpoint(t *testing.T) {
	s, v := testSigner(t)
	w := newTestWitness(t, "w.example", v)
	w.down.Store(true)
	l := openWitnessedBy(t, s, w)
	appendN(t, l, "e", 3)
	if cp, signed := l.Checkpoint(); signed != nil || cp.N != 0 {
		t.Fatalf("Checkpoint served size %d before any quorum", cp.N)
	}
	if cp, _ := l.Published(); cp.N != 3 {
		t.Fatalf("Published: size %d, want 3", cp.N)
	}
	w.down.Store(false)
	waitUntil(t, "a witnessed checkpoint", func() bool { cp, signed := l.Checkpoint(); return cp.N == 3 && cosignedBy(signed, w) == 1 })
}

// TestWitnessAheadAlarm: a 409 from a witness knowing a tree larger than the
// log has signed raises the alarm (error, counter, readiness).
func TestWitnessAheadAlarm(t *testing.T) {
	s, v := testSigner(t)
	w := newTestWitness(t, "w.example", v)
	w.tree = tlog.Tree{N: 100, Hash: tlog.RecordHash([]byte("elsewhere"))}
	l := openWitnessedBy(t, s, w)
	appendN(t, l, "e", 3)
	waitUntil(t, "the alarm", func() bool { return l.WitnessAlarm() != nil })
	if err := l.WitnessAlarm(); !errors.Is(err, ErrWitnessAhead) {
		t.Fatalf("WitnessAlarm: %v", err)
	}
	if st := l.WitnessStats(); st.Alarms == 0 {
		t.Fatal("no alarm counted")
	}
}

// TestNothingPublishedAfterFailedCommit is issue 8 item 5: when a commit's
// fsync fails while the next batch is already built (and its own fsync
// succeeds), neither is published or acknowledged.
func TestNothingPublishedAfterFailedCommit(t *testing.T) {
	s, _ := testSigner(t)
	var calls atomic.Int32
	var l *Log
	opts := Options{Signer: s, MinFreeBytes: -1, Logger: quietLogger()}
	opts.syncWait = func(c *commit) error {
		err := c.batch.Wait()
		if calls.Add(1) != 2 { // the first commit of the test is the second overall
			return err
		}
		// Hold this commit until the next batch is built and applied.
		deadline := time.Now().Add(10 * time.Second)
		for len(l.inflight) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		return errors.New("injected fsync failure")
	}
	var err error
	l, err = Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if _, err := l.Append(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(1)
	go func() { defer wg.Done(); _, errs[0] = l.Append(ctx, []byte("fails")) }()
	for calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _, errs[1] = l.Append(ctx, []byte("after")) }()
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrFailed) {
			t.Errorf("append %d: %v, want ErrFailed", i, err)
		}
	}
	if cp, _ := l.Checkpoint(); cp.N != 1 {
		t.Fatalf("published size %d after the failed commit, want 1", cp.N)
	}
	if _, err := l.Append(ctx, []byte("later")); !errors.Is(err, ErrFailed) || Retryable(err) {
		t.Fatalf("append after failure: %v", err)
	}
}

// TestIndexRetriesFailedBatch is issue 8 item 5: an index batch that fails
// is retried; the watermark never passes it, and lookups by hash find the
// entries of the failed batch.
func TestIndexRetriesFailedBatch(t *testing.T) {
	s, _ := testSigner(t)
	var fails atomic.Int32
	fails.Store(3)
	opts := Options{Signer: s, MinFreeBytes: -1, Logger: quietLogger()}
	opts.indexCommit = func(b kv.Batch) error {
		if fails.Add(-1) >= 0 {
			return errors.New("injected index failure")
		}
		return b.Commit(false)
	}
	l, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, "e", 20)
	for i := 0; i < 20; i++ {
		idx, _, err := l.InclusionProofByHash(tlog.RecordHash([]byte(fmt.Sprintf("e %d", i))), 20)
		if err != nil || idx != int64(i) {
			t.Fatalf("entry %d by hash: index %d, %v", i, idx, err)
		}
	}
}

// TestQueueBoundedInBytes is issue 8 item 4: the queue pushes back on bytes
// as well as entries, and one call may not exceed a batch's bytes.
func TestQueueBoundedInBytes(t *testing.T) {
	s, _ := testSigner(t)
	release := make(chan struct{})
	opts := Options{Signer: s, MinFreeBytes: -1, Logger: quietLogger(), QueueBytes: 4000, MaxBatchBytes: 2000}
	opts.syncWait = func(c *commit) error {
		<-release
		return c.batch.Wait()
	}
	l, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.AppendEntries(ctx, []Entry{{Data: make([]byte, 1500)}, {Data: make([]byte, 600)}}); err == nil || errors.Is(err, ErrPushback) {
		t.Fatalf("2100 bytes in one call with MaxBatchBytes 2000: %v", err)
	}
	// The pipeline is held: two batches in flight, then the queue fills.
	var wg sync.WaitGroup
	var pushed atomic.Int32
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Append(ctx, make([]byte, 1000)); errors.Is(err, ErrPushback) {
				pushed.Add(1)
				if !Retryable(err) {
					t.Error("ErrPushback not retryable")
				}
			}
		}()
	}
	waitUntil(t, "pushback on bytes", func() bool { return pushed.Load() > 0 })
	l.qmu.Lock()
	queuedBytes := l.queuedBytes
	l.qmu.Unlock()
	if queuedBytes > 4000 {
		t.Errorf("%d bytes queued, bound 4000", queuedBytes)
	}
	close(release)
	wg.Wait()
	l.Close()
}

// TestScanExt checks ScanExt forward and in reverse, its bounds, and an
// early stop.
func TestScanExt(t *testing.T) {
	l, _ := openTempLog(t)
	keys := []string{"a", "b/1", "b/2", "b/3", "c"}
	var batch []Entry
	for _, k := range keys {
		batch = append(batch, Entry{Data: []byte("entry " + k)})
	}
	if _, err := l.AppendBatch(context.Background(), batch, func(_ []int64, w Writer) error {
		for _, k := range keys {
			if err := w.Set([]byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	}, 0); err != nil {
		t.Fatal(err)
	}
	scan := func(lo, hi []byte, reverse bool, limit int) []string {
		t.Helper()
		var got []string
		err := l.ScanExt(lo, hi, reverse, func(k, v []byte) bool {
			if string(v) != "v"+string(k) {
				t.Errorf("value of %q is %q", k, v)
			}
			got = append(got, string(k))
			return len(got) < limit
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, tc := range []struct {
		lo, hi  []byte
		reverse bool
		limit   int
		want    string
	}{
		{nil, nil, false, 99, "a b/1 b/2 b/3 c"},
		{nil, nil, true, 99, "c b/3 b/2 b/1 a"},
		{[]byte("b/"), []byte("b0"), false, 99, "b/1 b/2 b/3"},
		{[]byte("b/"), []byte("b0"), true, 99, "b/3 b/2 b/1"},
		{[]byte("b/2"), []byte("c"), false, 99, "b/2 b/3"}, // lo inclusive, hi exclusive
		{[]byte("b/2"), nil, true, 99, "c b/3 b/2"},
		{nil, nil, false, 2, "a b/1"}, // early stop
		{nil, nil, true, 1, "c"},
		{[]byte("d"), nil, false, 99, ""},
	} {
		got := fmt.Sprint(scan(tc.lo, tc.hi, tc.reverse, tc.limit))
		if want := fmt.Sprint(bytesFields(tc.want)); got != want {
			t.Errorf("ScanExt(%q, %q, reverse=%v, stop after %d) = %s, want %s", tc.lo, tc.hi, tc.reverse, tc.limit, got, want)
		}
	}
	// Log keys outside the extension namespace are never visible.
	if got := scan(nil, nil, false, 99); len(got) != len(keys) {
		t.Errorf("ScanExt saw %d keys, want %d", len(got), len(keys))
	}
}

func bytesFields(s string) []string {
	var out []string
	for _, f := range bytes.Fields([]byte(s)) {
		out = append(out, string(f))
	}
	return out
}

// TestRetryable: fatal errors are not retryable, passing ones are, wrapped
// or not.
func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{ErrPushback, true},
		{ErrDiskFull, true},
		{ErrClosed, true},
		{fmt.Errorf("x: %w", ErrNotWitnessed), true},
		{ErrFailed, false},
		{fmt.Errorf("%w: %w", ErrFailed, errors.New("fsync: EIO")), false},
		{fmt.Errorf("%w: %w", ErrCorrupt, ErrNotFound), false},
		{ErrNotFound, false},
		{errors.New("other"), false},
	} {
		if got := Retryable(tc.err); got != tc.want {
			t.Errorf("Retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	// Causes are kept when wrapping.
	cause := errors.New("fsync: EIO")
	if err := fmt.Errorf("%w: %w", ErrFailed, cause); !errors.Is(err, cause) {
		t.Error("cause lost")
	}
}
