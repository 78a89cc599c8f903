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
// is committed as ONE pipelined implicit transaction: the deletes, the
// inserts of new keys (Batch.Insert) as one INSERT of two bytea arrays, the
// other sets as one upsert of two arrays, then the fence statement (a batch
// that advances the log updates the row where epoch, size and root are the
// node's; any other batch locks the row FOR SHARE where the epoch is the
// node's). The batches applied while a commit is in flight are committed
// together in the next transaction, with a fence statement each (see
// Batch.Apply). A fence statement that matches no row raises an
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
	"slices"
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

	mu      sync.Mutex
	last    *Batch   // the last batch applied (Close waits for it)
	queue   []*Batch // batches applied, not yet taken by commitLoop
	running bool     // commitLoop runs

	owner     *pgx.Conn     // the session holding OwnerLock (Options.Exclusive), or nil; keepOwner's once it runs
	ownerStop chan struct{} // closed by Close: keepOwner closes owner and returns
	ownerDone chan struct{} // closed when keepOwner has returned
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
	prev := cfg.ConnConfig.OnNotice
	cfg.ConnConfig.OnNotice = func(c *pgconn.PgConn, n *pgconn.Notice) {
		if n.SeverityUnlocalized == "WARNING" && n.Code == "01000" {
			warned.Store(c, true)
		}
		if prev != nil {
			prev(c, n)
		}
	}
	return cfg, nil
}

// warned holds the connections that received a plain WARNING (SQLSTATE
// 01000) since their commit began. A commit whose wait for a synchronous
// standby is cancelled (pg_cancel_backend, a statement timeout) gets one,
// "canceling wait for synchronous replication", and is then reported as
// committed although the standby may never have it: a failover would lose
// it. commit treats any such warning as an ambiguous outcome (the message
// itself depends on lc_messages; its SQLSTATE and unlocalized severity do
// not).
var warned sync.Map // *pgconn.PgConn -> bool

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
	if s.owner != nil {
		s.ownerStop, s.ownerDone = make(chan struct{}), make(chan struct{})
		go s.keepOwner()
	}
	return s, nil
}

// ownerCheck is how often a single node checks that the session holding
// OwnerLock is alive.
var ownerCheck = time.Second

// keepOwner keeps OwnerLock held for the store's life. When its session is
// lost (a database restart or a failover ends it, and the lock with it) it
// takes the lock again on a new session; if another node's session holds it
// by then, that node has taken the next epoch, and this store fences itself
// (its next commit returns kv.ErrFenced and the log stops) rather than wait
// for the fence row to say so.
func (s *Store) keepOwner() {
	defer close(s.ownerDone)
	t := time.NewTicker(ownerCheck)
	defer t.Stop()
	for {
		select {
		case <-s.ownerStop:
			if s.owner != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				s.owner.Close(ctx) // ends the session: OwnerLock is free
				cancel()
			}
			return
		case <-t.C:
		}
		if !s.checkOwner() {
			return
		}
	}
}

// checkOwner checks OwnerLock's session once, taking the lock again on a
// new session if it was lost; false when another session holds it (the
// store is fenced).
func (s *Store) checkOwner() bool {
	ctx, cancel := context.WithTimeout(context.Background(), max(s.timeout, time.Second))
	defer cancel()
	if s.owner != nil {
		if _, err := s.owner.Exec(ctx, `SELECT 1`); err == nil {
			return true
		}
		s.owner.Close(ctx)
		s.owner = nil
		s.log.Warn("pgkv: the session holding the store's owner lock was lost (a database restart or failover?): taking the lock again")
	}
	conn, ok, err := s.tryOwner(ctx)
	switch {
	case err != nil:
		// No database to take it on: commits fail meanwhile; try again
		// at the next check.
		return true
	case ok:
		s.owner = conn
		s.log.Info("pgkv: the store's owner lock is held again")
		return true
	}
	s.epoch.Store(-1)
	s.log.Error("pgkv: another node holds the store's owner lock: this node's store is fenced")
	return false
}

