package auth

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrRateLimited is a request over its token's rate limit (429).
var ErrRateLimited = errors.New("token over its rate limit")

// RateLimitError is the error of Allow: which token, its limit, and how long
// to wait before the next request can pass. It wraps ErrRateLimited.
type RateLimitError struct {
	Name       string
	PerSecond  float64
	Burst      int
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("token %q is over its rate limit of %g requests/s (bursts of %d); retry in %v",
		e.Name, e.PerSecond, e.Burst, e.RetryAfter.Round(time.Millisecond))
}

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// rateLimits is a token bucket per token name. The names are those of
// authenticated tokens, so there are at most as many buckets as tokens.
type rateLimits struct {
	mu        sync.Mutex
	perSecond float64
	burst     int
	byName    map[string]*rate.Limiter
}

// SetRateLimit limits every token to perSecond requests per second, in
// bursts of up to burst (0: twice perSecond, at least 1). perSecond <= 0
// removes the limit. Safe to call at any time; buckets restart full.
func (s *Store) SetRateLimit(perSecond float64, burst int) {
	s.limits.mu.Lock()
	defer s.limits.mu.Unlock()
	if burst <= 0 {
		burst = max(1, int(math.Min(2*perSecond, math.MaxInt32)))
	}
	s.limits.perSecond, s.limits.burst = perSecond, burst
	s.limits.byName = nil
}

// Allow takes one request from the named token's bucket: nil if it may
// proceed, a *RateLimitError (wrapping ErrRateLimited) if it is over its
// rate. With no limit set it always allows.
func (s *Store) Allow(name string) error {
	return s.limits.allow(name, time.Now())
}

func (r *rateLimits) allow(name string, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perSecond <= 0 {
		return nil
	}
	l := r.byName[name]
	if l == nil {
		if r.byName == nil {
			r.byName = make(map[string]*rate.Limiter)
		}
		l = rate.NewLimiter(rate.Limit(r.perSecond), r.burst)
		r.byName[name] = l
	}
	if l.AllowN(now, 1) {
		return nil
	}
	res := l.ReserveN(now, 1)
	wait := res.DelayFrom(now)
	res.CancelAt(now)
	return &RateLimitError{Name: name, PerSecond: r.perSecond, Burst: r.burst, RetryAfter: wait}
}
