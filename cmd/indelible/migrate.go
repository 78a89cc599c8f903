package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"indelible.dev/cmd/indelible/internal/eventsetup"
	"indelible.dev/cmd/indelible/internal/exitcode"
	"indelible.dev/ledger"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pebblekv"
	"indelible.dev/ledger/kv/pgkv"
)

// migrateBatchBytes is about how many bytes of keys and values one
// transaction of the copy carries.
var migrateBatchBytes = 8 << 20 // a variable for the tests

type migrateConfig struct {
	dataDir string
	to      string
}

func init() {
	var cfg migrateConfig
	cmd := &cobra.Command{
		Use:   "migrate --data DIR --to postgres://...",
		Short: "Move a single-node store into PostgreSQL",
		Long: `migrate copies the store of a single node (the pebble store in <data>/ledger:
the log, its events, tokens, erasures and every other key) into an empty
PostgreSQL database, for indelible serve --store (docs/ha.md). The server
must be stopped. The source is opened read-only and never modified.

It copies every key in key order, then verifies the copy entry by entry
(every key and value of the database against the source), then recomputes
the tree's root from the entries now in the database and compares it with
the root the log signed. Only then does it set the log's head in the
database (the fence), so a copy that failed half-way is never taken for a
log. A database that already holds anything is refused.

Afterwards start serve with --store and the same log key and master key:
every receipt, proof and token issued before the move stays valid.`,
		Args: cobra.NoArgs,
		RunE: untilSignal(func(ctx context.Context, out io.Writer) error { return runMigrate(ctx, cfg, out) }),
	}
	f := cmd.Flags()
	f.StringVar(&cfg.dataDir, "data", defaultDataDir, "data directory of the single-node server (its store is <data>/ledger)")
	f.StringVar(&cfg.to, "to", "", "the PostgreSQL database to move the store into, postgres://USER@HOST:PORT/DB?... (empty: no log in it yet)")
	rootCmd.AddCommand(cmd)
}

// migrateStats is what runMigrate did.
type migrateStats struct {
	keys, bytes int64
}

func runMigrate(ctx context.Context, cfg migrateConfig, out io.Writer) error {
	if cfg.to == "" {
		return exitcode.Usage("--to is required: the PostgreSQL database, postgres://USER@HOST:PORT/DB")
	}
	if !pgkv.IsDSN(cfg.to) {
		return exitcode.Usage("--to %q: want a postgres:// or postgresql:// URL", redactURL(cfg.to))
	}
	if _, err := pgkv.Config(cfg.to); err != nil {
		return exitcode.Usage("--to: %v", err)
	}
	dir := filepath.Join(cfg.dataDir, ledgerDir)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("no store to migrate in %s: %w", cfg.dataDir, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.dataDir, eventsetup.TokensFile)); err == nil {
		return fmt.Errorf("%s still holds %s, from before tokens lived in the store: start serve once on this data directory "+
			"(it moves them into the store), stop it, then migrate", cfg.dataDir, eventsetup.TokensFile)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := pebblekv.Open(dir, pebblekv.Options{ReadOnly: true, Logger: logger})
	if err != nil {
		return fmt.Errorf("%w (is a server still running on it? stop it first)", err)
	}
	defer src.Close()
	tree, origin, ok, err := ledger.StoredTree(src)
	if err != nil {
		return fmt.Errorf("reading the source store: %w", err)
	}
	if !ok {
		return fmt.Errorf("%s holds no log: nothing to migrate", dir)
	}
	// Check the source before anything is written anywhere.
	fmt.Fprintf(out, "source: %s, log %s, %d entries\n", dir, origin, tree.N)
	if err := ledger.CheckEntries(src, tree, nil); err != nil {
		return fmt.Errorf("the source store does not verify, refusing to migrate it: %w", err)
	}

	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	dst, err := pgkv.Open(octx, cfg.to, pgkv.Options{Logger: logger, Exclusive: true})
	cancel()
	if err != nil {
		return fmt.Errorf("opening the target database: %w", err)
	}
	defer dst.Close()
	if err := checkEmptyTarget(ctx, dst); err != nil {
		return err
	}

	start := time.Now()
	st, err := copyStore(ctx, src, dst, out)
	if err != nil {
		return fmt.Errorf("copying (the target now holds a partial copy, which no server will take for a log: "+
			"drop its tables indelible_kv, indelible_fence and indelible_lease, or use another empty database, and run migrate again): %w", err)
	}
	copied := time.Since(start)
	fmt.Fprintf(out, "copied %d keys (%.1f MiB) in %v; verifying\n", st.keys, float64(st.bytes)/(1<<20), copied.Round(time.Millisecond))
	if err := verifyCopy(src, dst); err != nil {
		return fmt.Errorf("verifying the copy: %w", err)
	}
	fmt.Fprintf(out, "verified %d keys; checking the tree root from the copied entries\n", st.keys)
	if err := ledger.CheckEntries(dst, tree, nil); err != nil {
		return fmt.Errorf("checking the copy: %w", err)
	}
	// The fence: the log exists in the database from this commit on.
	b := dst.NewBatch(0)
	defer b.Close()
	b.Advance(kv.Head{Size: -1}, kv.Head{Size: tree.N, Root: tree.Hash[:]})
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("recording the log's head in the database: %w", err)
	}
	total := time.Since(start)
	fmt.Fprintf(out, "migrated: %d entries (root %v), %d keys in %v (%.0f entries/s)\n",
		tree.N, tree.Hash, st.keys, total.Round(time.Millisecond), float64(tree.N)/total.Seconds())
	fmt.Fprintf(out, "next: indelible serve --store '%s' with the same --key and --master-key; the source in %s is unchanged (keep it until the new node serves)\n",
		redactURL(cfg.to), dir)
	return nil
}

