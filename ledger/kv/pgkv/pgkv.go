// Package pgkv is the PostgreSQL backend of the kv seam: the store in one
// table of a PostgreSQL database, shared by the nodes of a cluster and fenced
// (see package kv). It is the only package that imports pgx, with
// internal/pgtest.
//
// Schema (created at Open if missing; the names are a contract: the cluster
// code and indelible migrate use them):
//
//	indelible_kv(k bytea PRIMARY KEY, v bytea NOT NULL)
//	indelible_fence(one boolean PRIMARY KEY DEFAULT true CHECK (one),
//	    epoch bigint NOT NULL, size bigint NOT NULL, root bytea NOT NULL)
//	indelible_lease(one boolean PRIMARY KEY DEFAULT true CHECK (one),
//	    node text NOT NULL, url text NOT NULL, epoch bigint NOT NULL,
//	    expires_at timestamptz NOT NULL)
//
// indelible_fence has one row: the epoch of the node allowed to commit and
// the log's head (size -1 and an empty root before a log exists). A batch
// is committed as ONE pipelined implicit transaction: the deletes, the sets
// as one upsert of two bytea arrays, then the fence statement (a batch that
// advances the log updates the row where epoch, size and root are the
// node's; any other batch locks the row FOR SHARE where the epoch is the
// node's). A fence statement that matches no row raises an
// error, so the whole transaction rolls back and Commit returns
// kv.ErrFenced. A connection lost once the batch was sent returns
// kv.ErrAmbiguous: it may have committed.
//
// A single node (Options.Exclusive) also holds OwnerLock, a session-level
// advisory lock, for the store's life, so that a second node started on the
// same database refuses to start (ErrBusy) instead of taking the next epoch
// and fencing the running one off.
//
// bytea compares bytewise (memcmp, then length), the order pebble's
// default comparer gives keys, so scans return the same order on both.
package pgkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"indelible.dev/ledger/kv"
)

// Schema is the DDL Open runs (idempotent).
const Schema = `
CREATE TABLE IF NOT EXISTS indelible_kv (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE IF NOT EXISTS indelible_fence (one boolean PRIMARY KEY DEFAULT true CHECK (one), epoch bigint NOT NULL, size bigint NOT NULL, root bytea NOT NULL);
CREATE TABLE IF NOT EXISTS indelible_lease (one boolean PRIMARY KEY DEFAULT true CHECK (one), node text NOT NULL, url text NOT NULL, epoch bigint NOT NULL, expires_at timestamptz NOT NULL);
INSERT INTO indelible_fence (epoch, size, root) SELECT 0, -1, ''
	WHERE NOT EXISTS (SELECT 1 FROM indelible_fence) ON CONFLICT DO NOTHING;
`

// schemaLock is the advisory lock key Open holds while it creates the schema
// (two nodes opening an empty database at once).
const schemaLock = 0x696e64656c69626c // "indelibl"

// OwnerLock is the session-level advisory lock a single node holds on its
// store for as long as it runs (Options.Exclusive), so that a second node
// started on the same store refuses to start instead of fencing the running
// one off; a cluster's takeover takes it for its transaction (package
// cluster, which has the same constant), so a takeover and a single node
// exclude each other. A crashed node's session ends, and the lock with it.
const OwnerLock = 0x696e64656c6f776e // "indelown"

// ErrBusy means another node is serving the store: a single node holding
// OwnerLock, or a cluster node holding an unexpired lease.
var ErrBusy = errors.New("another node is serving this store")

// fencedMark is in the error a failed fence statement raises.
const fencedMark = "indelible fenced"

