package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// observed is what writers and readers of a log have seen: the entries
// acknowledged to their writers (index -> data), every checkpoint published
// (size -> root), and every entry ever submitted (acknowledged or not).
type observed struct {
	mu        sync.Mutex
	acked     map[int64]string
	roots     map[int64]tlog.Hash
	maxSize   int64
	submitted map[string]bool
}

func newObserved() *observed {
	return &observed{acked: map[int64]string{}, roots: map[int64]tlog.Hash{}, submitted: map[string]bool{}}
}

func (o *observed) submit(data []byte) {
	o.mu.Lock()
	o.submitted[string(data)] = true
	o.mu.Unlock()
}

// ack records entries acknowledged at indexes, and the checkpoint the log
// publishes now (which covers them).
func (o *observed) ack(t testing.TB, l *Log, indexes []int64, entries []Entry) {
	cp, _ := l.Checkpoint()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, idx := range indexes {
		if old, ok := o.acked[idx]; ok && old != string(entries[i].Data) {
			t.Errorf("index %d acknowledged for %q and %q", idx, old, entries[i].Data)
		}
		o.acked[idx] = string(entries[i].Data)
	}
	o.sawLocked(t, cp)
}

func (o *observed) saw(t testing.TB, cp itlog.Checkpoint) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sawLocked(t, cp)
}

func (o *observed) sawLocked(t testing.TB, cp itlog.Checkpoint) {
	if old, ok := o.roots[cp.N]; ok && old != cp.Hash {
		t.Errorf("two roots published for size %d", cp.N)
	}
	o.roots[cp.N] = cp.Hash
	o.maxSize = max(o.maxSize, cp.N)
}

// snapshot copies what was observed so far: taken just before a crash, it
// is what the crashed store must still honour.
func (o *observed) snapshot() *observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := newObserved()
	for k, v := range o.acked {
		s.acked[k] = v
	}
	for k, v := range o.roots {
		s.roots[k] = v
	}
	s.maxSize = o.maxSize
	// submitted only grows and is checked after the run: share it.
	s.submitted = nil
	return s
}

