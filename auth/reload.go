package auth

import (
	"fmt"
	"slices"
)

// Reload replaces the tokens in memory with those the Persister holds now:
// a cluster's standby follows the token changes the active node writes to
// the shared store (a revoked token stops authenticating here at the next
// Reload). The last-use times kept in memory are kept where newer than the
// stored ones. A store that reloads must not write (Create, Revoke, Flush):
// Reload does not merge its own writes.
func (s *Store) Reload() error {
	recs, err := s.p.Load()
	if err != nil {
		return fmt.Errorf("auth: reloading tokens: %w", err)
	}
	byName := make(map[string]*entry, len(recs))
	byHash := make(map[[32]byte]*entry, len(recs))
	for _, r := range recs {
		if _, ok := byName[r.Name]; ok {
			return fmt.Errorf("auth: reloading tokens: name %q twice", r.Name)
		}
		if _, ok := byHash[r.Hash]; ok {
			return fmt.Errorf("auth: reloading tokens: token %q has another's hash", r.Name)
		}
		r.Scopes = slices.Clone(r.Scopes)
		e := &entry{rec: r}
		if !r.LastUsed.IsZero() {
			e.lastUsed.Store(r.LastUsed.UnixNano())
			e.persisted = r.LastUsed.UnixNano()
		}
		byName[r.Name] = e
		byHash[r.Hash] = e
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, e := range byName {
		if old, ok := s.byName[name]; ok && old.lastUsed.Load() > e.lastUsed.Load() {
			e.lastUsed.Store(old.lastUsed.Load())
		}
	}
	s.byName, s.byHash = byName, byHash
	return nil
}
