// Package auth holds the API tokens and their scopes, and decides what a
// request may do. Tokens are 256-bit random values shown once; only their
// SHA-256 is stored, and a presented token is looked up by its hash and
// compared in constant time. No token is ever logged.
//
// It depends on neither echo nor pebble: the store persists through the
// small Persister interface (the events layer stores the hashes in the
// ledger's extension namespace, or a file).
package auth

import (
	"errors"
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
	ErrForbidden       = errors.New("token lacks the required scope")     // 403
	ErrExists          = errors.New("a token with that name exists")      // 409
	ErrNoToken         = errors.New("no such token")                      // 404
	ErrInvalid         = errors.New("invalid token request")              // 400: bad name or scope
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
	hash     [32]byte
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
type Store struct{}

// Open loads the tokens from p.
func Open(p Persister, now func() time.Time) (*Store, error) { panic("unimplemented") }

// Create makes a new token, persists its hash, and returns its record and
// the secret (shown once). Names are 1..MaxNameLen of [A-Za-z0-9._@-];
// scopes non-empty and known.
func (s *Store) Create(name string, scopes []Scope) (Token, string, error) { panic("unimplemented") }

// List returns every token's public record, revoked ones included, by name.
func (s *Store) List() []Token { panic("unimplemented") }

// Revoke revokes the named token at once (ErrNoToken if none).
func (s *Store) Revoke(name string) error { panic("unimplemented") }

// Authenticate returns the live token whose secret is secret, or
// ErrUnauthenticated; it records last use (in memory, persisted lazily).
func (s *Store) Authenticate(secret string) (Token, error) { panic("unimplemented") }

// Allows reports whether t holds scope (admin implies every scope).
func (t Token) Allows(scope Scope) bool { panic("unimplemented") }

// ParseScopes parses "append,read" into scopes (ErrInvalid for an unknown one).
func ParseScopes(s string) ([]Scope, error) { panic("unimplemented") }