// checkEmptyTarget refuses a database holding a log or any key.
func checkEmptyTarget(ctx context.Context, dst *pgkv.Store) error {
	head, exists, err := dst.FenceHead(ctx)
	if err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("the target database already holds a log (size %d): migrate only into an empty database", head.Size)
	}
	any := false
	if err := dst.Scan(nil, nil, false, func(k, v []byte) bool { any = true; return false }); err != nil {
		return err
	}
	if any {
		return errors.New("the target database is not empty (indelible_kv holds keys, perhaps from a failed migrate): " +
			"drop its tables indelible_kv, indelible_fence and indelible_lease, or use another empty database")
	}
	return nil
}

// loader is a store that bulk-loads keys it does not hold yet (pgkv: COPY).
type loader interface {
	Load(ctx context.Context, keys, values [][]byte) error
}

// copyStore copies every key of src into dst in key order, in transactions of
// about migrateBatchBytes (COPY on PostgreSQL), one being written while the
// next is read, printing progress about every second.
func copyStore(ctx context.Context, src kv.Store, dst kv.Store, out io.Writer) (migrateStats, error) {
	write := func(keys, values [][]byte) error {
		b := dst.NewBatch(migrateBatchBytes)
		defer b.Close()
		for i := range keys {
			if err := b.Set(keys[i], values[i]); err != nil {
				return err
			}
		}
		return b.Commit(true)
	}
	if l, ok := dst.(loader); ok {
		write = func(keys, values [][]byte) error { return l.Load(ctx, keys, values) }
	}
	type chunk struct{ keys, values [][]byte }
	chunks := make(chan chunk, 1)
	failed := make(chan struct{}) // closed when a write fails
	werr := make(chan error, 1)
	go func() {
		var err error
		for c := range chunks {
			if err == nil {
				if err = write(c.keys, c.values); err != nil {
					close(failed)
				}
			}
		}
		werr <- err
	}()
	var st migrateStats
	var cur chunk
	var curBytes int
	var ferr error
	last := time.Now()
	send := func() bool {
		select {
		case chunks <- cur:
		case <-failed:
			return false
		}
		cur, curBytes = chunk{}, 0
		return true
	}
	err := src.Scan(nil, nil, false, func(k, v []byte) bool {
		if ferr = ctx.Err(); ferr != nil {
			return false
		}
		cur.keys = append(cur.keys, bytes.Clone(k))
		cur.values = append(cur.values, bytes.Clone(v))
		st.keys++
		st.bytes += int64(len(k) + len(v))
		curBytes += len(k) + len(v)
		if curBytes >= migrateBatchBytes {
			if !send() {
				return false
			}
			if time.Since(last) >= time.Second {
				last = time.Now()
				fmt.Fprintf(out, "copying: %d keys, %.1f MiB\n", st.keys, float64(st.bytes)/(1<<20))
			}
		}
		return true
	})
	if err == nil {
		err = ferr
	}
	if err == nil && len(cur.keys) > 0 {
		send()
	}
	close(chunks)
	if e := <-werr; err == nil {
		err = e
	}
	return st, err
}

// verifyCopy compares dst with src key by key and value by value over the
// whole key space: src is read in chunks, and dst over the same key range
// (from the end of the previous chunk), so a key in dst that src lacks is
// found too.
func verifyCopy(src, dst kv.Store) error {
	type pair struct{ k, v []byte }
	var chunk []pair
	var size int
	var lo []byte // dst is compared from here (nil: the start)
	compare := func(hi []byte) error {
		i := 0
		var bad error
		err := dst.Scan(lo, hi, false, func(k, v []byte) bool {
			if i >= len(chunk) || !bytes.Equal(k, chunk[i].k) {
				want := "nothing"
				if i < len(chunk) {
					want = fmt.Sprintf("%x", chunk[i].k)
				}
				bad = fmt.Errorf("the database holds key %x where the source holds %s", k, want)
				return false
			}
			if !bytes.Equal(v, chunk[i].v) {
				bad = fmt.Errorf("key %x: the database's value differs from the source's", k)
				return false
			}
			i++
			return true
		})
		if err == nil {
			err = bad
		}
		if err == nil && i != len(chunk) {
			err = fmt.Errorf("key %x of the source is missing from the database", chunk[i].k)
		}
		chunk, size, lo = chunk[:0], 0, hi
		return err
	}
	var cerr error
	err := src.Scan(nil, nil, false, func(k, v []byte) bool {
		chunk = append(chunk, pair{bytes.Clone(k), bytes.Clone(v)})
		size += len(k) + len(v)
		if size >= migrateBatchBytes {
			// The chunk covers [lo, last key]: up to its successor.
			cerr = compare(append(bytes.Clone(k), 0))
		}
		return cerr == nil
	})
	if err == nil {
		err = cerr
	}
	if err == nil {
		err = compare(nil)
	}
	return err
}
