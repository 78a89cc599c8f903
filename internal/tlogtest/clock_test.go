package tlogtest

import (
	"sync"
	"testing"
	"time"
)

// TestClock: a new clock stands at ClockStart, Add moves it both ways, and
// concurrent Adds are all counted (the race detector checks the locking).
func TestClock(t *testing.T) {
	c := NewClock()
	if got := c.Now(); !got.Equal(ClockStart) {
		t.Fatalf("new clock at %v, want %v", got, ClockStart)
	}
	c.Add(time.Hour)
	c.Add(-time.Minute)
	if got, want := c.Now(), ClockStart.Add(59*time.Minute); !got.Equal(want) {
		t.Fatalf("after +1h -1m: %v, want %v", got, want)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				c.Add(time.Second)
				c.Now()
			}
		}()
	}
	wg.Wait()
	if got, want := c.Now(), ClockStart.Add(59*time.Minute+800*time.Second); !got.Equal(want) {
		t.Fatalf("after 800 concurrent +1s: %v, want %v", got, want)
	}
}
