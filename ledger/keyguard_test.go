package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// guardOpts returns Options with a key guard whose mark is hwm.
func guardOpts(s note.Signer, hwm string, init bool) Options {
	return Options{Signer: s, MinFreeBytes: -1, KeyGuard: &KeyGuard{File: hwm, Init: init}}
}

func appendN(t *testing.T, l *Log, tag string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), []byte(fmt.Sprintf("%s %d", tag, i))); err != nil {
			t.Fatal(err)
		}
	}
}

func readMark(t *testing.T, file string) *highWater {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseHighWater(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestKeyGuardRefusesLostStore is issue 8 item 1: a key that signed a log
// of size 3 never signs a fresh store, with or without Init; the real store
// still opens.
func TestKeyGuardRefusesLostStore(t *testing.T) {
	s, _ := testSigner(t)
	hwm := filepath.Join(t.TempDir(), "log.key.hwm")
	dir := t.TempDir()
	l, err := Open(dir, guardOpts(s, hwm, true))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "a", 3)
	cp, _ := l.Checkpoint()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(hwm); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mark: %v, mode %v; want 0600", err, st.Mode())
	}
	if h := readMark(t, hwm); h.tree != cp.Tree {
		t.Fatalf("mark records %v at Close, want %v", h.tree, cp.Tree)
	}
	for _, init := range []bool{false, true} {
		_, err := Open(t.TempDir(), guardOpts(s, hwm, init))
		if !errors.Is(err, ErrKeyGuard) || !strings.Contains(err.Error(), "size 3") {
			t.Fatalf("fresh store with init=%v: %v, want ErrKeyGuard naming size 3", init, err)
		}
	}
	l, err = Open(dir, guardOpts(s, hwm, false))
	if err != nil {
		t.Fatalf("the real store: %v", err)
	}
	appendN(t, l, "b", 1)
	l.Close()
	// Init on an existing store is refused (a unit file must not keep it).
	if _, err := Open(dir, guardOpts(s, hwm, true)); !errors.Is(err, ErrKeyGuard) || !strings.Contains(err.Error(), "without --init") {
		t.Fatalf("Init on an existing store: %v", err)
	}
}

// TestKeyGuardNeedsInit: a missing store with a key that has no mark needs
// Init; with it the log starts, and a mark at size 0 lets Init start again.
func TestKeyGuardNeedsInit(t *testing.T) {
	s, _ := testSigner(t)
	hwm := filepath.Join(t.TempDir(), "k.hwm")
	if _, err := Open(t.TempDir(), guardOpts(s, hwm, false)); !errors.Is(err, ErrKeyGuard) || !strings.Contains(err.Error(), "--init") {
		t.Fatalf("no store, no Init: %v", err)
	}
	l, err := Open(t.TempDir(), guardOpts(s, hwm, true))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err = Open(t.TempDir(), guardOpts(s, hwm, true))
	if err != nil {
		t.Fatalf("Init with a mark at size 0: %v", err)
	}
	l.Close()
}

// TestKeyGuardRefusesOlderStore: a store restored from a backup older than
// what the key signed is refused; the newest store opens.
func TestKeyGuardRefusesOlderStore(t *testing.T) {
	pebbleOnly(t, "restores a copy of the pebble directory")
	s, _ := testSigner(t)
	hwm := filepath.Join(t.TempDir(), "k.hwm")
	dir := filepath.Join(t.TempDir(), "store")
	l, err := Open(dir, guardOpts(s, hwm, true))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "a", 3)
	l.Close()
	backup := filepath.Join(t.TempDir(), "backup")
	if err := os.CopyFS(backup, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, guardOpts(s, hwm, false))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "b", 3)
	l.Close()
	_, err = Open(backup, guardOpts(s, hwm, false))
	if !errors.Is(err, ErrKeyGuard) || !strings.Contains(err.Error(), "older than what was published") {
		t.Fatalf("older backup: %v", err)
	}
	if l, err = Open(dir, guardOpts(s, hwm, false)); err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestKeyGuardRefusesOtherHistory: a mark naming this store but another
// root at its size (the store was rewritten) is refused, and so is a store
// with another store ID.
func TestKeyGuardRefusesOtherHistory(t *testing.T) {
	s, _ := testSigner(t)
	hwm := filepath.Join(t.TempDir(), "k.hwm")
	dir := t.TempDir()
	l, err := Open(dir, guardOpts(s, hwm, true))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "a", 3)
	l.Close()
	h := readMark(t, hwm)
	forged := *h
	forged.tree.Hash = tlog.RecordHash([]byte("another history"))
	if err := os.WriteFile(hwm, forged.marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, guardOpts(s, hwm, false)); !errors.Is(err, ErrKeyGuard) || !strings.Contains(err.Error(), "another history") {
		t.Fatalf("other root at the mark's size: %v", err)
	}
	other := *h
	other.storeID = newStoreID()
	if err := os.WriteFile(hwm, other.marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, guardOpts(s, hwm, false)); !errors.Is(err, ErrKeyGuard) || !strings.Contains(err.Error(), "this is store") {
		t.Fatalf("another store ID: %v", err)
	}
	if err := os.WriteFile(hwm, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, guardOpts(s, hwm, false)); !errors.Is(err, ErrKeyGuard) {
		t.Fatalf("unreadable mark: %v", err)
	}
}

