package auth

import (
	"errors"
	"sync"
	"testing"

	"indelible.dev/internal/tlogtest"
)

// sharedPersister is one set of records two stores read and write, as two
// nodes share their database's.
type sharedPersister struct {
	mu   sync.Mutex
	recs map[string]Record
}

func (p *sharedPersister) Load() ([]Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Record
	for _, r := range p.recs {
		out = append(out, r)
	}
	return out, nil
}

func (p *sharedPersister) Put(r Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recs[r.Name] = r
	return nil
}

// TestReload: a second store over the same records (a standby's) sees the
// tokens another store (the active node's) created and revoked once it
// reloads, and not before.
func TestReload(t *testing.T) {
	c := tlogtest.NewClock()
	p := &sharedPersister{recs: map[string]Record{}}
	active, err := Open(p, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := active.Create("ci", []Scope{ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	standby, err := Open(p, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := standby.Authenticate(secret); err != nil {
		t.Fatal(err)
	}
	_, late, err := active.Create("late", []Scope{ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	if err := active.Revoke("ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := standby.Authenticate(late); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a token created after the standby loaded: %v before Reload", err)
	}
	if err := standby.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := standby.Authenticate(secret); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a revoked token authenticated after Reload: %v", err)
	}
	if _, err := standby.Authenticate(late); err != nil {
		t.Fatalf("a new token after Reload: %v", err)
	}
	if got := len(standby.List()); got != 2 {
		t.Fatalf("%d tokens listed after Reload, want 2", got)
	}
}
