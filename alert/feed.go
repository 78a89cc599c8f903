package alert

import (
	"sync"
	"time"

	"indelible.dev/event"
	"indelible.dev/eventstore"
)

// maxFeed bounds the events held for the follower by the feed; past it,
// new ones are left out and the follower reads them back from the store.
const maxFeed = 1 << 16

// feed holds the events the layer just committed (eventstore.Layer.OnCommit),
// by index, so the follower evaluates them without reading back and
// decrypting what it was just told. It is only a shortcut: whatever it
// lacks the follower reads with eventstore.Layer.Get.
//
// The events sit in a ring indexed by index modulo its size (a power of
// two, growing up to maxFeed while the follower lags): adding and taking
// allocate nothing but the copy of the metadata.
type feed struct {
	mu    sync.Mutex
	ring  []feedItem
	floor int64         // the follower's watermark: older events are not kept
	added chan struct{} // signalled (without blocking) on every add
	// noWaitBelow: the follower does not wait for an index below it (it
	// waited once for one and it did not come: the feed had dropped it).
	noWaitBelow int64
	waitFor     time.Duration // feedWait (tests change it)
}

// feedWait bounds how long the follower waits for an event it was not
// told of yet: the log publishes a batch a moment before the appender
// hands its events to OnCommit, so a follower that reads the published
// size at once is often a little ahead of its feed.
const feedWait = 20 * time.Millisecond

const minFeed = 1 << 10

type feedItem struct {
	index int64 // -1: empty
	ev    event.Event
	bytes []byte
}

func newFeed() *feed {
	f := &feed{added: make(chan struct{}, 1), waitFor: feedWait}
	f.ring = emptyRing(minFeed)
	return f
}

func emptyRing(n int) []feedItem {
	r := make([]feedItem, n)
	for i := range r {
		r[i].index = -1
	}
	return r
}

// slot is where index i lives in the ring.
func (f *feed) slot(i int64) *feedItem { return &f.ring[i&int64(len(f.ring)-1)] }

// add is the OnCommit callback: it copies what it keeps and never blocks
// for long.
func (f *feed) add(i int64, e *event.Event, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < f.floor {
		return
	}
	for i >= f.floor+int64(len(f.ring)) {
		if len(f.ring) >= maxFeed {
			return // the follower is far behind: it reads this one back
		}
		f.grow()
	}
	it := f.slot(i)
	// The metadata may share the request's buffer: copy it.
	md := e.Metadata
	*it = feedItem{index: i, ev: *e, bytes: b}
	it.ev.Metadata = append(it.ev.Metadata[:0:0], md...)
	select {
	case f.added <- struct{}{}:
	default:
	}
}

// grow doubles the ring, keeping what it holds.
func (f *feed) grow() {
	old := f.ring
	f.ring = emptyRing(2 * len(old))
	for k := range old {
		if it := &old[k]; it.index >= f.floor {
			*f.slot(it.index) = *it
		}
	}
}

// has reports whether the feed holds index i.
func (f *feed) has(i int64) bool { return f.slot(i).index == i }

// wait waits, at most feedWait, for the event at index i to be added,
// unless an earlier wait showed that events up to published were dropped.
// It reports whether the feed has it.
func (f *feed) wait(i, published int64) bool {
	f.mu.Lock()
	if i < f.noWaitBelow {
		f.mu.Unlock()
		return false
	}
	f.mu.Unlock()
	t := time.NewTimer(f.waitFor)
	defer t.Stop()
	for {
		f.mu.Lock()
		ok := f.has(i)
		f.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-f.added:
		case <-t.C:
			f.mu.Lock()
			f.noWaitBelow = max(f.noWaitBelow, published)
			f.mu.Unlock()
			return false
		}
	}
}

// take returns the event at index i if the feed has it, and drops it and
// everything older.
func (f *feed) take(i int64) (feedItem, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Drop what is older than i (the follower moves on in index order).
	for k := f.floor; k < i && k < f.floor+int64(len(f.ring)); k++ {
		if it := f.slot(k); it.index == k {
			*it = feedItem{index: -1}
		}
	}
	if i < f.floor {
		return feedItem{}, false
	}
	it := f.slot(i)
	if it.index != i {
		f.floor = i // it may still come (wait)
		return feedItem{}, false
	}
	out := *it
	*it = feedItem{index: -1}
	f.floor = i + 1
	return out, true
}

// record is the follower's read of event i, published is the log's size:
// from the feed (waiting a moment for an event just published), or the
// store.
func (e *Engine) record(i, published int64) (eventstore.Record, error) {
	it, ok := e.feed.take(i)
	if !ok && e.feed.wait(i, published) {
		it, ok = e.feed.take(i)
	}
	if ok {
		return eventstore.Record{Index: i, Event: it.ev, EventBytes: it.bytes}, nil
	}
	return e.l.Get(i)
}
