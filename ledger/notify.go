package ledger

import "sync"

// notifier wakes every goroutine waiting for some state to change. A waiter
// takes the channel from wait before it looks at the state, then blocks on
// it: a change made after it looked closes that very channel, so no wake-up
// is lost. The zero value is ready to use.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel that is closed at the next broadcast.
func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// broadcast wakes every goroutine waiting on a channel from wait.
func (n *notifier) broadcast() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
