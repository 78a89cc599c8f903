package alert

import (
	"sync"

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
	floor int64 // the follower's watermark: older events are not kept
}

type feedItem struct {
	ev    event.Event
	bytes []byte
}

func newFeed() *feed { return &feed{items: map[int64]feedItem{}} }

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
}

// take returns the event at index i if the feed has it, and drops it and
// everything older.
func (f *feed) take(i int64) (feedItem, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.items[i]
	if ok {
		delete(f.items, i)
	}
	f.floor = i + 1
	if len(f.items) > maxFeed/2 {
		for k := range f.items {
			if k <= i {
				delete(f.items, k)
			}
		}
	}
	return it, ok
}

// record is the follower's read of event i: from the feed, or the store.
func (e *Engine) record(i int64) (eventstore.Record, error) {
	if it, ok := e.feed.take(i); ok {
		return eventstore.Record{Index: i, Event: it.ev, EventBytes: it.bytes}, nil
	}
	return e.l.Get(i)
}
