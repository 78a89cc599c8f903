package client

import (
	"time"

	itlog "indelible.dev/tlog"
)

// Option configures New.
type Option func(*settings)

// settings are what the Options of New set: the transport Options and the
// writer's (see Log).
type settings struct {
	Options
	batchSize    int
	batchDelay   time.Duration
	queueSize    int
	drop         bool
	blockTimeout time.Duration
	maxAttempts  int
	maxElapsed   time.Duration
	onError      func(error)
	spoolDir     string
	pinPath      string
	policy       itlog.Policy
}

// Defaults of the writer (Log, LogSync, Flush, Close).
const (
	// DefaultBatchSize is how many events one append request carries at
	// most.
	DefaultBatchSize = 500
	// DefaultBatchDelay is how long the first event of a batch waits for
	// others before the batch is sent.
	DefaultBatchDelay = 50 * time.Millisecond
	// DefaultQueueSize is how many events Log queues before the queue is
	// full.
	DefaultQueueSize = 10000
	// DefaultBlockTimeout is how long Log waits for room in a full queue
	// before it gives up with ErrQueueFull.
	DefaultBlockTimeout = 5 * time.Second
	// DefaultMaxElapsed is how long the writer keeps retrying one batch
	// before it reports its events as not durable.
	DefaultMaxElapsed = 5 * time.Minute
)

// WithOptions sets the transport options (HTTP client, retries of reads,
// user agent, CAs...). The token argument of New, if not empty, overrides
// o.Token.
func WithOptions(o Options) Option {
	return func(s *settings) { s.Options = o }
}

// WithBatch sets the largest batch (events per append request; at most
// 10,000, the server's limit) and how long the first event of a batch waits
// for more before it is sent. Zero keeps the default.
func WithBatch(size int, delay time.Duration) Option {
	return func(s *settings) {
		if size > 0 {
			s.batchSize = min(size, 10000)
		}
		if delay > 0 {
			s.batchDelay = delay
		}
	}
}

// WithQueueSize sets how many events Log queues, unsent, before the queue
// is full.
func WithQueueSize(n int) Option {
	return func(s *settings) {
		if n > 0 {
			s.queueSize = n
		}
	}
}

// WithBlockOnFull makes Log wait up to timeout for room in a full queue (the
// default, with DefaultBlockTimeout), then return ErrQueueFull. The event is
// then counted in Dropped.
func WithBlockOnFull(timeout time.Duration) Option {
	return func(s *settings) { s.drop, s.blockTimeout = false, timeout }
}

// WithDropOnFull makes Log return ErrQueueFull at once when the queue is
// full, counting the event in Dropped.
func WithDropOnFull() Option {
	return func(s *settings) { s.drop = true }
}

// WithRetry bounds the writer's retries of one batch: at most maxAttempts
// requests (0: no limit) over at most maxElapsed (0: DefaultMaxElapsed).
// Between attempts it waits a jittered, doubling delay starting at
// Options.Backoff, and at least what a Retry-After header asks.
func WithRetry(maxAttempts int, maxElapsed time.Duration) Option {
	return func(s *settings) {
		s.maxAttempts = max(maxAttempts, 0)
		if maxElapsed > 0 {
			s.maxElapsed = maxElapsed
		}
	}
}

// WithErrorHandler sets a function the writer calls, from its own
// goroutine, with each error about events Log queued that will not be
// stored: a *RefusedError per refused event, an *UndeliveredError per batch
// given up on. Close reports them too.
func WithErrorHandler(f func(error)) Option {
	return func(s *settings) { s.onError = f }
}
