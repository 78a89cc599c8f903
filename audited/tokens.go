package audited

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/ledger"
)

// Tokens live in the store beside the events: one key per token
// (eventstore.TokenKey(name)), its value the token's public record and the hex
// SHA-256 of its secret, as JSON (the same fields tokens.json had). A token
// change is written in the batch that appends its indelible.token.* event.

// tokenRecord is the stored form of a token.
type tokenRecord struct {
	auth.Token
	SHA256 string `json:"sha256"`
}

func encodeToken(r auth.Record) ([]byte, error) {
	return json.Marshal(tokenRecord{Token: r.Token, SHA256: hex.EncodeToString(r.Hash[:])})
}

func decodeToken(key, v []byte) (auth.Record, error) {
	var tr tokenRecord
	if err := json.Unmarshal(v, &tr); err != nil {
		return auth.Record{}, fmt.Errorf("audited: token record %q: %w", key, err)
	}
	r := auth.Record{Token: tr.Token}
	h, err := hex.DecodeString(tr.SHA256)
	if err != nil || len(h) != len(r.Hash) {
		return auth.Record{}, fmt.Errorf("audited: token record %q: bad sha256", key)
	}
	copy(r.Hash[:], h)
	if string(eventstore.TokenKey(r.Name)) != string(key) {
		return auth.Record{}, fmt.Errorf("audited: token record %q holds token %q", key, r.Name)
	}
	return r, nil
}

// storePersister is the auth.Persister of the token records in the log's
// store. Its Put (last-use times, revocations retried) is a synced
// extension write of its own; token changes are written by the Service,
// with their events.
type storePersister struct{ log *ledger.Log }

func (p storePersister) Load() ([]auth.Record, error) {
	var out []auth.Record
	var ferr error
	lo, hi := eventstore.TokenKeys()
	err := p.log.ScanExt(lo, hi, false, func(k, v []byte) bool {
		r, err := decodeToken(k, v)
		if err != nil {
			ferr = err
			return false
		}
		out = append(out, r)
		return true
	})
	if err == nil {
		err = ferr
	}
	return out, err
}

func (p storePersister) Put(r auth.Record) error {
	v, err := encodeToken(r)
	if err != nil {
		return err
	}
	return p.log.WriteExt(func(w ledger.Writer) error { return w.Set(eventstore.TokenKey(r.Name), v) })
}

// OpenTokens opens the token store kept in log's store. now defaults to
// time.Now.
func OpenTokens(log *ledger.Log, now func() time.Time) (*auth.Store, error) {
	return auth.Open(storePersister{log}, now)
}

// recordToken returns the put function of a token change: it appends the
// change's event (action, done by by) and writes the token's record in the
// same batch.
func (s *Service) recordToken(ctx context.Context, action, by string) func(auth.Record) error {
	return func(r auth.Record) error {
		v, err := encodeToken(r)
		if err != nil {
			return err
		}
		ev := auth.Event(action, by, r.Token)
		_, err = s.l.Record(ctx, by, []event.Event{ev}, func(_ int64, w ledger.Writer) error {
			return w.Set(eventstore.TokenKey(r.Name), v)
		})
		if err != nil {
			return fmt.Errorf("recording %s of %q in the log: %w", action, r.Name, err)
		}
		return nil
	}
}

// CreateToken creates a token named name with scopes, as the admin token
// named by, and returns its record and its secret (shown once). The token
// and its indelible.token.create event are one batch: if the event cannot
// be appended, the token does not exist. Errors: auth's (ErrInvalid,
// ErrExists) and the append's.
func (s *Service) CreateToken(ctx context.Context, by, name string, scopes []auth.Scope) (auth.Token, string, error) {
	tok, secret, err := s.tokens.CreateWith(name, scopes, s.recordToken(ctx, auth.ActionCreate, by))
	if err != nil {
		return auth.Token{}, "", fmt.Errorf("creating token %q: %w", name, err)
	}
	return tok, secret, nil
}

