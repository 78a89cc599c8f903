package client

import (
	"context"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// ForEach calls fn(ctx, i) for i in [0, n) on at most parallel goroutines
// (DefaultParallelism if parallel <= 0). It stops starting new calls after
// the first error, cancels ctx for the calls in flight, and returns that
// first error once all calls have returned.
func ForEach(ctx context.Context, n, parallel int, fn func(ctx context.Context, i int) error) error {
	if parallel <= 0 {
		parallel = DefaultParallelism
	}
	if parallel > n {
		parallel = n
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		next  int
		wg    sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if first != nil || next >= n {
			return 0, false
		}
		next++
		return next - 1, true
	}
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, ok := take()
				if !ok {
					return
				}
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		// The parent context ended: report it rather than a partial success.
		return ctx.Err()
	}
	return first
}

// Tiles fetches the given tiles (hash tiles or bundles) with at most
// parallel requests in flight and returns their bodies in order.
func (c *Client) Tiles(ctx context.Context, tiles []tlog.Tile, parallel int) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	err := ForEach(ctx, len(tiles), parallel, func(ctx context.Context, i int) error {
		b, err := c.Tile(ctx, tiles[i], nil)
		out[i] = b
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
