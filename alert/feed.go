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
type feed struct {
	mu    sync.Mutex
	items map[int64]feedItem
	floor int64         // the follower's watermark: older events are not kept
	added chan struct{} // signalled (without blocking) on every add
	// noWaitBelow: the follower does not wait for an index below it (it
	// waited once for one and it did not come: the feed had dropped it).
	noWaitBelow int64
}

// feedWait bounds how long the follower waits for an event it was not
// told of yet: the log publishes a batch a moment before the appender
// hands its events to OnCommit, so a follower that reads the published
// size at once is often a little ahead of its feed.
const feedWait = 20 * time.Millisecond

type feedItem struct {
	ev    event.Event
	bytes []byte
}

func newFeed() *feed { return &feed{items: map[int64]feedItem{}, added: make(chan struct{}, 1)} }

// add is the OnCommit callback: it copies what it keeps and never blocks
// for long.
func (f *feed) add(i int64, e *event.Event, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < f.floor || len(f.items) >= maxFeed {
		return
	}
	ev := *e
	// The metadata may share the request's buffer: copy it.
	ev.Metadata = append([]byte(nil), e.Metadata...)
	f.items[i] = feedItem{ev: ev, bytes: b}
	select {
	case f.added <- struct{}{}:
	default:
	}
}

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
	t := time.NewTimer(feedWait)
	defer t.Stop()
	for {
		f.mu.Lock()
		_, ok := f.items[i]
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
	it, ok := f.items[i]
	if ok {
		delete(f.items, i)
		f.floor = i + 1
	} else {
		f.floor = i // it may still come (wait)
	}
	if len(f.items) > maxFeed/2 {
		for k := range f.items {
			if k <= i {
				delete(f.items, k)
			}
		}
	}
	return it, ok
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