// The fence statements. A count other than 1 casts text to int, which
// raises 22P02 with the mark in the message and aborts the transaction;
// the cast depends on the row count, so the planner cannot fold it.
const (
	advanceSQL = `WITH u AS (UPDATE indelible_fence SET size = $4, root = $5
  WHERE epoch = $1 AND size = $2 AND root = $3 RETURNING 1)
SELECT CASE WHEN c = 1 THEN 1 ELSE ('` + fencedMark + `: ' || c)::int END FROM (SELECT count(*) AS c FROM u) s`
	checkSQL = `SELECT CASE WHEN c = 1 THEN 1 ELSE ('` + fencedMark + `: ' || c)::int END
FROM (SELECT count(*) AS c FROM (SELECT 1 FROM indelible_fence WHERE epoch = $1 FOR SHARE) f) s`
	upsertSQL = `INSERT INTO indelible_kv (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[])
ON CONFLICT (k) DO UPDATE SET v = excluded.v`
)

// Options configure Open.
type Options struct {
	// Epoch, if positive, is the epoch the store commits under (a cluster
	// node sets it when it takes the lease). Zero: Open takes the next
	// epoch (the stored one plus one), which fences off any node that was
	// committing under an earlier one: a single node owns the store from
	// the moment it opens it.
	Epoch int64
	// Pool, if set, is used instead of a new pool from the DSN (Close then
	// leaves it open).
	Pool *pgxpool.Pool
	// Logger. Default: slog.Default().
	Logger *slog.Logger
	// Timeout bounds each read and each commit (a commit that times out
	// after it was sent is kv.ErrAmbiguous), and how long Open waits on
	// another session's lock (lock_timeout: a frozen node holding the
	// fence row). Default DefaultTimeout.
	Timeout time.Duration
	// ReadOnly opens the store for reading only (a standby's view,
	// ledger.OpenReader): no schema is created and no epoch taken, and
	// every commit is fenced (its epoch is -1).
	ReadOnly bool
	// Exclusive, with Epoch zero (a single node), holds OwnerLock for the
	// store's life, on a connection of its own, and refuses (ErrBusy)
	// before taking an epoch if another single node holds it or a cluster
	// node holds an unexpired lease: a second node started on the store
	// then fails to start instead of fencing the running one off. Without
	// it, Open takes the next epoch whatever runs (tests of the fence).
	Exclusive bool
}

// DefaultTimeout is Options.Timeout's default.
const DefaultTimeout = 30 * time.Second

// Store is a PostgreSQL store.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	epoch   atomic.Int64
	log     *slog.Logger
	timeout time.Duration

	mu   sync.Mutex
	last *Batch // the last batch applied, which the next waits for

	owner *pgx.Conn // the session holding OwnerLock (Options.Exclusive), or nil
}

var (
	_ kv.Store   = (*Store)(nil)
	_ kv.Epocher = (*Store)(nil)
)

// IsDSN reports whether s names a PostgreSQL database (a postgres:// or
// postgresql:// URL) rather than a directory.
func IsDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Config parses dsn into a pool configuration with the settings the store
// needs: synchronous_commit on (always) and, unless the DSN sets them, an
// idle-in-transaction timeout, so that a frozen node cannot hold the fence
// row's lock for long.
func Config(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgkv: parsing the store's URL: %w", redact(err))
	}
	rp := cfg.ConnConfig.RuntimeParams
	rp["synchronous_commit"] = "on"
	if _, ok := rp["idle_in_transaction_session_timeout"]; !ok {
		rp["idle_in_transaction_session_timeout"] = "10000"
	}
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "indelible"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	return cfg, nil
}

// redact keeps a parse error from echoing a password.
func redact(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("invalid connection string (not shown: it may hold a password)")
	}
	return err
}

