package tlogtest

import (
	"sync"
	"time"
)

// ClockStart is where NewClock starts: a fixed instant, so that times a test
// prints or stores are the same on every run.
var ClockStart = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// Clock is a settable clock that is safe for concurrent use: hand Now to the
// code under test and move time with Add.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at ClockStart.
func NewClock() *Clock { return &Clock{t: ClockStart} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d (back, if d is negative).
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