// tryOwner tries once to take OwnerLock on a new session.
func (s *Store) tryOwner(ctx context.Context) (*pgx.Conn, bool, error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	conn := pc.Hijack()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(OwnerLock)).Scan(&ok); err != nil || !ok {
		conn.Close(context.Background())
		return nil, false, err
	}
	return conn, true, nil
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
	if s.ownerStop != nil {
		close(s.ownerStop)
		<-s.ownerDone
		s.ownerStop = nil
	} else if s.owner != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.owner.Close(ctx) // ends the session: OwnerLock is free
		cancel()
	}
	s.owner = nil
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
	opInsert
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
	arena    []byte // the ops' keys and values, copied (arenaChunk at a time)
	size     int    // bytes of the keys and values set
	advance  bool
	from, to kv.Head

	applied bool
	skip    error // set before it is committed: the error it fails with instead
	done    chan struct{}
	err     error
}

// arenaChunk is how much a batch allocates at a time for the bytes of its
// keys and values: one allocation for many small ones (index keys of a few
// dozen bytes), instead of two for each.
const arenaChunk = 64 << 10

// copyOf copies p+b into the batch's arena (p: a prefix byte, or -1).
func (b *Batch) copyOf(p int, x []byte) []byte {
	n := len(x)
	if p >= 0 {
		n++
	}
	if n > arenaChunk/4 {
		c := make([]byte, 0, n)
		if p >= 0 {
			c = append(c, byte(p))
		}
		return append(c, x...)
	}
	if cap(b.arena)-len(b.arena) < n {
		b.arena = make([]byte, 0, arenaChunk)
	}
	start := len(b.arena)
	if p >= 0 {
		b.arena = append(b.arena, byte(p))
	}
	b.arena = append(b.arena, x...)
	return b.arena[start:len(b.arena):len(b.arena)]
}

func (b *Batch) add(kind opKind, prefix int, key, value []byte) error {
	b.ops = append(b.ops, op{kind, b.copyOf(prefix, key), b.copyOf(-1, value)})
	b.size += 1 + len(key) + len(value)
	return nil
}

func (b *Batch) Set(key, value []byte) error { return b.add(opSet, -1, key, value) }

func (b *Batch) SetPrefixed(prefix byte, key, value []byte) error {
	return b.add(opSet, int(prefix), key, value)
}

func (b *Batch) Insert(key, value []byte) error { return b.add(opInsert, -1, key, value) }

func (b *Batch) InsertPrefixed(prefix byte, key, value []byte) error {
	return b.add(opInsert, int(prefix), key, value)
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

// Apply queues the batch for the store's committer; Wait returns its
// outcome. Nothing of the batch is visible before.
//
// The committer sends one transaction at a time. The batches applied while
// one is in flight go together in the next (group commit: the sequencer's
// batch, the leaf-hash index's and a checkpoint's archive record commit
// once instead of three times, each commit an fsync on the primary and a
// round trip to a synchronous standby), with their writes in order and
// each batch's fence statement: it commits all of them or none. If it
// fails, fenced or of unknown outcome, every batch in it gets that error;
// any other failure (the server refused a statement) and each batch is
// committed again alone, so that each gets its own outcome.
func (b *Batch) Apply() error {
	if b.applied {
		return errors.New("pgkv: batch applied twice")
	}
	b.applied = true
	b.done = make(chan struct{})
	s := b.s
	s.mu.Lock()
	s.last = b
	s.queue = append(s.queue, b)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		go s.commitLoop()
	}
	return nil
}

// A group commit takes at most groupMax batches and stops adding batches
// once it holds groupBytes of keys and values.
const (
	groupMax   = 64
	groupBytes = 32 << 20
)

// commitLoop commits the queued batches, a group at a time, until the
// queue is empty.
func (s *Store) commitLoop() {
	for {
		s.mu.Lock()
		n, size := 0, 0
		for n < len(s.queue) && n < groupMax && (n == 0 || size < groupBytes) {
			size += s.queue[n].size
			n++
		}
		if n == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		group := slices.Clone(s.queue[:n])
		s.queue = slices.Delete(s.queue, 0, n)
		s.mu.Unlock()

		s.commitGroup(group)
		// A batch that extends one that did not commit must not commit
		// either (the fence would refuse it anyway): the advancing
		// batches applied meanwhile fail with the same error.
		var failed error
		for _, b := range group {
			if b.advance && b.err != nil {
				failed = b.err
			}
		}
		if failed != nil {
			s.mu.Lock()
			for _, q := range s.queue {
				if q.advance && q.skip == nil {
					q.skip = failed
				}
			}
			s.mu.Unlock()
		}
		for _, b := range group {
			close(b.done)
		}
	}
}