// RevokeToken revokes the named token, as the admin token named by, at
// once, and returns its record. It is stored with its
// indelible.token.revoke event in one batch. If that fails the error says
// so, and the revocation still holds: it fails closed, in memory and, from
// the next Flush of last-use times (at the latest Close), in the store too,
// without its event until the token is revoked again, which records it.
func (s *Service) RevokeToken(ctx context.Context, by, name string) (auth.Token, error) {
	tok, err := s.tokens.RevokeWith(name, s.recordToken(ctx, auth.ActionRevoke, by))
	if err != nil {
		if errors.Is(err, auth.ErrNoToken) {
			return auth.Token{}, fmt.Errorf("revoking token %q: %w", name, err)
		}
		return tok, fmt.Errorf("token %q is revoked, but %w", name, err)
	}
	return tok, nil
}

// Bootstrap creates the first admin token, named name, a bootstrap token
// (auth.Token.Bootstrap), when the store holds no token at all, and returns
// its secret and true; with a token in
// the store it does nothing ("", false). The token and its
// indelible.token.create event (actor and submitter ServerActor) are one
// batch.
//
// No token in a log that already has entries means the tokens were lost:
// then it fails with ErrTokensLost rather than silently minting another
// admin, unless again is set (the operator asked for a new admin token;
// it is recorded like the first).
func (s *Service) Bootstrap(ctx context.Context, name string, scopes []auth.Scope, again bool) (secret string, created bool, err error) {
	if len(s.tokens.List()) > 0 {
		return "", false, nil
	}
	if cp, _ := s.log.Published(); cp.N > 0 && !again {
		return "", false, fmt.Errorf("%w: the log holds %d entries, so tokens were made before and are lost", ErrTokensLost, cp.N)
	}
	_, secret, err = s.tokens.CreateBootstrapWith(name, scopes, s.recordToken(ctx, auth.ActionCreate, ServerActor))
	if err != nil {
		return "", false, fmt.Errorf("creating the first admin token: %w", err)
	}
	return secret, true, nil
}

// NewBootstrapToken creates a bootstrap admin token (auth.Token.Bootstrap)
// named name, whatever tokens exist, with its indelible.token.create event
// (actor and submitter ServerActor) in one batch: serve --new-admin-token,
// the way back in once no admin token works.
func (s *Service) NewBootstrapToken(ctx context.Context, name string, scopes []auth.Scope) (auth.Token, string, error) {
	t, secret, err := s.tokens.CreateBootstrapWith(name, scopes, s.recordToken(ctx, auth.ActionCreate, ServerActor))
	if err != nil {
		return auth.Token{}, "", fmt.Errorf("creating a new admin token: %w", err)
	}
	return t, secret, nil
}

// MigrateTokenFile moves the tokens of a tokens.json file (the store of
// earlier versions) at path into the log's store, once: every token of the
// file that the store does not hold yet is written (in one synced batch),
// then the file is renamed to path+".migrated" (kept for a downgrade; it
// holds names, scopes and hashes, never a secret). A token already in the
// store keeps the store's record (it may have been revoked since). A
// missing file is nothing to do. Run it before the store is opened; it is
// idempotent, so a crash half-way is finished by the next start. It
// returns how many tokens it wrote.
func MigrateTokenFile(log *ledger.Log, path string) (int, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	recs, err := auth.NewFilePersister(path).Load()
	if err != nil {
		return 0, fmt.Errorf("migrating %s: %w", path, err)
	}
	have, err := storePersister{log}.Load()
	if err != nil {
		return 0, fmt.Errorf("migrating %s: %w", path, err)
	}
	var todo []auth.Record
	for _, r := range recs {
		if !slices.ContainsFunc(have, func(h auth.Record) bool { return h.Name == r.Name }) {
			todo = append(todo, r)
		}
	}
	if len(todo) > 0 {
		err := log.WriteExt(func(w ledger.Writer) error {
			for _, r := range todo {
				v, err := encodeToken(r)
				if err != nil {
					return err
				}
				if err := w.Set(eventstore.TokenKey(r.Name), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("migrating %s: %w", path, err)
		}
	}
	// The tokens are durable in the store: the file goes out of the way.
	if err := os.Rename(path, path+".migrated"); err != nil {
		return len(todo), fmt.Errorf("migrating %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return len(todo), nil
}
