package ledger

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	itlog "indelible.dev/tlog"
)

// gate is a ReleaseGate that records what it is told and releases only
// when the test says so.
type gate struct {
	mu       sync.Mutex
	events   []string
	openErr  error
	released []int64
}

func (g *gate) record(s string) { g.mu.Lock(); g.events = append(g.events, s); g.mu.Unlock() }
func (g *gate) Open(l *Log) error {
	g.record("open")
	return g.openErr
}
func (g *gate) Signed(cp itlog.Checkpoint) { g.record("signed") }
func (g *gate) Released(cp itlog.Checkpoint) {
	g.mu.Lock()
	g.released = append(g.released, cp.N)
	g.mu.Unlock()
}
func (g *gate) Close()        { g.record("close") }
func (g *gate) GatesRelease() {}

// TestReleaseGate: with a gate, a signed checkpoint is not served, waited
// for or handed to hooks as released until the gate releases it; Release
// refuses a checkpoint the log did not sign; the hooks open and close once.
func TestReleaseGate(t *testing.T) {
	s, _ := testSigner(t)
	g := &gate{}
	l, err := Open(t.TempDir(), Options{Signer: s, Logger: quietLogger(), Hooks: []PublishHook{g}, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if cp, note := l.Checkpoint(); note != nil || cp.N != 0 {
		t.Fatalf("Checkpoint before any release: %d %q", cp.N, note)
	}
	if _, err := l.Append(context.Background(), []byte("a")); err != nil {
		t.Fatal(err)
	}
	pub, signed := l.Published()
	if pub.N != 1 {
		t.Fatalf("published %d", pub.N)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, _, err = l.WaitSize(ctx, 1)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSize before the release: %v", err)
	}
	bad := pub
	bad.Hash[0] ^= 1
	if err := l.Release(bad, signed); err == nil {
		t.Fatal("released a root the log did not sign")
	}
	bad = pub
	bad.N = 2
	if err := l.Release(bad, signed); err == nil {
		t.Fatal("released a size beyond the published one")
	}
	if err := l.Release(pub, signed); err != nil {
		t.Fatal(err)
	}
	if cp, note := l.Checkpoint(); cp.N != 1 || string(note) != string(signed) {
		t.Fatalf("Checkpoint after the release: %d %q", cp.N, note)
	}
	if cp, _, err := l.WaitSize(context.Background(), 1); err != nil || cp.N != 1 {
		t.Fatalf("WaitSize after the release: %v %v", cp, err)
	}
	if err := l.Release(itlog.Checkpoint{Origin: pub.Origin, Tree: pub.Tree}, signed); err != nil {
		t.Fatalf("releasing again: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"signed", "open", "signed", "close"}; !slices.Equal(g.events, want) {
		t.Fatalf("hook calls %v, want %v", g.events, want)
	}
	if !slices.Equal(g.released, []int64{1}) {
		t.Fatalf("released %v, want [1]", g.released)
	}

	// A hook refusing at Open refuses the log; the hooks before it close.
	first2 := &openOnly{}
	_, err = Open(t.TempDir(), Options{Signer: s, Logger: quietLogger(), MinFreeBytes: -1,
		Hooks: []PublishHook{first2, &gate{openErr: ErrKeyGuard}}})
	if !errors.Is(err, ErrKeyGuard) || !first2.closed {
		t.Fatalf("Open with a refusing hook: %v (first hook closed: %v)", err, first2.closed)
	}
	if _, err := Open(t.TempDir(), Options{Signer: s, Logger: quietLogger(), MinFreeBytes: -1, Hooks: []PublishHook{&gate{}, &gate{}}}); err == nil {
		t.Fatal("two release gates accepted")
	}
}

// openOnly is a hook that is not a gate.
type openOnly struct{ closed bool }

func (h *openOnly) Open(*Log) error           { return nil }
func (h *openOnly) Signed(itlog.Checkpoint)   {}
func (h *openOnly) Released(itlog.Checkpoint) {}
func (h *openOnly) Close()                    { h.closed = true }

// TestHalt: a hook halting the log stops appends; reads go on.
func TestHalt(t *testing.T) {
	l, _ := openTempLog(t)
	if _, err := l.Append(context.Background(), []byte("a")); err != nil {
		t.Fatal(err)
	}
	l.Halt(errors.New("fork evidence"))
	if _, err := l.Append(context.Background(), []byte("b")); !errors.Is(err, ErrHalted) {
		t.Fatalf("append after Halt: %v", err)
	}
	if _, err := l.Entry(0); err != nil {
		t.Fatalf("read after Halt: %v", err)
	}
	if err := l.SetHookState("x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if v, err := l.HookState("x"); err != nil || string(v) != "1" {
		t.Fatalf("HookState: %q %v", v, err)
	}
	if _, err := l.HookState("y"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("HookState of nothing: %v", err)
	}
}
