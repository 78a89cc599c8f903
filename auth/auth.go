// Package auth holds the API tokens and their scopes, and decides what a
// request may do. Tokens are 256-bit random values shown once; only their
// SHA-256 is stored, and a presented token is looked up by its hash and
// compared in constant time. No token is ever logged.
//
// It depends on neither echo nor pebble: the store persists through the
// small Persister interface (a server keeps the hashes in the ledger's
// extension namespace, written with the events recording each change:
// package audited; FilePersister reads the tokens.json of earlier
// versions).
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Scope is one permission. A token may hold several; Admin implies the others.
type Scope string

const (
	ScopeAppend Scope = "append"
	ScopeRead   Scope = "read"
	ScopeAdmin  Scope = "admin"
)

// Errors callers branch on.
var (
	ErrUnauthenticated = errors.New("missing, unknown or revoked token") // 401
	ErrForbidden       = errors.New("token lacks the required scope")    // 403
	ErrExists          = errors.New("a token with that name exists")     // 409
	ErrNoToken         = errors.New("no such token")                     // 404
	ErrInvalid         = errors.New("invalid token request")             // 400: bad name or scope
)

// MaxNameLen bounds a token's name (it becomes submitted_by and actor ids).
const MaxNameLen = 64

// Token is a token's public record: never the secret.
type Token struct {
	Name     string    `json:"name"`
	Scopes   []Scope   `json:"scopes"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Revoked  time.Time `json:"revoked,omitzero"`
	// Expires, if set, is when the token stops authenticating.
	Expires time.Time `json:"expires,omitzero"`
	// Bootstrap marks an admin token a server makes for itself (the first
	// one, Store.Bootstrap, or one asked for with serve --new-admin-token):
	// it expires BootstrapTTL after its creation, and stops authenticating
	// for good as soon as an admin token made after it exists (see
	// Token.Lapsed).
	Bootstrap bool `json:"bootstrap,omitempty"`
}

// BootstrapTTL is how long a bootstrap token lives at most: long enough to
// create the operator's own admin token, short enough that a copy of the
// data directory that holds it (admin.token) soon grants nothing.
const BootstrapTTL = 24 * time.Hour

// Lapsed returns why t may not authenticate at now although it is not
// revoked, or nil: it expired, or it is a bootstrap token and newerAdmin
// (a token with the admin scope was made after it, live or not: once an
// operator has an admin token of their own, the bootstrap token is done).
// The rule reads only the token records, wherever they are stored.
func (t Token) Lapsed(now time.Time, newerAdmin bool) error {
	switch {
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return fmt.Errorf("%w: token %q expired at %s", ErrUnauthenticated, t.Name, t.Expires.UTC().Format(time.RFC3339))
	case t.Bootstrap && newerAdmin:
		return fmt.Errorf("%w: token %q was a bootstrap token, superseded by another admin token", ErrUnauthenticated, t.Name)
	}
	return nil
}

// Record is what is persisted for a token: its public record and the SHA-256
// of the secret.
type Record struct {
	Token
	Hash [32]byte
}

// Persister stores token records durably. Put must be durable when it
// returns.
type Persister interface {
	Load() ([]Record, error)
	Put(Record) error
}

// Store is the set of tokens, in memory, backed by a Persister. Safe for
// concurrent use. Revocation takes effect at once.
//
// Secrets are "ind_" followed by 43 characters of unpadded base64url (32
// random bytes from crypto/rand). The store keeps only SHA-256(secret), the
// hash of the whole string, prefix included. A presented secret is hashed,
// looked up by its hash, and the stored hash compared with crypto/subtle.
//
// Names are never reused, not even after revocation: past events name
// their writer by its token name (submitted_by), so a name must always mean
// one token.
//
// Last use is kept in memory by Authenticate and written to the Persister
// only by Flush (and, for the token revoked, by Revoke), so authenticating
// never waits for a disk; a server calls Flush now and then and on exit.
type Store struct {
	p   Persister
	now func() time.Time

	// wmu serialises the writers (Create, Revoke, Flush), which call the
	// Persister without holding mu, so authentication never waits for it.
	wmu sync.Mutex

	// mu guards byName and byHash and each entry's rec. Authenticate takes
	// it for reading; writers hold wmu, then take it to change the maps.
	mu     sync.RWMutex
	byName map[string]*entry
	byHash map[[32]byte]*entry

	// limits is the per-token rate limit (ratelimit.go); it has its own lock.
	limits rateLimits
}

// entry is one token in memory.
type entry struct {
	rec Record // guarded by Store.mu

	lastUsed  atomic.Int64 // unix nanoseconds of the last Authenticate, 0 if never
	persisted int64        // lastUsed as last written; guarded by Store.wmu
}

// SecretPrefix starts every secret (it lets secret scanners recognise one).
const SecretPrefix = "ind_"

// maxSecretLen bounds what Authenticate hashes.
const maxSecretLen = 256

// Open loads the tokens from p. now defaults to time.Now.
func Open(p Persister, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	recs, err := p.Load()
	if err != nil {
		return nil, fmt.Errorf("auth: loading tokens: %w", err)
	}
	s := &Store{p: p, now: now, byName: map[string]*entry{}, byHash: map[[32]byte]*entry{}}
	for _, r := range recs {
		if _, ok := s.byName[r.Name]; ok {
			return nil, fmt.Errorf("auth: loading tokens: name %q twice", r.Name)
		}
		if _, ok := s.byHash[r.Hash]; ok {
			return nil, fmt.Errorf("auth: loading tokens: token %q has another's hash", r.Name)
		}
		r.Scopes = slices.Clone(r.Scopes)
		e := &entry{rec: r}
		if !r.LastUsed.IsZero() {
			e.lastUsed.Store(r.LastUsed.UnixNano())
			e.persisted = r.LastUsed.UnixNano()
		}
		s.byName[r.Name] = e
		s.byHash[r.Hash] = e
	}
	return s, nil
}

// Create makes a new token, persists its hash, and returns its record and
// the secret (shown once). Names are 1..MaxNameLen of [A-Za-z0-9._@-];
// scopes non-empty and known (duplicates are dropped, the order is
// append, read, admin). Errors: ErrInvalid, ErrExists (revoked names
// included), or the Persister's.
func (s *Store) Create(name string, scopes []Scope) (Token, string, error) {
	return s.CreateWith(name, scopes, s.p.Put)
}

// CreateWith is Create with put in place of the Persister's Put: put must
// store r durably where the Persister's Load finds it, and may commit other
// writes in the same atomic step (the record of the creation in the log).
// The token exists, in memory and for Authenticate, only once put has
// returned nil; if put fails, it does not exist.
func (s *Store) CreateWith(name string, scopes []Scope, put func(Record) error) (Token, string, error) {
	return s.create(name, scopes, false, put)
}

// CreateBootstrapWith is CreateWith for a bootstrap token (see
// Token.Bootstrap): a server's first admin token, or its way back in when
// no admin token works.
func (s *Store) CreateBootstrapWith(name string, scopes []Scope, put func(Record) error) (Token, string, error) {
	return s.create(name, scopes, true, put)
}

// create is CreateWith; a bootstrap token gets Bootstrap and an expiry.
func (s *Store) create(name string, scopes []Scope, bootstrap bool, put func(Record) error) (Token, string, error) {
	if err := checkName(name); err != nil {
		return Token{}, "", err
	}
	scopes, err := normScopes(scopes)
	if err != nil {
		return Token{}, "", err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Token{}, "", fmt.Errorf("auth: creating token %q: %w", name, err)
	}
	secret := SecretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])

	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	_, exists := s.byName[name]
	s.mu.RUnlock()
	if exists {
		return Token{}, "", fmt.Errorf("auth: creating token %q: %w", name, ErrExists)
	}
	r := Record{
		Token: Token{Name: name, Scopes: scopes, Created: s.now().UTC()},
		Hash:  sha256.Sum256([]byte(secret)),
	}
	if bootstrap {
		r.Bootstrap, r.Expires = true, r.Created.Add(BootstrapTTL)
	}
	// Durable first: a token is usable only once its hash is stored.
	if err := put(r); err != nil {
		return Token{}, "", fmt.Errorf("auth: creating token %q: %w", name, err)
	}
	e := &entry{rec: r}
	s.mu.Lock()
	s.byName[name] = e
	s.byHash[r.Hash] = e
	s.mu.Unlock()
	return r.Token.clone(), secret, nil
}

// Bootstrap creates the token name with scopes if the store holds no token
// at all (a server's first start), returning its secret and true; otherwise
// it does nothing and returns "", false. The token is a bootstrap token:
// it expires after BootstrapTTL, and lapses once an admin token made after
// it exists (Token.Lapsed).
func (s *Store) Bootstrap(name string, scopes []Scope) (secret string, created bool, err error) {
	s.mu.RLock()
	n := len(s.byName)
	s.mu.RUnlock()
	if n > 0 {
		return "", false, nil
	}
	_, secret, err = s.create(name, scopes, true, s.p.Put)
	if errors.Is(err, ErrExists) {
		return "", false, nil // created concurrently
	}
	if err != nil {
		return "", false, err
	}
	return secret, true, nil
}

// List returns every token's public record, revoked ones included, by name.
func (s *Store) List() []Token {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Token, 0, len(s.byName))
	for _, e := range s.byName {
		t := e.rec.Token.clone()
		if lu := e.lastUsed.Load(); lu != 0 {
			t.LastUsed = time.Unix(0, lu).UTC()
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Token) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Revoke revokes the named token at once (ErrNoToken if none; revoking a
// revoked token again is not an error). The
// revocation holds in memory from the moment Revoke takes the lock, even if
// persisting it then fails (the error is returned): failing open is not an
// option for a revocation.
func (s *Store) Revoke(name string) error {
	_, err := s.RevokeWith(name, s.p.Put)
	return err
}

// RevokeWith is Revoke with put in place of the Persister's Put (see
// CreateWith), returning the token's record as revoked. The revocation
// holds in memory even if put fails.
func (s *Store) RevokeWith(name string, put func(Record) error) (Token, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	e, ok := s.byName[name]
	if !ok {
		s.mu.Unlock()
		return Token{}, fmt.Errorf("auth: revoking token %q: %w", name, ErrNoToken)
	}
	// Revoking twice keeps the first time, and persists again in case the
	// first Put failed.
	if e.rec.Revoked.IsZero() {
		e.rec.Revoked = s.now().UTC()
	}
	r := s.withLastUsed(e)
	s.mu.Unlock()
	if err := put(r); err != nil {
		return r.Token.clone(), fmt.Errorf("auth: revoking token %q: %w", name, err)
	}
	e.persisted = r.LastUsed.UnixNano()
	return r.Token.clone(), nil
}

// withLastUsed returns e's record with the in-memory last use (s.mu held).
func (s *Store) withLastUsed(e *entry) Record {
	r := e.rec
	r.Scopes = slices.Clone(r.Scopes)
	if lu := e.lastUsed.Load(); lu != 0 {
		r.LastUsed = time.Unix(0, lu).UTC()
	}
	return r
}

// Flush persists the last-use times that changed since they were last
// persisted. A server calls it now and then and when it stops.
func (s *Store) Flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	var dirty []*entry
	for _, e := range s.byName {
		if e.lastUsed.Load() != e.persisted {
			dirty = append(dirty, e)
		}
	}
	recs := make([]Record, len(dirty))
	for i, e := range dirty {
		recs[i] = s.withLastUsed(e)
	}
	s.mu.RUnlock()
	for i, r := range recs {
		if err := s.p.Put(r); err != nil {
			return fmt.Errorf("auth: persisting last use of %q: %w", r.Name, err)
		}
		dirty[i].persisted = r.LastUsed.UnixNano()
	}
	return nil
}

// Authenticate returns the live token whose secret is secret, or
// ErrUnauthenticated (wrapped with the reason for a token that expired or
// lapsed, see Token.Lapsed); it records last use (in memory, persisted
// lazily).
func (s *Store) Authenticate(secret string) (Token, error) {
	if len(secret) > maxSecretLen || !strings.HasPrefix(secret, SecretPrefix) {
		return Token{}, ErrUnauthenticated
	}
	h := sha256.Sum256([]byte(secret))
	s.mu.RLock()
	e, ok := s.byHash[h]
	var t Token
	if ok {
		// The map lookup is by hash, which leaks nothing useful about the
		// secret; this constant-time check makes sure the entry found is
		// the one whose hash matched, whatever the map does.
		ok = subtle.ConstantTimeCompare(e.rec.Hash[:], h[:]) == 1 && e.rec.Revoked.IsZero()
		t = e.rec.Token
	}
	newerAdmin := ok && t.Bootstrap && s.newerAdmin(t)
	s.mu.RUnlock()
	if !ok {
		return Token{}, ErrUnauthenticated
	}
	now := s.now().UTC()
	if err := t.Lapsed(now, newerAdmin); err != nil {
		return Token{}, err
	}
	e.lastUsed.Store(now.UnixNano())
	t = t.clone()
	t.LastUsed = now
	return t, nil
}

// Lookup returns the token whose secret is secret and nil if it may
// authenticate, or the reason it may not (revoked, expired, lapsed: see
// Token.Lapsed; ErrUnauthenticated wrapped); ErrNoToken if no token has that
// secret. Unlike Authenticate it records no use: a server checks with it
// what a file it holds is worth.
func (s *Store) Lookup(secret string) (Token, error) {
	h := sha256.Sum256([]byte(secret))
	s.mu.RLock()
	e, ok := s.byHash[h]
	var t Token
	if ok {
		ok = subtle.ConstantTimeCompare(e.rec.Hash[:], h[:]) == 1
		t = e.rec.Token.clone()
	}
	newerAdmin := ok && t.Bootstrap && s.newerAdmin(t)
	s.mu.RUnlock()
	switch {
	case !ok:
		return Token{}, ErrNoToken
	case !t.Revoked.IsZero():
		return t, fmt.Errorf("%w: token %q was revoked", ErrUnauthenticated, t.Name)
	}
	return t, t.Lapsed(s.now().UTC(), newerAdmin)
}

// newerAdmin reports whether a token with the admin scope other than t was
// made at or after t's creation (s.mu held). It scans every token: only
// bootstrap tokens, short-lived, ask.
func (s *Store) newerAdmin(t Token) bool {
	for name, e := range s.byName {
		if name != t.Name && !e.rec.Created.Before(t.Created) && slices.Contains(e.rec.Scopes, ScopeAdmin) {
			return true
		}
	}
	return false
}

// CreateBootstrap makes a bootstrap token (see Token.Bootstrap) as Create
// makes a token: a server's way back in when no admin token is left.
func (s *Store) CreateBootstrap(name string, scopes []Scope) (Token, string, error) {
	return s.create(name, scopes, true, s.p.Put)
}

// LiveAdmin reports whether some token with the admin scope may
// authenticate now.
func (s *Store) LiveAdmin() bool {
	now := s.now().UTC()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.byName {
		t := e.rec.Token
		if slices.Contains(t.Scopes, ScopeAdmin) && t.Revoked.IsZero() && t.Lapsed(now, t.Bootstrap && s.newerAdmin(t)) == nil {
			return true
		}
	}
	return false
}

func (t Token) clone() Token {
	t.Scopes = slices.Clone(t.Scopes)
	return t
}

// Allows reports whether t holds scope (admin implies every scope).
func (t Token) Allows(scope Scope) bool {
	for _, s := range t.Scopes {
		if s == scope || s == ScopeAdmin {
			return true
		}
	}
	return false
}

// allScopes are the known scopes, in their canonical order.
var allScopes = []Scope{ScopeAppend, ScopeRead, ScopeAdmin}

// ParseScopes parses "append,read" into scopes (ErrInvalid for an unknown
// one, an empty item, or no scope at all). Spaces around items are ignored.
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("%w: empty scope in %q (known: append, read, admin)", ErrInvalid, s)
		}
		out = append(out, Scope(item))
	}
	return normScopes(out)
}

// normScopes checks scopes and returns them deduplicated in canonical order.
func normScopes(scopes []Scope) ([]Scope, error) {
	if len(scopes) == 0 {
		return nil, fmt.Errorf("%w: no scope (known: append, read, admin)", ErrInvalid)
	}
	for _, sc := range scopes {
		if !slices.Contains(allScopes, sc) {
			return nil, fmt.Errorf("%w: unknown scope %q (known: append, read, admin)", ErrInvalid, sc)
		}
	}
	var out []Scope
	for _, sc := range allScopes {
		if slices.Contains(scopes, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// checkName checks a token name: 1..MaxNameLen of [A-Za-z0-9._@-].
func checkName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: name must be 1 to %d characters", ErrInvalid, MaxNameLen)
	}
	if name == ServerActor {
		// Reserved: server-recorded events name the server this way.
		return fmt.Errorf("%w: name %q is reserved for the server", ErrInvalid, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '@' || c == '-') {
			return fmt.Errorf("%w: name %q: only A-Z a-z 0-9 . _ @ - are allowed", ErrInvalid, name)
		}
	}
	return nil
}