// checkRecovered opens the log stored in fs (a crash clone) and checks the
// invariants a crash must not break, against what was observed before the
// crash: Open succeeds (the stored root recomputes from the right edge), the
// checkpoint size did not go backwards, every acknowledged entry is there
// with its bytes at its index, every entry present was submitted and appears
// once, the root equals an independent x/mod computation over the entries,
// entries are found by leaf hash, every earlier checkpoint's root is the
// root of that prefix, and the tiles of the recovered size equal x/mod's.
// Then it appends one more entry.
func checkRecovered(t *testing.T, name string, fs vfs.FS, s note.Signer, v note.Verifier, before *observed, submitted map[string]bool) {
	t.Helper()
	l, err := Open("log", Options{Signer: s, FS: fs, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("%s: Open after crash: %v", name, err)
	}
	defer l.Close()
	cp, signed := l.Checkpoint()
	if _, _, err := itlog.OpenCheckpoint(signed, v); err != nil {
		t.Fatalf("%s: recovered checkpoint does not verify: %v", name, err)
	}
	if cp.N < before.maxSize {
		t.Fatalf("%s: recovered size %d, but size %d was published before the crash", name, cp.N, before.maxSize)
	}
	ref := &tlogtest.Tree{}
	seen := map[string]int64{}
	for i := int64(0); i < cp.N; i++ {
		e, err := l.Entry(i)
		if err != nil {
			t.Fatalf("%s: Entry(%d) of %d: %v", name, i, cp.N, err)
		}
		if want, ok := before.acked[i]; ok && want != string(e) {
			t.Fatalf("%s: entry %d is %q, %q was acknowledged", name, i, e, want)
		}
		if !submitted[string(e)] {
			t.Fatalf("%s: entry %d %q was never submitted", name, i, e)
		}
		if j, dup := seen[string(e)]; dup {
			t.Fatalf("%s: entry %q at %d and %d", name, e, j, i)
		}
		seen[string(e)] = i
		ref.Add(e)
	}
	for idx := range before.acked {
		if idx >= cp.N {
			t.Fatalf("%s: acknowledged entry %d lost (recovered size %d)", name, idx, cp.N)
		}
	}
	if root := ref.Root(cp.N); root != cp.Hash {
		t.Fatalf("%s: recovered root %v, x/mod computes %v", name, cp.Hash, root)
	}
	// The leaf-hash index (written off the sequencer's path, not synced)
	// was brought up to the recovered size by Open.
	for _, i := range []int64{0, cp.N / 2, cp.N - 2, cp.N - 1} {
		if i < 0 || i >= cp.N {
			continue
		}
		leaf := ref.LeafHash(i)
		j, p, err := l.InclusionProofByHash(leaf, cp.N)
		if err != nil || j != i {
			t.Fatalf("%s: InclusionProofByHash(entry %d) = %d, %v", name, i, j, err)
		}
		if err := tlog.CheckRecord(p, cp.N, cp.Hash, i, leaf); err != nil {
			t.Fatalf("%s: proof by hash of %d: %v", name, i, err)
		}
	}
	for n, root := range before.roots {
		if h, err := l.TreeHash(n); err != nil || h != root {
			t.Fatalf("%s: root of size %d is %v (%v) after the crash, %v was published before", name, n, h, err, root)
		}
	}
	for _, tile := range tlog.NewTiles(itlog.TileHeight, 0, cp.N) {
		got, err := l.ReadTile(tile)
		if err != nil || !bytes.Equal(got, ref.Tile(tile)) {
			t.Fatalf("%s: tile %s after the crash: %v", name, itlog.TilePath(tile), err)
		}
	}
	// The recovered log goes on.
	idx, err := l.Append(context.Background(), []byte("after the crash"))
	if err != nil || idx != cp.N {
		t.Fatalf("%s: Append after recovery = %d, %v; want %d", name, idx, err, cp.N)
	}
}

// crashPoint is a crash clone of the filesystem and what had been observed
// just before it was taken.
type crashPoint struct {
	name   string
	fs     *vfs.MemFS
	before *observed
}

// crasher takes a crash clone before every mutating filesystem operation
// while armed (so every state the store passes through during a sequencing
// round is crashed into), keeping the observations made before each.
type crasher struct {
	mem      *vfs.MemFS
	obs      *observed
	mu       sync.Mutex
	armed    bool
	unsynced bool // also keep a random share of unsynced writes
	rng      *rand.Rand
	points   []crashPoint
	ops      int
}

func (c *crasher) MaybeError(op errorfs.Op) error {
	if op.Kind.ReadOrWrite() != errorfs.OpIsWrite {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.armed {
		return nil
	}
	c.ops++
	// Observations first, then the clone: everything acknowledged or
	// published before the snapshot was durable before the clone.
	before := c.obs.snapshot()
	cfg := vfs.CrashCloneCfg{}
	if c.unsynced && c.ops%2 == 0 {
		cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: c.rng.IntN(100) + 1, RNG: c.rng}
	}
	c.points = append(c.points, crashPoint{
		name:   fmt.Sprintf("crash before op %d (%v %s, unsynced %d%%)", c.ops, op.Kind, op.Path, cfg.UnsyncedDataPercent),
		fs:     c.mem.CrashClone(cfg),
		before: before,
	})
	return nil
}

func (c *crasher) String() string { return "crasher" }

// count returns the crash points taken so far.
func (c *crasher) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.points)
}

func (c *crasher) arm(on, unsynced bool) {
	c.mu.Lock()
	c.armed, c.unsynced = on, unsynced
	c.mu.Unlock()
}

