package witness

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// hwmEnv is a witness data directory: a store and a high-water mark file
// beside it, opened with one key.
type hwmEnv struct {
	t     testing.TB
	dir   string
	key   ed25519.PrivateKey
	store string
	mark  string
}

func newHWMEnv(t testing.TB) *hwmEnv {
	_, key, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	return &hwmEnv{t: t, dir: dir, key: key, store: filepath.Join(dir, "store"), mark: filepath.Join(dir, "witness.hwm")}
}

func (e *hwmEnv) open(resume bool) (*Witness, error) {
	cs, err := itlog.NewCosigner("witness.example/hwm", e.key, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	v, _ := note.NewVerifier(testLogVKey)
	return Open(e.store, Options{Cosigner: cs, Logs: []Log{{Origin: testOrigin, Verifiers: []note.Verifier{v}}},
		GossipInterval: -1, HighWaterFile: e.mark, ResumeFromHighWater: resume})
}

func (e *hwmEnv) mustOpen(resume bool) *Witness {
	e.t.Helper()
	w, err := e.open(resume)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHighWaterWipedStore: a witness whose store is wiped (key and mark
// kept) refuses to start instead of taking the log as first seen; started
// with ResumeFromHighWater it continues from the marked tree and never
// cosigns another root for a size it cosigned.
func TestHighWaterWipedStore(t *testing.T) {
	ctx := context.Background()
	main := tlogtest.NewTreeN(8, "main %d")
	evil := tlogtest.NewTreeN(8, "evil %d")
	e := newHWMEnv(t)
	w := e.mustOpen(false)
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, 0, 3))); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if st, err := os.Stat(e.mark); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("high-water mark: %v %v", st, err)
	}

	if err := os.RemoveAll(e.store); err != nil {
		t.Fatal(err)
	}
	if _, err := e.open(false); !errors.Is(err, ErrBehindHighWater) || !strings.Contains(err.Error(), testOrigin) {
		t.Fatalf("open with a wiped store: %v, want ErrBehindHighWater naming the origin", err)
	}
	w = e.mustOpen(true)
	defer w.Close()
	var ce *ConflictError
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, evil, 0, 3))); !errors.As(err, &ce) || ce.Known != 3 {
		t.Fatalf("a second root for size 3 from old 0: %v, want a 409 with size 3", err)
	}
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, evil, 3, 3))); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("a second root for size 3: %v", err)
	}
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, evil, 3, 5))); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("the other history from size 3: %v", err)
	}
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, 3, 5))); err != nil {
		t.Fatalf("the cosigned history from size 3: %v", err)
	}
	w.Close()
	w = e.mustOpen(false) // the store has caught up: no flag needed
	w.Close()
}

// TestHighWaterRestoredBackup: a store restored from an older copy is
// behind the mark and refused; so is a mark of another key.
func TestHighWaterRestoredBackup(t *testing.T) {
	ctx := context.Background()
	main := tlogtest.NewTreeN(8, "main %d")
	e := newHWMEnv(t)
	w := e.mustOpen(false)
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, 0, 3))); err != nil {
		t.Fatal(err)
	}
	w.Close()
	backup := filepath.Join(t.TempDir(), "backup")
	copyDir(t, e.store, backup)
	w = e.mustOpen(false)
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, 3, 6))); err != nil {
		t.Fatal(err)
	}
	w.Close()
	os.RemoveAll(e.store)
	copyDir(t, backup, e.store)
	if _, err := e.open(false); !errors.Is(err, ErrBehindHighWater) {
		t.Fatalf("open with a restored older store: %v", err)
	}

	_, other, _ := ed25519.GenerateKey(nil)
	e2 := *e
	e2.key = other
	if _, err := e2.open(true); err == nil || !strings.Contains(err.Error(), "belongs to key") {
		t.Fatalf("a mark of another key: %v", err)
	}
}

// TestHighWaterCoversEveryCosignature: when the mark cannot be written, no
// cosignature is released; the store ahead of the mark is accepted at the
// next Open and the mark brought up to it.
func TestHighWaterCoversEveryCosignature(t *testing.T) {
	ctx := context.Background()
	main := tlogtest.NewTreeN(8, "main %d")
	e := newHWMEnv(t)
	e.mark = filepath.Join(e.dir, "marks", "witness.hwm")
	os.MkdirAll(filepath.Dir(e.mark), 0o700)
	w := e.mustOpen(false)
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, 0, 2))); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Dir(e.mark)) // the mark can no longer be written
	if cosig, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, 2, 4))); err == nil || cosig != nil {
		t.Fatalf("cosignature %q released without a high-water mark (err %v)", cosig, err)
	}
	// The same checkpoint again, now held: still not released.
	if cosig, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, 4, 4))); err == nil || cosig != nil {
		t.Fatalf("held cosignature %q released without a high-water mark (err %v)", cosig, err)
	}
	os.MkdirAll(filepath.Dir(e.mark), 0o700)
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, 4, 4))); err != nil {
		t.Fatal(err)
	}
	h, _, err := readHWM(e.mark)
	if err != nil || h.trees[testOrigin] != (tlog.Tree{N: 4, Hash: main.Root(4)}) {
		t.Fatalf("mark after the retry: %+v %v", h, err)
	}
	w.Close()

	// A crash between the store's commit and the mark's: the store is
	// ahead. Open accepts it and raises the mark.
	lagging := hwm{key: h.key, trees: map[string]tlog.Tree{testOrigin: {N: 2, Hash: main.Root(2)}}}
	if err := writeHWM(e.mark, lagging); err != nil {
		t.Fatal(err)
	}
	w = e.mustOpen(false)
	w.Close()
	if h, _, _ := readHWM(e.mark); h.trees[testOrigin].N != 4 {
		t.Fatalf("mark not raised to the store: %+v", h)
	}
}

