package eventstore

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// idFilter is a Bloom filter of the idempotency keys ('d' keys) in the
// store, so that the id check of an ingest, whose ids are almost always
// new, needs no store lookup for them (issue 21). Pebble keeps a Bloom
// filter per table, but none for its memtables: a lookup of an absent key
// still walked every memtable's skiplist (tens of cache misses) and probed
// every L0 table's filter, about 3.5 us per id, 15% of the CPU of an event
// with an id. A key the filter answers "absent" for is absent from the
// store; a key it may hold is looked up as before. So the filter can only
// save lookups, never change an answer, as long as it never misses a key:
//
//   - It is filled at Open by a scan of the 'd' keys (in the background:
//     until the scan is done, every id is looked up), and every key a commit
//     writes is added before the batch is queued (commit), so a later
//     lookup of that id, which waits for the claim the committing request
//     holds (reserve), finds it in the filter.
//   - Deleted keys (an erased event's, a shredded day's) stay in it: their
//     ids are looked up, and found absent, which is correct.
//   - Another process writing 'd' keys to the same store would not be in it.
//     Only one writer's batches commit on a store: a node's log is fenced
//     (a batch applies only on the head it extends), so once another node
//     has written, this node's log can append nothing more, and a request
//     whose id the filter missed fails with the log instead of storing a
//     duplicate. Within a process, a log has one layer appending to it
//     (as the claims of ids in flight already require).
//
// Its memory is about 12 bits per stored id (1.5 MB per million ids; more,
// up to twice that, while the store grows, since a full filter is followed
// by one twice as big rather than rebuilt), with 0.4% false positives when full.
//
// The keys are HMAC outputs, uniformly random: their own bytes are the hash.
type idFilter struct {
	ready  atomic.Bool
	mu     sync.Mutex // growth
	blooms atomic.Pointer[[]*idBloom]
}

// idBloom is one blocked Bloom filter: each key sets idProbes bits within
// one 512-bit block (one cache line).
type idBloom struct {
	blocks []idBlock
	cap    int64        // keys it is sized for
	n      atomic.Int64 // keys added
}

type idBlock [8]atomic.Uint64

const (
	idBitsPerKey  = 12
	idProbes      = 7 // 9 bits each from the key's second 8 bytes
	idFirstCap    = 1 << 20
	idBlockBits   = 512
	idProbeBitLen = 9
)

func newIDFilter() *idFilter { return newIDFilterCap(idFirstCap) }

// newIDFilterCap is newIDFilter sized for keys at first.
func newIDFilterCap(keys int64) *idFilter {
	f := &idFilter{}
	bs := []*idBloom{newIDBloom(keys)}
	f.blooms.Store(&bs)
	return f
}

func newIDBloom(keys int64) *idBloom {
	n := (keys*idBitsPerKey + idBlockBits - 1) / idBlockBits
	return &idBloom{blocks: make([]idBlock, n), cap: keys}
}

func (b *idBloom) block(k *[blindSize]byte) (*idBlock, uint64) {
	h1 := binary.LittleEndian.Uint64(k[:8])
	h2 := binary.LittleEndian.Uint64(k[8:])
	i, _ := bits.Mul64(h1, uint64(len(b.blocks)))
	return &b.blocks[i], h2
}

func (b *idBloom) add(k *[blindSize]byte) {
	blk, h := b.block(k)
	for range idProbes {
		p := h & (idBlockBits - 1)
		blk[p>>6].Or(1 << (p & 63))
		h >>= idProbeBitLen
	}
}

func (b *idBloom) has(k *[blindSize]byte) bool {
	blk, h := b.block(k)
	for range idProbes {
		p := h & (idBlockBits - 1)
		if blk[p>>6].Load()&(1<<(p&63)) == 0 {
			return false
		}
		h >>= idProbeBitLen
	}
	return true
}

// add records that k is (or is about to be) stored. Safe for concurrent use
// with add and mayHold.
func (f *idFilter) add(k *[blindSize]byte) {
	bs := *f.blooms.Load()
	last := bs[len(bs)-1]
	if last.n.Add(1) > last.cap {
		last = f.grow(last)
	}
	last.add(k)
}

// grow appends a filter twice as big as full, unless another add did.
func (f *idFilter) grow(full *idBloom) *idBloom {
	f.mu.Lock()
	defer f.mu.Unlock()
	bs := *f.blooms.Load()
	last := bs[len(bs)-1]
	if last != full {
		return last
	}
	last = newIDBloom(2 * full.cap)
	last.n.Store(1)
	grown := append(bs[:len(bs):len(bs)], last)
	f.blooms.Store(&grown)
	return last
}

// mayHold reports whether k may be stored: false only if it certainly is
// not (and the filter is complete).
func (f *idFilter) mayHold(k *[blindSize]byte) bool {
	if !f.ready.Load() {
		return true
	}
	for _, b := range *f.blooms.Load() {
		if b.has(k) {
			return true
		}
	}
	return false
}

// buildIDFilter adds every stored 'd' key to the layer's filter, then marks
// it complete. The scan runs in 256 slices of the key space, so that no
// store iterator stays open for the whole scan of a large store. A failed
// scan leaves the filter incomplete: every id is then looked up.
func (l *Layer) buildIDFilter() {
	defer l.wg.Done()
	start, n := time.Now(), 0
	var k [blindSize]byte
	for b := range 256 {
		select {
		case <-l.stop:
			return
		default:
		}
		lo := []byte{prefixIdem, byte(b)}
		hi := []byte{prefixIdem, byte(b + 1)}
		if b == 255 {
			hi = []byte{prefixIdem + 1}
		}
		err := l.log.ScanExt(lo, hi, false, func(key, _ []byte) bool {
			if len(key) == 1+blindSize {
				copy(k[:], key[1:])
				l.ids.add(&k)
				n++
			}
			return true
		})
		if err != nil {
			l.logger.Warn("events: reading the stored ids; each id will be looked up in the store", "err", err)
			return
		}
	}
	l.ids.ready.Store(true)
	l.logger.Info("events: stored ids read", "ids", n, "took", time.Since(start).Round(time.Millisecond))
}
