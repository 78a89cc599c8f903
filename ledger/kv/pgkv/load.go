package pgkv

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"indelible.dev/ledger/kv"
)

// Load inserts keys[i] = values[i], keys not stored yet, in one transaction
// with COPY (much faster than a batch's upsert), after checking the store's
// epoch as every batch does. indelible migrate copies a store into an empty
// database with it.
func (s *Store) Load(ctx context.Context, keys, values [][]byte) error {
	if len(keys) != len(values) {
		return errors.New("pgkv: Load: keys and values differ in number")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgkv: connecting: %w", err)
	}
	defer tx.Rollback(ctx)
	epoch := s.epoch.Load()
	if _, err := tx.Exec(ctx, checkSQL, epoch); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && strings.Contains(pe.Message, fencedMark) {
			return fmt.Errorf("%w (epoch %d)", kv.ErrFenced, epoch)
		}
		return fmt.Errorf("pgkv: loading: %w", err)
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"indelible_kv"}, []string{"k", "v"},
		pgx.CopyFromSlice(len(keys), func(i int) ([]any, error) { return []any{keys[i], nonNil(values[i])}, nil }))
	if err != nil {
		return fmt.Errorf("pgkv: loading: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgkv: loading: %w", err)
	}
	return nil
}