// TestCrashEveryStep crashes the log's filesystem before every mutating
// filesystem operation of many sequencing rounds: first single appends one
// at a time, then concurrent appenders in batches (with crash clones that
// keep a random share of the unsynced writes too), then reopens every clone
// and checks the recovery invariants (checkRecovered).
func TestCrashEveryStep(t *testing.T) {
	s, v := testSigner(t)
	ctx := context.Background()
	mem := vfs.NewCrashableMem()
	obs := newObserved()
	c := &crasher{mem: mem, obs: obs, rng: rand.New(rand.NewPCG(7, 8))}
	fs := errorfs.Wrap(mem, c)

	// Creation of the log is crashed into too.
	c.arm(true, false)
	l, err := Open("log", Options{Signer: s, FS: fs, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := l.Checkpoint()
	obs.saw(t, cp)

	// Phase 1: one entry per sequencing round, crossing the 256 boundary.
	next := 0
	phase1 := 0
	for ; next < 260; next++ {
		if next == 20 {
			// The middle of the range adds no new step kinds: grow it
			// quickly, then crash again around the tile boundary.
			c.arm(false, false)
		}
		if next == 250 {
			c.arm(true, false)
		}
		d := []byte(fmt.Sprintf("seq %d", next))
		obs.submit(d)
		idx, err := l.Append(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		obs.ack(t, l, []int64{idx}, []Entry{{Data: d}})
	}
	phase1 = c.count() // pebble's WAL writer may still be writing (and cloning) now

	// Phase 2: concurrent appenders, batches in flight while others are
	// being built, crash clones with and without unsynced data.
	c.arm(true, true)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for k := 0; k < 12; k++ {
				var batch []Entry
				for j := 0; j <= (w+k)%5; j++ {
					d := []byte(fmt.Sprintf("w%d k%d j%d", w, k, j))
					obs.submit(d)
					batch = append(batch, Entry{Data: d})
				}
				idx, err := l.AppendEntries(ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				obs.ack(t, l, idx, batch)
			}
		})
	}
	wg.Wait()
	c.arm(false, false)
	cp, _ = l.Checkpoint()
	obs.saw(t, cp)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d crash points (%d during single appends), final size %d", len(c.points), phase1, cp.N)
	sizes := map[int64]int{}
	for _, p := range c.points {
		checkRecovered(t, p.name, p.fs, s, v, p.before, obs.submitted)
		l, err := Open("log", Options{Signer: s, FS: p.fs, Logger: quietLogger()})
		if err == nil {
			cp, _ := l.Checkpoint()
			sizes[cp.N-1]++ // minus the entry checkRecovered appended
			l.Close()
		}
	}
	// Group commit merges concurrent requests, so phase 2 has fewer
	// sequencing rounds than requests: at least a dozen rounds of two or
	// more writes each.
	if phase1 < 30 || len(c.points)-phase1 < 20 {
		t.Errorf("too few crash points: %d + %d", phase1, len(c.points)-phase1)
	}
	// The crashes landed at many different sizes, not all at the end.
	if len(sizes) < 20 {
		t.Errorf("crash clones recovered to only %d distinct sizes", len(sizes))
	}
	// The original store, closed cleanly, has everything.
	checkRecovered(t, "clean close", mem, s, v, obs.snapshot(), obs.submitted)
}

// maxRandomClones bounds the clones TestCrashRandomClones takes.
const maxRandomClones = 150

// TestCrashRandomClones takes crash clones at arbitrary moments (from
// another goroutine, not at filesystem operation boundaries) while several
// goroutines append, with a random share of unsynced data kept, and checks
// every clone recovers.
func TestCrashRandomClones(t *testing.T) {
	s, v := testSigner(t)
	ctx := context.Background()
	mem := vfs.NewCrashableMem()
	obs := newObserved()
	l, err := Open("log", Options{Signer: s, FS: mem, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var points []crashPoint
	cloned := make(chan struct{})
	go func() {
		defer close(cloned)
		rng := rand.New(rand.NewPCG(9, 10))
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			before := obs.snapshot()
			cfg := vfs.CrashCloneCfg{}
			if k%3 != 0 {
				cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng}
			}
			points = append(points, crashPoint{fmt.Sprintf("random clone %d (unsynced %d%%)", k, cfg.UnsyncedDataPercent), mem.CrashClone(cfg), before})
			if len(points) >= maxRandomClones {
				<-stop
				return
			}
			time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Go(func() {
			for k := 0; k < 80; k++ {
				d := []byte(fmt.Sprintf("r%d-%d", w, k))
				obs.submit(d)
				idx, err := l.Append(ctx, d)
				if err != nil {
					t.Error(err)
					return
				}
				obs.ack(t, l, []int64{idx}, []Entry{{Data: d}})
			}
		})
	}
	wg.Wait()
	close(stop)
	<-cloned
	l.Close()
	// Keep the check bounded: every clone up to 120, then a sample.
	step := max(1, len(points)/120)
	checked := 0
	for i := 0; i < len(points); i += step {
		checkRecovered(t, points[i].name, points[i].fs, s, v, points[i].before, obs.submitted)
		checked++
	}
	t.Logf("%d random crash clones, %d checked", len(points), checked)
}

// TestCloseReopenConcurrent appends from several goroutines while the log is
// closed and reopened many times (on disk, in t.TempDir()). An append that
// gets ErrClosed is retried on the next log: ErrClosed must mean "not
// appended", so no entry may appear twice. After every reopen, and at the
// end, the recovery invariants hold.
func TestCloseReopenConcurrent(t *testing.T) {
	s, v := testSigner(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	obs := newObserved()
	open := func() *Log {
		l, err := Open(dir, Options{Signer: s, Logger: quietLogger()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return l
	}
	var mu sync.RWMutex
	cur := open()
	reopened := make(chan struct{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 6; w++ {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				batch := []Entry{{Data: []byte(fmt.Sprintf("c%d-%d", w, k))}}
				if k%3 == 0 {
					batch = append(batch, Entry{Data: []byte(fmt.Sprintf("c%d-%d'", w, k))})
				}
				for _, e := range batch {
					obs.submit(e.Data)
				}
				for {
					mu.RLock()
					l, ch := cur, reopened
					mu.RUnlock()
					idx, err := l.AppendEntries(ctx, batch)
					if errors.Is(err, ErrClosed) {
						select {
						case <-ch:
						case <-stop:
							return
						}
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					obs.ack(t, l, idx, batch)
					break
				}
			}
		})
	}
	const reopens = 25
	for r := 0; r < reopens; r++ {
		for {
			// Let some appends through on each incarnation.
			cp, _ := cur.Checkpoint()
			if cp.N >= int64(r+1)*20 {
				break
			}
			if _, _, err := cur.WaitSize(ctx, cp.N+1); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		old := cur
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := old.Append(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append on a closed log = %v, want ErrClosed", err)
		}
		before := obs.snapshot()
		cur = open()
		cp, _ := cur.Checkpoint()
		if cp.N < before.maxSize {
			t.Fatalf("reopen %d: size %d < published %d", r, cp.N, before.maxSize)
		}
		for n, root := range before.roots {
			if h, err := cur.TreeHash(n); err != nil || h != root {
				t.Fatalf("reopen %d: root of size %d changed", r, n)
			}
		}
		close(reopened)
		reopened = make(chan struct{})
		mu.Unlock()
	}
	close(stop)
	mu.Lock()
	close(reopened)
	mu.Unlock()
	wg.Wait()
	if err := cur.Close(); err != nil {
		t.Fatal(err)
	}
	before := obs.snapshot()
	if len(before.acked) < reopens*20 {
		t.Fatalf("only %d entries acknowledged", len(before.acked))
	}
	l := open()
	cp, _ := l.Checkpoint()
	l.Close()
	if cp.N != int64(len(before.acked)) {
		t.Fatalf("final size %d, %d entries acknowledged", cp.N, len(before.acked))
	}
	checkRecoveredDir(t, dir, s, v, before, obs.submitted)
}

// checkRecoveredDir is checkRecovered for a store on the real filesystem.
func checkRecoveredDir(t *testing.T, dir string, s note.Signer, v note.Verifier, before *observed, submitted map[string]bool) {
	t.Helper()
	if TestingStore != nil {
		return // the log is in PostgreSQL: the test's own reopen checked it
	}
	// Copy the directory into a MemFS so checkRecovered can append to it
	// without changing the test's store.
	mem := vfs.NewMem()
	if _, err := vfs.Clone(vfs.Default, mem, dir, "log"); err != nil {
		t.Fatal(err)
	}
	checkRecovered(t, "on-disk store", mem, s, v, before, submitted)
}

// TestOpenRefusesCorruptEdge flips bytes of the right-edge tiles, the
// right-edge bundle and the tree state of a stored log (directly in pebble),
// and truncates or deletes them: Open must refuse each store with an error
// wrapping ErrCorrupt.
func TestOpenRefusesCorruptEdge(t *testing.T) {
	s, _ := testSigner(t)
	ctx := context.Background()
	base := vfs.NewMem()
	l := openMem(t, base, s)
	var batch []Entry
	for i := 0; i < 300; i++ { // edge: tile 0/1 width 44 (not stored), tile 1/0 width 1, bundle 1 width 44 (one 'e' record)
		batch = append(batch, Entry{Data: entryData(i)})
	}
	if _, err := l.AppendEntries(ctx, batch); err != nil {
		t.Fatal(err)
	}
	l.Close()

	rng := rand.New(rand.NewPCG(11, 12))
	type mutation struct {
		name string
		key  []byte
		f    func([]byte) []byte // nil deletes the key
	}
	var muts []mutation
	for _, kv := range []struct {
		name string
		key  []byte
		size int
	}{
		// The partial level-0 tile 0/1 is not stored: it is recomputed from
		// the partial bundle's record, which must hash up to the root.
		{"tile 1/0", tileKey(1, 0), 32},
		{"partial bundle 1 record", deltaKey(256), -1},
		{"state", keyState, 40},
	} {
		size := kv.size
		if size < 0 {
			size = len(encodeBundleOf(256, 300))
		}
		positions := map[int]bool{0: true, size - 1: true, size / 2: true}
		for len(positions) < min(size, 12) {
			positions[rng.IntN(size)] = true
		}
		if kv.name == "state" || kv.name == "tile 1/0" {
			for p := 0; p < size; p++ {
				positions[p] = true
			}
		}
		for p := range positions {
			for _, f := range []byte{0x01, 0x80} {
				muts = append(muts, mutation{fmt.Sprintf("%s byte %d ^ %#x", kv.name, p, f), kv.key, func(b []byte) []byte {
					if p >= len(b) {
						t.Fatalf("%s is %d bytes, not %d", kv.name, len(b), size)
					}
					b[p] ^= f
					return b
				}})
			}
		}
		muts = append(muts,
			mutation{kv.name + " truncated", kv.key, func(b []byte) []byte { return b[:len(b)-1] }},
			mutation{kv.name + " extended", kv.key, func(b []byte) []byte { return append(b, 0) }},
			mutation{kv.name + " deleted", kv.key, nil},
		)
	}
	for _, m := range muts {
		fs := vfs.NewMem()
		if _, err := vfs.Clone(base, fs, "log", "log"); err != nil {
			t.Fatal(err)
		}
		db, err := pebble.Open("log", &pebble.Options{FS: fs, Logger: pebbleLogger{L: quietLogger()}})
		if err != nil {
			t.Fatal(err)
		}
		v, closer, err := db.Get(m.key)
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		val := bytes.Clone(v)
		closer.Close()
		if m.f == nil {
			err = db.Delete(m.key, pebble.Sync)
		} else {
			err = db.Set(m.key, m.f(val), pebble.Sync)
		}
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		l, err := Open("log", Options{Signer: s, FS: fs, Logger: quietLogger()})
		if err == nil {
			cp, _ := l.Checkpoint()
			l.Close()
			t.Errorf("%s: Open succeeded (size %d)", m.name, cp.N)
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Open error %v does not wrap ErrCorrupt", m.name, err)
		}
	}
	t.Logf("%d corruptions refused", len(muts))
	// The unmodified store still opens.
	l = openMem(t, base, s)
	l.Close()
}

// encodeBundleOf is the bundle of entryData(lo..hi-1).
func encodeBundleOf(lo, hi int) []byte {
	var b []byte
	for i := lo; i < hi; i++ {
		b = itlog.AppendBundleEntry(b, entryData(i))
	}
	return b
}
