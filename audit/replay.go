package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
	itlog "indelible.dev/tlog"
)

// The replay keeps the tree in tile form: for each tile level l, the
// level-8l hashes of the rightmost tile that is not yet full (exactly
// PartialWidth(l, n) hashes for a tree of size n). That is the tree's compact
// range written as partial tiles: it is all the replay needs to extend the
// tree, to compare every partial tile, and to compute the root. Memory is
// O(levels * 8 KiB) whatever the log size.
//
// Bundles are fetched, parsed, hashed and compared with their level-0 tiles
// by parallel workers (a bundle's leaf hashes depend on nothing else); the
// sequencer consumes the workers' results strictly in order, through a
// sliding window of at most window bundles in flight, and folds each full
// bundle's subtree root into the levels above, comparing each level-l tile
// (fetched ahead, one per level) as it fills.

// windowPerWorker sets the sliding window: at most windowPerWorker *
// parallel bundles are dispatched and not yet consumed by the sequencer, so
// a slow bundle never lets the others run unboundedly ahead.
const windowPerWorker = 4

// replay is one replay of a log from a verified starting point to size n.
type replay struct {
	c        *client.Client
	n        int64 // the size being verified
	parallel int
	check    func(i int64, entry []byte) error
	progress func(done, total int64)

	levels [][]byte // levels[l]: hashes of the rightmost incomplete level-l tile
	next   []int64  // next[l]: level-8l hashes appended so far (l >= 1)
	ahead  []*future
	h      hasher

	entries, tiles, bundles int64
}

// tileAt returns tile (l, k) as a tree of size n implies it: full, or partial
// with its width at n. ok is false if n does not imply the tile at all.
func tileAt(l int, k, n int64) (t tlog.Tile, ok bool) {
	lv := l
	if lv == itlog.EntriesLevel {
		lv = 0
	}
	count := n >> (uint(lv) * itlog.TileHeight)
	t = tlog.Tile{H: itlog.TileHeight, L: l, N: k, W: itlog.TileWidth}
	switch {
	case k < count/itlog.TileWidth:
		return t, true
	case k == count/itlog.TileWidth && count%itlog.TileWidth != 0:
		t.W = int(count % itlog.TileWidth)
		return t, true
	}
	return t, false
}

// numLevels returns the number of hash tile levels a tree of size n has.
func numLevels(n int64) int {
	l := 0
	for n > 0 {
		l++
		n >>= itlog.TileHeight
	}
	return l
}

// fetchTile fetches t, turning a 404 into a verification failure: every tile
// fetched here is implied by a verified checkpoint, and the log must serve it.
func fetchTile(ctx context.Context, c *client.Client, t tlog.Tile, n int64, buf []byte) ([]byte, error) {
	b, err := c.Tile(ctx, t, buf)
	kind := KindTile
	if t.L == itlog.EntriesLevel {
		kind = KindBundle
	}
	if errors.Is(err, client.ErrNotExist) {
		return nil, failf(kind, itlog.TilePath(t), "missing (HTTP 404), but the checkpoint of size %d implies it", n)
	}
	if errors.Is(err, client.ErrTooLarge) {
		return nil, failf(kind, itlog.TilePath(t), "is larger than any tile or bundle can be")
	}
	if err != nil {
		return nil, fmt.Errorf("audit: fetching %s: %w", itlog.TilePath(t), err)
	}
	return b, nil
}

// fetchHashTile fetches hash tile t and checks its length.
func fetchHashTile(ctx context.Context, c *client.Client, t tlog.Tile, n int64, buf []byte) ([]byte, error) {
	b, err := fetchTile(ctx, c, t, n, buf)
	if err != nil {
		return nil, err
	}
	if len(b) != t.W*tlog.HashSize {
		return nil, failf(KindTile, itlog.TilePath(t), "is %d bytes, want %d (%d hashes)", len(b), t.W*tlog.HashSize, t.W)
	}
	return b, nil
}

// future is a hash tile being fetched ahead of need.
type future struct {
	t    tlog.Tile
	done chan struct{}
	data []byte
	err  error
}

func (r *replay) fetchAhead(ctx context.Context, l int, k int64) *future {
	t, ok := tileAt(l, k, r.n)
	if !ok {
		return nil
	}
	f := &future{t: t, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.data, f.err = fetchHashTile(ctx, r.c, t, r.n, nil)
	}()
	return f
}