// TestHeldCheckpointNotRewritten: asking the witness to cosign the
// checkpoint it already holds returns a valid cosignature without writing
// the store, the WAL or the mark.
func TestHeldCheckpointNotRewritten(t *testing.T) {
	ctx := context.Background()
	main := tlogtest.NewTreeN(4, "main %d")
	e := newHWMEnv(t)
	w := e.mustOpen(false)
	defer w.Close()
	if _, err := w.AddCheckpoint(ctx, []byte(addCheckpointBody(t, main, 0, 4))); err != nil {
		t.Fatal(err)
	}
	writes, marks := w.stats.stateWrites.Load(), w.stats.hwmWrites.Load()
	wal := w.db.Metrics().WAL.BytesWritten
	body := []byte(addCheckpointBody(t, main, 4, 4))
	for i := 0; i < 20; i++ {
		cosig, err := w.AddCheckpoint(ctx, body)
		if err != nil || !strings.HasPrefix(string(cosig), "— witness.example/hwm ") {
			t.Fatalf("held checkpoint: %q %v", cosig, err)
		}
	}
	if got := w.stats.stateWrites.Load(); got != writes {
		t.Fatalf("%d store writes for the held checkpoint, want 0", got-writes)
	}
	if got := w.stats.hwmWrites.Load(); got != marks {
		t.Fatalf("%d mark writes for the held checkpoint, want 0", got-marks)
	}
	if got := w.db.Metrics().WAL.BytesWritten; got != wal {
		t.Fatalf("WAL grew by %d bytes for the held checkpoint", got-wal)
	}
}

func TestHWMRoundTrip(t *testing.T) {
	h := hwm{key: "w.example+01020304+AAAA", trees: map[string]tlog.Tree{
		"a.example/log": {N: 0, Hash: itlog.EmptyRoot},
		"b.example/log": {N: 1 << 40, Hash: tlog.Hash{7}},
	}}
	got, err := parseHWM([]byte(h.String()))
	if err != nil || got.String() != h.String() {
		t.Fatalf("round trip: %v\n%s\n%s", err, got, h)
	}
	for _, bad := range []string{"", "x\n", hwmHeader + "\n", hwmHeader + "\nkey k\na 01 " + strings.Repeat("A", 43) + "=\n",
		hwmHeader + "\nkey k\na.example 1 x\n", hwmHeader + "\nkey k\na.example 1 " + strings.Repeat("A", 43) + "=",
		h.String() + strings.SplitAfter(h.String(), "\n")[2]} {
		if _, err := parseHWM([]byte(bad)); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}

func FuzzParseHWM(f *testing.F) {
	f.Add([]byte(hwmHeader + "\nkey k\na.example 3 " + strings.Repeat("A", 43) + "=\n"))
	f.Add([]byte(hwmHeader + "\nkey k\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHWM(b)
		if err != nil {
			return
		}
		if h.String() != string(b) {
			// Lines may come in another order; the parse of the
			// re-encoding must be the same mark.
			h2, err := parseHWM([]byte(h.String()))
			if err != nil || h2.String() != h.String() {
				t.Fatalf("re-encoding of %q does not round-trip", b)
			}
		}
	})
}

// TestStoreFormatPinned: a store written at the pinned format opens, and
// opening does not ratchet it past the pin.
func TestStoreFormatPinned(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: StoreFormat})
	if err != nil {
		t.Fatal(err)
	}
	main := tlogtest.NewTreeN(3, "main %d")
	st := []byte{}
	st = append(st, 0, 0, 0, 0, 0, 0, 0, 3)
	root := main.Root(3)
	st = append(st, root[:]...)
	st = append(st, "x\n"...)
	if err := db.Set(stateKey(testOrigin), st, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	w := openTestWitness(t, dir, key)
	if got := w.db.FormatMajorVersion(); got != StoreFormat {
		t.Fatalf("store format %v after Open, want the pinned %v", got, StoreFormat)
	}
	if w.logs[testOrigin].state.tree.N != 3 {
		t.Fatalf("state not read from the pinned-format store: %+v", w.logs[testOrigin].state.tree)
	}
	w.Close()
}
