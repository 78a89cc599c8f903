package auth

import (
	"errors"
	"testing"
	"time"
)

// TestRateLimits: per token name, a burst then the rate; the error names
// the limit and says when to retry; no limit by default; the server's
// name is reserved.
func TestRateLimits(t *testing.T) {
	var r rateLimits
	now := time.Unix(1000, 0)
	for range 100 {
		if err := r.allow("a", now); err != nil {
			t.Fatalf("no limit set: %v", err)
		}
	}
	r.perSecond, r.burst = 2, 3
	for i := range 3 {
		if err := r.allow("a", now); err != nil {
			t.Fatalf("request %d of the burst: %v", i, err)
		}
	}
	err := r.allow("a", now)
	var rl *RateLimitError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &rl) || rl.Name != "a" || rl.RetryAfter != 500*time.Millisecond {
		t.Fatalf("over the burst: %v", err)
	}
	if err := r.allow("b", now); err != nil {
		t.Fatalf("another token: %v", err)
	}
	if err := r.allow("a", now.Add(500*time.Millisecond)); err != nil {
		t.Fatalf("after Retry-After: %v", err)
	}

	s, err := Open(NewFilePersister(t.TempDir()+"/tokens.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ServerActor, []Scope{ScopeRead}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("creating a token named %q: %v", ServerActor, err)
	}
}
