package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"

	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pgkv"
)

// envStoreVar is serve --store's environment variable.
const envStoreVar = "INDELIBLE_STORE"

// storeURL returns --store, or $INDELIBLE_STORE, or "" (pebble in the data
// directory).
func storeURL(cfg serveConfig) string {
	if cfg.store != "" {
		return cfg.store
	}
	return os.Getenv(envStoreVar)
}

// openStore opens the store serve runs on: nil for pebble in the data
// directory (the ledger opens it), or PostgreSQL. A single node holds the
// store's owner lock for its life and refuses to start while another node
// serves the store (a single node holding the lock, or a cluster node
// holding the lease); then it takes the next epoch of the store's fence, so
// that a node that lost its lock (its session ended) is fenced off from its
// next commit on.
func openStore(ctx context.Context, cfg serveConfig, logger *slog.Logger) (kv.Store, error) {
	dsn := storeURL(cfg)
	if dsn == "" {
		return nil, nil
	}
	if !pgkv.IsDSN(dsn) {
		return nil, fmt.Errorf("--store (or $%s): want a postgres:// or postgresql:// URL, got %q", envStoreVar, redactURL(dsn))
	}
	opts := pgkv.Options{Logger: logger, Exclusive: true}
	if cfg.active != nil {
		// A cluster's active node: the epoch its takeover set in the
		// fence, and its sessions named for the next takeover (cluster.go).
		dsn, opts.Epoch = cfg.active.dsn, cfg.active.epoch
		// Commits are bounded by the lease: one that outlives it is
		// ambiguous, and stops the log.
		opts.Timeout = cfg.cluster.lease
	}
	s, err := pgkv.Open(ctx, dsn, opts)
	if errors.Is(err, pgkv.ErrBusy) {
		return nil, fmt.Errorf("%w, use --lease for a cluster (every node with --lease)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening the store %s: %w", redactURL(dsn), err)
	}
	logger.Info("store: PostgreSQL", "url", redactURL(dsn), "epoch", s.Epoch())
	return s, nil
}

// redactURL hides a URL's password (and its query, which may hold one).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "(an invalid URL, not shown)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if u.RawQuery != "" {
		u.RawQuery = "..."
	}
	return u.String()
}