// TestStoreRemembersKey: a store opened with another key of the same name
// is refused.
func TestStoreRemembersKey(t *testing.T) {
	s1, _ := testSigner(t)
	s2, _ := testSigner(t)
	dir := t.TempDir()
	l, err := Open(dir, Options{Signer: s1, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := Open(dir, Options{Signer: s2, MinFreeBytes: -1}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another key: %v, want ErrWrongKey", err)
	}
	if l, err = Open(dir, Options{Signer: s1, MinFreeBytes: -1}); err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// countingFS is an in-memory guardFS counting writes.
type countingFS struct {
	mu     sync.Mutex
	files  map[string][]byte
	writes int
	fail   bool
}

func (f *countingFS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.files[name]
	if !ok {
		return nil, os.ErrNotExist
	}
	return b, nil
}

func (f *countingFS) WriteFileAtomic(name string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("injected write failure")
	}
	f.files[name] = append([]byte(nil), data...)
	f.writes++
	return nil
}

// TestKeyGuardCoalesces: the mark is not written per commit, but follows
// the published tree within an interval, and exactly at Close.
func TestKeyGuardCoalesces(t *testing.T) {
	s, _ := testSigner(t)
	fsys := &countingFS{files: map[string][]byte{}}
	opts := Options{Signer: s, MinFreeBytes: -1, KeyGuard: &KeyGuard{File: "k.hwm", Init: true, Interval: 50 * time.Millisecond, fs: fsys}}
	l, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "a", 300) // 300 sequential commits
	cp, _ := l.Checkpoint()
	waitUntil(t, "the mark to catch up while running", func() bool {
		b, _ := fsys.ReadFile("k.hwm")
		h, err := parseHighWater(b)
		return err == nil && h.tree == cp.Tree
	})
	fsys.mu.Lock()
	writes := fsys.writes
	fsys.mu.Unlock()
	if writes > 100 {
		t.Errorf("%d mark writes for 300 commits: not coalesced", writes)
	}
	appendN(t, l, "b", 1)
	cp, _ = l.Checkpoint()
	l.Close()
	b, _ := fsys.ReadFile("k.hwm")
	if h, err := parseHighWater(b); err != nil || h.tree != cp.Tree {
		t.Fatalf("mark after Close: %v, %v; want %v", h, err, cp.Tree)
	}
	// A mark that cannot be written at Open refuses to start.
	fsys.fail = true
	opts.KeyGuard.Init = false
	if _, err := Open(t.TempDir(), opts); err == nil {
		t.Fatal("opened although the mark cannot be written")
	}
}

// monitoredWitness is a testWitness with a monitoring endpoint: it returns
// the last checkpoint it cosigned.
type monitoredWitness struct {
	*testWitness
	mu     sync.Mutex
	latest []byte
}

func (m *monitoredWitness) AddCheckpoint(ctx context.Context, old int64, proof tlog.TreeProof, checkpoint []byte) ([]byte, error) {
	resp, err := m.testWitness.AddCheckpoint(ctx, old, proof, checkpoint)
	if err == nil {
		m.mu.Lock()
		m.latest = append(append([]byte(nil), checkpoint...), resp...)
		m.mu.Unlock()
	}
	return resp, err
}

func (m *monitoredWitness) LatestCheckpoint(ctx context.Context, origin string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest, nil
}

// TestOpenAsksWitnesses: a witness that cosigned a larger tree than the
// store holds, or another root at a size it holds, stops Open, even without
// a high-water mark.
func TestOpenAsksWitnesses(t *testing.T) {
	s, v := testSigner(t)
	w := &monitoredWitness{testWitness: newTestWitness(t, "w.example", v)}
	wcfg := WitnessConfig{Witnesses: []Witness{w}, Retry: 10 * time.Millisecond}
	l, err := Open(t.TempDir(), Options{Signer: s, MinFreeBytes: -1, Witnessing: wcfg})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "a", 5)
	waitUntil(t, "size 5 witnessed", func() bool { cp, _ := l.Checkpoint(); return cp.N == 5 })
	l.Close()

	// The store is lost: a new one is behind the witness.
	_, err = Open(t.TempDir(), Options{Signer: s, MinFreeBytes: -1, Witnessing: wcfg})
	if !errors.Is(err, ErrKeyGuard) || !errors.Is(err, ErrWitnessAhead) {
		t.Fatalf("empty store behind the witness: %v", err)
	}
	// Another history of the same size.
	wcfg2 := WitnessConfig{Witnesses: []Witness{newTestWitness(t, "w2.example", v)}, Retry: 10 * time.Millisecond}
	dir := t.TempDir()
	l, err = Open(dir, Options{Signer: s, MinFreeBytes: -1, Witnessing: wcfg2})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "b", 5)
	l.Close()
	_, err = Open(dir, Options{Signer: s, MinFreeBytes: -1, Witnessing: wcfg})
	if !errors.Is(err, ErrKeyGuard) || !strings.Contains(err.Error(), "another history") {
		t.Fatalf("another root at size 5: %v", err)
	}
	// A witness answer not signed by this log proves nothing: ignored.
	w.mu.Lock()
	w.latest = []byte("forged\n")
	w.mu.Unlock()
	l, err = Open(dir, Options{Signer: s, MinFreeBytes: -1, Witnessing: WitnessConfig{Witnesses: []Witness{w}, Quorum: 1}})
	if err != nil {
		t.Fatalf("unverifiable witness answer: %v", err)
	}
	l.Close()
}