// Open connects to the database at dsn (unless opts.Pool is set), creates the
// schema if missing, and takes an epoch (see Options.Epoch).
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	s := &Store{pool: opts.Pool, log: opts.Logger, timeout: opts.Timeout}
	if s.pool == nil {
		cfg, err := Config(dsn)
		if err != nil {
			return nil, err
		}
		if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			return nil, fmt.Errorf("pgkv: connecting: %w", redact(err))
		}
		s.ownPool = true
	}
	if opts.ReadOnly {
		s.epoch.Store(-1)
		return s, nil
	}
	if opts.Exclusive && opts.Epoch <= 0 {
		if err := s.lockOwner(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	epoch, err := s.init(ctx, opts.Epoch)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.epoch.Store(epoch)
	return s, nil
}

// OwnerWait is how long Open (Options.Exclusive) tries for OwnerLock before
// it refuses: a node restarted at once after a crash may find its former
// session still ending.
const OwnerWait = 2 * time.Second

// lockOwner takes OwnerLock on a connection taken out of the pool for the
// store's life, or returns ErrBusy naming the session that holds it.
func (s *Store) lockOwner(ctx context.Context) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgkv: connecting: %w", err)
	}
	conn := pc.Hijack()
	var ok bool
	for deadline := time.Now().Add(OwnerWait); ; {
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(OwnerLock)).Scan(&ok); err != nil {
			conn.Close(context.Background())
			return fmt.Errorf("pgkv: locking the store: %w", err)
		}
		if ok || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !ok {
		who := lockHolder(ctx, conn)
		conn.Close(ctx)
		return fmt.Errorf("%w: %s holds it", ErrBusy, who)
	}
	s.owner = conn
	return nil
}

// lockHolder describes the session holding OwnerLock, as well as the
// database lets this user see it.
func lockHolder(ctx context.Context, conn *pgx.Conn) string {
	var app, addr string
	var since time.Time
	err := conn.QueryRow(ctx, `SELECT coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'a local socket'),
		coalesce(a.backend_start, 'epoch'::timestamptz)
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid
		LIMIT 1`, int64(OwnerLock)).Scan(&app, &addr, &since)
	if err != nil {
		return "a node started without a lease (its session is not visible to this user)"
	}
	return fmt.Sprintf("a node started without a lease (database session %q from %s, connected since %s)",
		app, addr, since.UTC().Format(time.RFC3339))
}