// commitGroup commits the group's batches (those not skipped) in one
// transaction, or each alone if that failed for a reason of its own.
func (s *Store) commitGroup(group []*Batch) {
	live := group[:0:0]
	for _, b := range group {
		if b.skip != nil {
			b.err = b.skip
			continue
		}
		live = append(live, b)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	err := s.commit(ctx, live)
	cancel()
	if err == nil || len(live) == 1 || kv.Fatal(err) {
		for _, b := range live {
			b.err = err
		}
		return
	}
	s.log.Debug("pgkv: a group commit failed; committing its batches one at a time", "batches", len(live), "err", err)
	var failed error
	for _, b := range live {
		if failed != nil && b.advance {
			b.err = failed
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		b.err = s.commit(ctx, []*Batch{b})
		cancel()
		if b.err != nil && b.advance {
			failed = b.err
		}
	}
}

func (b *Batch) Wait() error {
	if !b.applied {
		return errors.New("pgkv: Wait before Apply")
	}
	<-b.done
	return b.err
}

func (b *Batch) Close() { b.ops, b.arena = nil, nil }

// plan is what a batch's ops come to: deletes, which run first, then the
// writes that survive them (the last write of each key that no later
// delete covers), split into inserts (Insert: keys the caller knows are
// new) and upserts. The same final state as applying the ops in order.
type plan struct {
	points             [][]byte
	ranges             [][2][]byte
	setKeys, setValues [][]byte
	insKeys, insValues [][]byte
	setBytes, insBytes int // bytes of the keys and values
}

func planOf(batches []*Batch) *plan {
	p := &plan{}
	n := 0
	for _, b := range batches {
		n += len(b.ops)
	}
	// Keys deleted by a later point delete, or written later.
	deleted := make(map[string]bool, n)
	for bi := len(batches) - 1; bi >= 0; bi-- {
		ops := batches[bi].ops
		for i := len(ops) - 1; i >= 0; i-- {
			p.add(ops[i], deleted)
		}
	}
	return p
}

// add adds o, which comes before every op added so far, to the plan.
func (p *plan) add(o op, deleted map[string]bool) {
	switch o.kind {
	case opDelete:
		if !deleted[string(o.k)] {
			deleted[string(o.k)] = true
			p.points = append(p.points, o.k)
		}
	case opDeleteRange:
		if bytes.Compare(o.k, o.v) < 0 {
			p.ranges = append(p.ranges, [2][]byte{o.k, o.v})
		}
	case opSet, opInsert:
		if deleted[string(o.k)] {
			return
		}
		covered := false
		for _, r := range p.ranges {
			if bytes.Compare(o.k, r[0]) >= 0 && bytes.Compare(o.k, r[1]) < 0 {
				covered = true
				break
			}
		}
		deleted[string(o.k)] = true // an earlier write of it is overwritten
		if covered {
			return
		}
		if o.kind == opInsert {
			p.insKeys = append(p.insKeys, o.k)
			p.insValues = append(p.insValues, o.v)
			p.insBytes += len(o.k) + len(o.v)
		} else {
			p.setKeys = append(p.setKeys, o.k)
			p.setValues = append(p.setValues, o.v)
			p.setBytes += len(o.k) + len(o.v)
		}
	}
}

// upsertAll makes the plan's inserts upserts (a commit redone because one
// of its inserted keys was stored).
func (p *plan) upsertAll() {
	p.setKeys = append(p.setKeys, p.insKeys...)
	p.setValues = append(p.setValues, p.insValues...)
	p.setBytes += p.insBytes
	p.insKeys, p.insValues, p.insBytes = nil, nil, 0
}

// The statements of a commit, prepared once on each connection (named, so
// a commit sends only Bind and Execute for each). The fence's are above.
const (
	insertSQL      = `INSERT INTO indelible_kv (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[])`
	deleteKeysSQL  = `DELETE FROM indelible_kv WHERE k = ANY($1::bytea[])`
	deleteRangeSQL = `DELETE FROM indelible_kv WHERE k >= $1::bytea AND k < $2::bytea`
)

// stmt is a prepared statement of a commit, with the types of its
// parameters (their binary encodings are built here, not by pgx).
type stmt struct {
	name, sql string
	params    []uint32 // the parameters' type OIDs
}

const (
	oidInt8      = 20
	oidBytea     = 17
	oidByteaList = 1001
)

var (
	stmtUpsert      = stmt{"indelible_upsert", upsertSQL, []uint32{oidByteaList, oidByteaList}}
	stmtInsert      = stmt{"indelible_insert", insertSQL, []uint32{oidByteaList, oidByteaList}}
	stmtDeleteKeys  = stmt{"indelible_delete_keys", deleteKeysSQL, []uint32{oidByteaList}}
	stmtDeleteRange = stmt{"indelible_delete_range", deleteRangeSQL, []uint32{oidBytea, oidBytea}}
	stmtAdvance     = stmt{"indelible_advance", advanceSQL, []uint32{oidInt8, oidInt8, oidBytea, oidInt8, oidBytea}}
	stmtCheck       = stmt{"indelible_check", checkSQL, []uint32{oidInt8}}
)

// binaryFormat is the format code of every parameter a commit sends.
var binaryFormat = []int16{1}

// appendByteaArray appends the binary encoding of a one-dimensional bytea[]
// without NULLs (PostgreSQL's array_send): pgx's generic array encoding
// was a sixth of this process's CPU in a batched ingest.
func appendByteaArray(dst []byte, elems [][]byte) []byte {
	dst = be32(dst, 1) // dimensions
	dst = be32(dst, 0) // no NULLs
	dst = be32(dst, oidBytea)
	dst = be32(dst, uint32(len(elems)))
	dst = be32(dst, 1) // lower bound
	for _, e := range elems {
		dst = be32(dst, uint32(len(e)))
		dst = append(dst, e...)
	}
	return dst
}

func byteaArray(elems [][]byte, size int) []byte {
	return appendByteaArray(make([]byte, 0, 20+4*len(elems)+size), elems)
}

func be32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func int8Param(v int64) []byte {
	u := uint64(v)
	return []byte{byte(u >> 56), byte(u >> 48), byte(u >> 40), byte(u >> 32), byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}
}

// commit commits the batches, in order, as one pipelined implicit
// transaction: one round trip (more on a connection's first commit, which
// prepares the statements). The keys the caller inserted (Insert) go as a plain INSERT
// of two bytea arrays; the other sets as one upsert of two arrays. The
// upsert's conflict check (an index scan for every row before its insert,
// and a speculative insertion) was a third of the PostgreSQL backend's CPU
// in a batched ingest (BENCHMARKS.md, "PostgreSQL commit cost"); a plain
// INSERT has none. If one of the inserted keys is stored after all, the
// server answers with a unique violation, the transaction has rolled back,
// and the commit is sent again with every set an upsert.
//
// Not COPY: COPY cannot share the pipeline (BEGIN and the deletes, the
// COPY into a staging table, then the upsert from it, the fence and COMMIT
// take three round trips), and direct COPY into indelible_kv cannot be
// used because batches overwrite keys (partial tiles, the state, the
// layers' records), where one conflict would abort the transaction.
// Measured on PostgreSQL 15 over loopback (BENCHMARKS.md, "Past one
// machine"): COPY through a staging table cost 60% more CPU per row at
// 140 rows a batch and 7% more at 1,400, saved 6-7% from 4,200 rows on in
// isolation, and used for batches of 4,096 sets or more it made no
// difference to the ledger's batched ingest beyond the machine's noise
// (CPU per event 68.5 vs 66.4 µs, medians of 4 rounds each): not worth two
// more round trips a commit to a remote database (commit 48964e4 has it).
func (s *Store) commit(ctx context.Context, batches []*Batch) error {
	p := planOf(batches)
	epoch := s.epoch.Load()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		// Nothing was sent.
		return fmt.Errorf("pgkv: connecting: %w", err)
	}
	defer conn.Release()
	err = send(ctx, conn, p, batches, epoch)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && len(p.insKeys) > 0 {
		// An inserted key was stored (a re-index after a restart): the
		// transaction rolled back; the same writes as upserts.
		s.log.Debug("pgkv: an inserted key was stored; committing again with upserts", "err", err)
		p.upsertAll()
		err = send(ctx, conn, p, batches, epoch)
	}
	return err
}

// send sends the plan's statements and each batch's fence statement, in
// order, as one pipeline on conn, and reads the outcome.
func send(ctx context.Context, conn *pgxpool.Conn, p *plan, batches []*Batch, epoch int64) error {
	c := conn.Conn()
	var pb pgconn.Batch
	var sent []string // the statements queued, for the tracer
	var prepErr error
	queue := func(st stmt, params ...[]byte) {
		if prepErr != nil {
			return
		}
		sd, err := c.Prepare(ctx, st.name, st.sql)
		if err == nil && !slices.Equal(sd.ParamOIDs, st.params) {
			err = fmt.Errorf("pgkv: statement %s takes parameters of types %v, not %v", st.name, sd.ParamOIDs, st.params)
		}
		if err != nil {
			prepErr = err
			return
		}
		pb.ExecPrepared(st.name, params, binaryFormat, nil)
		sent = append(sent, st.sql)
	}
	if len(p.points) > 0 {
		n := 0
		for _, k := range p.points {
			n += len(k)
		}
		queue(stmtDeleteKeys, byteaArray(p.points, n))
	}
	for _, r := range p.ranges {
		queue(stmtDeleteRange, r[0], r[1])
	}
	if len(p.insKeys) > 0 {
		queue(stmtInsert, byteaArray(p.insKeys, p.insBytes), byteaArray(p.insValues, 0))
	}
	if len(p.setKeys) > 0 {
		queue(stmtUpsert, byteaArray(p.setKeys, p.setBytes), byteaArray(p.setValues, 0))
	}
	// The fence last: its row lock is then held only while the
	// transaction commits, not while its rows are written, so the commits
	// of the sequencer and of the other writers (the leaf-hash index,
	// tokens) wait on each other as little as possible. An error anywhere
	// rolls the whole transaction back.
	for _, b := range batches {
		if b.advance {
			queue(stmtAdvance, int8Param(epoch), int8Param(b.from.Size), b.from.Root, int8Param(b.to.Size), b.to.Root)
		} else {
			queue(stmtCheck, int8Param(epoch))
		}
	}
	if prepErr != nil {
		// Nothing of the batch was sent (Prepare runs before the
		// pipeline): a lost connection here is not ambiguous.
		return fmt.Errorf("pgkv: preparing the commit: %w", prepErr)
	}
	pc := c.PgConn()
	warned.Delete(pc)
	defer warned.Delete(pc)
	bt, _ := c.Config().Tracer.(pgx.BatchTracer)
	if bt != nil {
		ctx = bt.TraceBatchStart(ctx, c, pgx.TraceBatchStartData{})
	}
	results, first := pc.ExecBatch(ctx, &pb).ReadAll()
	if bt != nil {
		for i, sql := range sent {
			// A statement that did not complete has the pipeline's
			// error, as in pgx's own batches.
			d := pgx.TraceBatchQueryData{SQL: sql, Err: first}
			if i < len(results) && (results[i].Err != nil || results[i].CommandTag.String() != "") {
				d.CommandTag, d.Err = results[i].CommandTag, results[i].Err
			}
			bt.TraceBatchQuery(ctx, c, d)
		}
		bt.TraceBatchEnd(ctx, c, pgx.TraceBatchEndData{Err: first})
	}
	if first == nil {
		for _, r := range results {
			if r.Err != nil {
				first = r.Err
				break
			}
		}
	}
	if first == nil {
		if _, ok := warned.Load(pc); ok {
			// Committed on the primary; whether the synchronous standby
			// has it, nobody knows.
			return fmt.Errorf("%w: the server warned during the commit (a cancelled wait for the synchronous standby?)", kv.ErrAmbiguous)
		}
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(first, &pe) {
		// The server answered: the transaction rolled back.
		if strings.Contains(pe.Message, fencedMark) {
			for _, b := range batches {
				if b.advance {
					return fmt.Errorf("%w (epoch %d, log head %d)", kv.ErrFenced, epoch, b.from.Size)
				}
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
