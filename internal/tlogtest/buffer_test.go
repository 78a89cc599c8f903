package tlogtest

import (
	"strings"
	"sync"
	"testing"
)

// TestBuffer: concurrent writes and reads (run with -race) keep every
// write whole; Reset empties the buffer.
func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("line\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("line\n", 400) {
		t.Fatalf("%d bytes, want %d", len(got), 400*len("line\n"))
	}
	b.Reset()
	if got := b.String(); got != "" {
		t.Fatalf("after Reset: %q", got)
	}
}