// init creates the schema under an advisory lock and takes the epoch. No
// statement waits on another session's lock longer than the store's
// timeout: a frozen node can hold the fence row.
func (s *Store) init(ctx context.Context, epoch int64) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("pgkv: connecting: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, max(1, s.timeout.Milliseconds()))); err != nil {
		return 0, fmt.Errorf("pgkv: connecting: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
		return 0, fmt.Errorf("pgkv: locking the schema: %w", lockErr(err, s.timeout))
	}
	var fresh bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('indelible_kv') IS NULL`).Scan(&fresh); err != nil {
		return 0, fmt.Errorf("pgkv: reading the schema: %w", err)
	}
	if _, err := tx.Exec(ctx, Schema); err != nil {
		return 0, fmt.Errorf("pgkv: creating the schema: %w", lockErr(err, s.timeout))
	}
	if fresh {
		// Values are bundles and hashes, which do not compress: store
		// large ones out of line without trying.
		if _, err := tx.Exec(ctx, `ALTER TABLE indelible_kv ALTER COLUMN v SET STORAGE EXTERNAL`); err != nil {
			return 0, fmt.Errorf("pgkv: creating the schema: %w", err)
		}
	}
	if epoch <= 0 {
		if s.owner != nil {
			// A cluster node holding the lease: its takeover took
			// OwnerLock for its transaction, so the lease read here is
			// the one it committed.
			var node, url string
			var held bool
			if err := tx.QueryRow(ctx, `SELECT node, url, expires_at > now() FROM indelible_lease`).Scan(&node, &url, &held); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return 0, fmt.Errorf("pgkv: reading the lease: %w", err)
			}
			if held && node != "" {
				return 0, fmt.Errorf("%w: the cluster node %s (%s) holds the lease", ErrBusy, node, url)
			}
		}
		if err := tx.QueryRow(ctx, `UPDATE indelible_fence SET epoch = epoch + 1 RETURNING epoch`).Scan(&epoch); err != nil {
			return 0, fmt.Errorf("pgkv: taking an epoch: %w", lockErr(err, s.timeout))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("pgkv: creating the schema: %w", err)
	}
	return epoch, nil
}

// lockErr explains a statement that gave up waiting on another session's
// lock (lock_timeout).
func lockErr(err error, d time.Duration) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55P03" {
		return fmt.Errorf("another session held a lock the store needs for over %v (a frozen node in a commit?): %w", d, err)
	}
	return err
}

// Pool returns the store's connection pool (the cluster's lease uses it).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Epoch implements kv.Epocher.
func (s *Store) Epoch() int64 { return s.epoch.Load() }

// SetEpoch implements kv.Epocher.
func (s *Store) SetEpoch(e int64) { s.epoch.Store(e) }

// FenceHead implements kv.Epocher.
func (s *Store) FenceHead(ctx context.Context) (kv.Head, bool, error) {
	var h kv.Head
	if err := s.pool.QueryRow(ctx, `SELECT size, root FROM indelible_fence`).Scan(&h.Size, &h.Root); err != nil {
		return kv.Head{}, false, fmt.Errorf("pgkv: reading the fence: %w", err)
	}
	return h, h.Size >= 0, nil
}

// Close implements kv.Store: it waits for the batches applied so far.
func (s *Store) Close() error {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	if last != nil {
		<-last.done
	}
	if s.owner != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.owner.Close(ctx) // ends the session: OwnerLock is free
		cancel()
		s.owner = nil
	}
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// Get implements kv.Store.
func (s *Store) Get(key []byte) ([]byte, io.Closer, error) {
	var v []byte
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	err := s.pool.QueryRow(ctx, `SELECT v FROM indelible_kv WHERE k = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, kv.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("pgkv: reading: %w", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nopCloser{}, nil
}

// GetSorted implements kv.Store with one query.
func (s *Store) GetSorted(keys [][]byte, f func(i int, value []byte)) error {
	if len(keys) == 0 {
		return nil
	}
	for i := 1; i < len(keys); i++ {
		if bytes.Compare(keys[i-1], keys[i]) >= 0 {
			return fmt.Errorf("kv: GetSorted: key %d is not above key %d", i, i-1)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT k, v FROM indelible_kv WHERE k = ANY($1::bytea[]) ORDER BY k`, keys)
	if err != nil {
		return fmt.Errorf("pgkv: reading: %w", err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		raw := rows.RawValues()
		k, v := raw[0], raw[1]
		for i < len(keys) && bytes.Compare(keys[i], k) < 0 {
			i++
		}
		if i == len(keys) || !bytes.Equal(keys[i], k) {
			return fmt.Errorf("pgkv: GetSorted: the database returned a key not asked for")
		}
		if v == nil {
			v = []byte{}
		}
		f(i, v)
		i++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgkv: reading: %w", err)
	}
	return nil
}

// GetNear implements kv.Store: GetSorted's one query serves both.
func (s *Store) GetNear(keys [][]byte, f func(i int, value []byte)) error {
	return s.GetSorted(keys, f)
}

// Scan pages: the first page is small (most scans stop early), then pages
// grow to scanMax rows.
const (
	scanFirst = 64
	scanMax   = 4096
)

// Scan implements kv.Store with keyset pagination (so a scan never holds a
// cursor, or a transaction, open while f runs). It does not see one
// snapshot: a page reflects the commits before it.
func (s *Store) Scan(lo, hi []byte, reverse bool, f func(key, value []byte) bool) error {
	ctx := context.Background()
	limit := scanFirst
	var cur []byte // the last key seen
	first := true
	for {
		var q string
		args := []any{}
		switch {
		case !reverse:
			q = `SELECT k, v FROM indelible_kv WHERE k >= $1`
			if !first {
				q = `SELECT k, v FROM indelible_kv WHERE k > $1`
				args = append(args, cur)
			} else {
				args = append(args, nonNil(lo))
			}
			if hi != nil {
				q += ` AND k < $2`
				args = append(args, hi)
			}
			q += fmt.Sprintf(` ORDER BY k LIMIT %d`, limit)
		default:
			q = `SELECT k, v FROM indelible_kv WHERE k >= $1`
			args = append(args, nonNil(lo))
			switch {
			case !first:
				q += ` AND k < $2`
				args = append(args, cur)
			case hi != nil:
				q += ` AND k < $2`
				args = append(args, hi)
			}
			q += fmt.Sprintf(` ORDER BY k DESC LIMIT %d`, limit)
		}
		qctx, cancel := context.WithTimeout(ctx, s.timeout)
		rows, err := s.pool.Query(qctx, q, args...)
		if err != nil {
			cancel()
			return fmt.Errorf("pgkv: scanning: %w", err)
		}
		n, stop := 0, false
		for rows.Next() {
			raw := rows.RawValues()
			n++
			v := raw[1]
			if v == nil {
				v = []byte{}
			}
			if !f(raw[0], v) {
				stop = true
				break
			}
			cur = append(cur[:0], raw[0]...)
		}
		rows.Close()
		cancel()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("pgkv: scanning: %w", err)
		}
		if stop || n < limit {
			return nil
		}
		first = false
		limit = min(2*limit, scanMax)
	}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Purge implements kv.Store: the rows were deleted by committed batches;
// VACUUM makes their space free for reuse and drops them from the index.
// The bytes of a dead row stay in the table's file until its page is
// rewritten, and in the WAL and any base backup or WAL archive until those
// are recycled or expire (docs/ha.md).
func (s *Store) Purge(ctx context.Context, ranges [][2][]byte) error {
	if _, err := s.pool.Exec(ctx, `VACUUM indelible_kv`); err != nil {
		return fmt.Errorf("pgkv: vacuuming: %w", err)
	}
	return nil
}

// NewBatch implements kv.Store.
func (s *Store) NewBatch(sizeHint int) kv.Batch { return &Batch{s: s} }

type opKind uint8

const (
	opSet opKind = iota
	opDelete
	opDeleteRange
)

type op struct {
	kind opKind
	k, v []byte // v: hi for a range
}

// Batch is a PostgreSQL batch: its writes are kept in memory until it
// commits.
type Batch struct {
	s        *Store
	ops      []op
	advance  bool
	from, to kv.Head

	applied bool
	prev    *Batch
	done    chan struct{}
	err     error
}

func (b *Batch) Set(key, value []byte) error {
	b.ops = append(b.ops, op{opSet, bytes.Clone(key), nonNil(bytes.Clone(value))})
	return nil
}

func (b *Batch) SetPrefixed(prefix byte, key, value []byte) error {
	k := make([]byte, 1+len(key))
	k[0] = prefix
	copy(k[1:], key)
	b.ops = append(b.ops, op{opSet, k, nonNil(bytes.Clone(value))})
	return nil
}

func (b *Batch) Delete(key []byte) error {
	b.ops = append(b.ops, op{kind: opDelete, k: bytes.Clone(key)})
	return nil
}

func (b *Batch) DeleteRange(lo, hi []byte) error {
	b.ops = append(b.ops, op{opDeleteRange, bytes.Clone(lo), bytes.Clone(hi)})
	return nil
}

func (b *Batch) Advance(from, to kv.Head) {
	b.advance = true
	b.from = kv.Head{Size: from.Size, Root: nonNil(bytes.Clone(from.Root))}
	b.to = kv.Head{Size: to.Size, Root: nonNil(bytes.Clone(to.Root))}
}

// Commit commits the batch after every batch applied before it. Every
// PostgreSQL commit is synchronous (synchronous_commit on), so sync is
// ignored.
func (b *Batch) Commit(sync bool) error {
	if err := b.Apply(); err != nil {
		return err
	}
	return b.Wait()
}

// Apply starts the commit in a goroutine, after the batch applied before
// it; Wait returns its outcome. Nothing of the batch is visible before.
func (b *Batch) Apply() error {
	if b.applied {
		return errors.New("pgkv: batch applied twice")
	}
	b.applied = true
	b.done = make(chan struct{})
	s := b.s
	s.mu.Lock()
	b.prev, s.last = s.last, b
	s.mu.Unlock()
	inflight := false // the previous batch was not done when this one was applied
	if b.prev != nil {
		select {
		case <-b.prev.done:
		default:
			inflight = true
		}
	}
	go func() {
		defer close(b.done)
		if p := b.prev; p != nil {
			b.prev = nil
			<-p.done
			if p.err != nil && inflight && b.advance && p.advance {
				// This batch extends one that did not commit: it must
				// not commit either (the fence would refuse it anyway).
				b.err = p.err
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		b.err = b.commit(ctx)
		cancel()
	}()
	return nil
}

func (b *Batch) Wait() error {
	if !b.applied {
		return errors.New("pgkv: Wait before Apply")
	}
	<-b.done
	return b.err
}

func (b *Batch) Close() { b.ops = nil }

// plan reduces the batch's ops to deletes, which run first, and the sets
// that survive them (the last set of each key that no later delete
// covers): the same final state as applying the ops in order.
func (b *Batch) plan() (points [][]byte, ranges [][2][]byte, keys, values [][]byte) {
	deleted := map[string]bool{} // deleted by a later point delete, or set later
	for i := len(b.ops) - 1; i >= 0; i-- {
		o := b.ops[i]
		switch o.kind {
		case opDelete:
			if !deleted[string(o.k)] {
				deleted[string(o.k)] = true
				points = append(points, o.k)
			}
		case opDeleteRange:
			if bytes.Compare(o.k, o.v) < 0 {
				ranges = append(ranges, [2][]byte{o.k, o.v})
			}
		case opSet:
			if deleted[string(o.k)] {
				continue
			}
			covered := false
			for _, r := range ranges {
				if bytes.Compare(o.k, r[0]) >= 0 && bytes.Compare(o.k, r[1]) < 0 {
					covered = true
					break
				}
			}
			deleted[string(o.k)] = true // an earlier set of it is overwritten
			if !covered {
				keys = append(keys, o.k)
				values = append(values, o.v)
			}
		}
	}
	return points, ranges, keys, values
}

// commit runs the batch as one pipelined implicit transaction.
func (b *Batch) commit(ctx context.Context) error {
	points, ranges, keys, values := b.plan()
	var pb pgx.Batch
	epoch := b.s.epoch.Load()
	if len(points) > 0 {
		pb.Queue(`DELETE FROM indelible_kv WHERE k = ANY($1::bytea[])`, points)
	}
	for _, r := range ranges {
		pb.Queue(`DELETE FROM indelible_kv WHERE k >= $1 AND k < $2`, r[0], r[1])
	}
	if len(keys) > 0 {
		pb.Queue(upsertSQL, keys, values)
	}
	// The fence last: its row lock is then held only while the
	// transaction commits, not while its rows are written, so the commits
	// of the sequencer and of the other writers (the leaf-hash index,
	// tokens) wait on each other as little as possible. An error anywhere
	// rolls the whole transaction back.
	if b.advance {
		pb.Queue(advanceSQL, epoch, b.from.Size, b.from.Root, b.to.Size, b.to.Root)
	} else {
		pb.Queue(checkSQL, epoch)
	}
	conn, err := b.s.pool.Acquire(ctx)
	if err != nil {
		// Nothing was sent.
		return fmt.Errorf("pgkv: connecting: %w", err)
	}
	defer conn.Release()
	br := conn.SendBatch(ctx, &pb)
	var first error
	for range pb.Len() {
		if _, err := br.Exec(); err != nil && first == nil {
			first = err
		}
	}
	if err := br.Close(); err != nil && first == nil {
		first = err
	}
	if first == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(first, &pe) {
		// The server answered: the transaction rolled back.
		if strings.Contains(pe.Message, fencedMark) {
			if b.advance {
				return fmt.Errorf("%w (epoch %d, log head %d)", kv.ErrFenced, epoch, b.from.Size)
			}
			return fmt.Errorf("%w (epoch %d)", kv.ErrFenced, epoch)
		}
		return fmt.Errorf("pgkv: committing: %w", first)
	}
	if pgconn.SafeToRetry(first) {
		// Nothing reached the server.
		return fmt.Errorf("pgkv: committing: %w", first)
	}
	return fmt.Errorf("%w: %w", kv.ErrAmbiguous, first)
}