func (f *future) wait(ctx context.Context) ([]byte, error) {
	select {
	case <-f.done:
		return f.data, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// start loads the tree of size m (0 <= m <= r.n) from the tiles the tree of
// size r.n implies (partial tiles are prefixes, so the tiles at m are prefixes
// of those) and returns its root as recomputed from them. The caller compares
// that root with the verified root of size m: that comparison commits every
// hash loaded here.
func (r *replay) start(ctx context.Context, m int64) (tlog.Hash, error) {
	nl := numLevels(r.n) + 1
	r.levels = make([][]byte, nl)
	r.next = make([]int64, nl)
	r.ahead = make([]*future, nl)
	for l := 0; l < nl; l++ {
		r.levels[l] = make([]byte, 0, itlog.TileWidth*tlog.HashSize)
		r.next[l] = m >> (uint(l) * itlog.TileHeight)
		w := itlog.PartialWidth(l, m)
		if w == 0 || l >= numLevels(m) {
			continue
		}
		t, ok := tileAt(l, m>>(uint(l+1)*itlog.TileHeight), r.n)
		if !ok {
			panic("audit: a tile of the old tree is not implied by the new one")
		}
		b, err := fetchHashTile(ctx, r.c, t, r.n, nil)
		if err != nil {
			return tlog.Hash{}, err
		}
		r.levels[l] = append(r.levels[l], b[:w*tlog.HashSize]...)
	}
	for l := 1; l < nl; l++ {
		r.ahead[l] = r.fetchAhead(ctx, l, r.next[l]/itlog.TileWidth)
	}
	return r.root(), nil
}

// root returns the root hash of the tree the levels hold.
func (r *replay) root() tlog.Hash {
	var subtrees []tlog.Hash
	for l := len(r.levels) - 1; l >= 0; l-- {
		hs := r.levels[l]
		w := len(hs) / tlog.HashSize
		off := 0
		for bit := itlog.TileHeight - 1; bit >= 0; bit-- {
			if w&(1<<bit) == 0 {
				continue
			}
			end := off + (1<<bit)*tlog.HashSize
			subtrees = append(subtrees, r.h.subtreeRoot(hs[off:end]))
			off = end
		}
	}
	return r.h.rootOf(subtrees)
}

// push appends the level-8l hash x (l >= 1). When it fills the level's tile,
// the tile is compared with the served one and its root pushed a level up.
func (r *replay) push(ctx context.Context, l int, x tlog.Hash) error {
	r.levels[l] = append(r.levels[l], x[:]...)
	r.next[l]++
	if r.next[l]%itlog.TileWidth != 0 {
		return nil
	}
	f := r.ahead[l]
	if f == nil || f.t.N != r.next[l]/itlog.TileWidth-1 || f.t.W != itlog.TileWidth {
		panic(fmt.Sprintf("audit: no fetch ahead for the full tile at level %d", l))
	}
	if err := r.checkAhead(ctx, f, l); err != nil {
		return err
	}
	top := r.h.subtreeRoot(r.levels[l])
	r.levels[l] = r.levels[l][:0]
	r.ahead[l] = r.fetchAhead(ctx, l, r.next[l]/itlog.TileWidth)
	return r.push(ctx, l+1, top)
}

// tileEntries returns a description of the leaves under hash i of t, for
// error messages.
// checkAhead compares the served tile f fetched ahead for level l with the
// hashes the replay computed for it.
func (r *replay) checkAhead(ctx context.Context, f *future, l int) error {
	served, err := f.wait(ctx)
	if err != nil {
		return err
	}
	if err := compareTile(f.t, served, r.levels[l], r.tileEntries(f.t)); err != nil {
		return err
	}
	r.tiles++
	return nil
}

func (r *replay) tileEntries(t tlog.Tile) func(i int) string {
	return func(i int) string {
		lo := (t.N*itlog.TileWidth + int64(i)) << (uint(t.L) * itlog.TileHeight)
		if t.L == 0 {
			return fmt.Sprintf("entry %d", lo)
		}
		hi := lo + 1<<(uint(t.L)*itlog.TileHeight)
		return fmt.Sprintf("entries %d to %d", lo, hi-1)
	}
}

// compareTile compares the served tile with the recomputed hashes and names
// the first hash that differs.
func compareTile(t tlog.Tile, served, want []byte, what func(i int) string) error {
	if bytes.Equal(served, want) {
		return nil
	}
	if len(served) != len(want) {
		return failf(KindTile, itlog.TilePath(t), "is %d bytes, want %d", len(served), len(want))
	}
	for i := 0; i < len(want); i += tlog.HashSize {
		if !bytes.Equal(served[i:i+tlog.HashSize], want[i:i+tlog.HashSize]) {
			return failf(KindTile, itlog.TilePath(t), "hash %d (%s) differs from the one recomputed from the entries",
				i/tlog.HashSize, what(i/tlog.HashSize))
		}
	}
	panic("unreachable")
}

// result is a worker's answer for one bundle.
type result struct {
	top    tlog.Hash // subtree root of a full bundle
	leaves []byte    // leaf hashes of a partial bundle
	err    error
}

// workBuf is a worker's reusable memory.
type workBuf struct {
	bundle, tile, leaves []byte
	h                    hasher
}

// bundle fetches bundle k (width w) and its level-0 tile, recomputes the
// leaf hashes and compares them with the tile.
func (r *replay) bundle(ctx context.Context, k int64, w int, b *workBuf) result {
	bt := tlog.Tile{H: itlog.TileHeight, L: itlog.EntriesLevel, N: k, W: w}
	tt := tlog.Tile{H: itlog.TileHeight, L: 0, N: k, W: w}
	var err error
	if b.bundle, err = fetchTile(ctx, r.c, bt, r.n, b.bundle); err != nil {
		return result{err: err}
	}
	if b.tile, err = fetchHashTile(ctx, r.c, tt, r.n, b.tile); err != nil {
		return result{err: err}
	}
	b.leaves = b.leaves[:0]
	i := 0
	var checkErr error
	walkErr := itlog.WalkBundle(b.bundle, func(e []byte) bool {
		if i == w {
			return false
		}
		if r.check != nil {
			if err := r.check(k*itlog.TileWidth+int64(i), e); err != nil {
				checkErr = err
				return false
			}
		}
		x := b.h.leafHash(e)
		b.leaves = append(b.leaves, x[:]...)
		i++
		return true
	})
	switch {
	case checkErr != nil:
		return result{err: checkErr}
	case walkErr != nil:
		return result{err: failf(KindBundle, itlog.TilePath(bt), "entry %d: %v", k*itlog.TileWidth+int64(i), walkErr)}
	case i != w:
		return result{err: failf(KindBundle, itlog.TilePath(bt), "holds %d entries, want %d", i, w)}
	}
	if rest, _ := itlog.BundlePrefix(b.bundle, w); len(rest) != len(b.bundle) {
		return result{err: failf(KindBundle, itlog.TilePath(bt), "has %d bytes after its %d entries", len(b.bundle)-len(rest), w)}
	}
	if !bytes.Equal(b.tile, b.leaves) {
		for j := 0; j < w; j++ {
			if !bytes.Equal(b.tile[j*tlog.HashSize:(j+1)*tlog.HashSize], b.leaves[j*tlog.HashSize:(j+1)*tlog.HashSize]) {
				e := k*itlog.TileWidth + int64(j)
				return result{err: failf(KindTile, itlog.TilePath(tt),
					"hash %d differs from the leaf hash of entry %d in %s (the bundle or the tile was altered)", j, e, itlog.TilePath(bt))}
			}
		}
	}
	if w == itlog.TileWidth {
		return result{top: b.h.subtreeRoot(b.leaves)}
	}
	return result{leaves: bytes.Clone(b.leaves)}
}

// run replays bundles from the one holding entry m (the size loaded by
// start) to the end of the tree of size r.n.
func (r *replay) run(ctx context.Context, m int64) error {
	if m == r.n {
		return r.finish(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k0, kLast := m/itlog.TileWidth, (r.n-1)/itlog.TileWidth
	width := func(k int64) int {
		t, _ := tileAt(0, k, r.n)
		return t.W
	}
	window := windowPerWorker * r.parallel
	slots := make([]chan result, window)
	for i := range slots {
		slots[i] = make(chan result, 1)
	}
	sem := make(chan struct{}, window)
	jobs := make(chan int64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		for k := k0; k <= kLast; k++ {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	for w := 0; w < r.parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b workBuf
			for k := range jobs {
				slots[k%int64(window)] <- r.bundle(ctx, k, width(k), &b)
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait() // no goroutine outlives the replay
	}()

	total := r.n - k0*itlog.TileWidth
	for k := k0; k <= kLast; k++ {
		var res result
		select {
		case res = <-slots[k%int64(window)]:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-sem
		if res.err != nil {
			return res.err
		}
		w := width(k)
		r.bundles++
		r.tiles++
		r.entries += int64(w)
		if w == itlog.TileWidth {
			r.levels[0] = r.levels[0][:0]
			if err := r.push(ctx, 1, res.top); err != nil {
				return err
			}
		} else {
			r.levels[0] = append(r.levels[0][:0], res.leaves...)
		}
		if r.progress != nil {
			r.progress(r.entries, total)
		}
	}
	return r.finish(ctx)
}

// finish compares the partial tiles at levels >= 1 with the levels the
// replay built (level 0 was compared by its bundle's worker).
func (r *replay) finish(ctx context.Context) error {
	for l := 1; l < len(r.levels); l++ {
		w := itlog.PartialWidth(l, r.n)
		if w == 0 || l >= numLevels(r.n) {
			continue
		}
		f := r.ahead[l]
		if f == nil || f.t.W != w {
			panic(fmt.Sprintf("audit: no fetch ahead for the partial tile at level %d", l))
		}
		if err := r.checkAhead(ctx, f, l); err != nil {
			return err
		}
	}
	return nil
}
