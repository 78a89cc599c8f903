// Package cluster decides which node of an Indelible log is active: a lease
// in PostgreSQL, on the database's clock, held by one node at a time, and
// the epoch that fences every other node out of the store (docs/ha.md,
// "Cluster").
//
// The lease is one row (indelible_lease: node, url, epoch, expires_at). The
// holder renews it every lease/3 with a single statement; a node takes it
// only when it has expired on the database's clock (now()), in one
// transaction that also bumps the epoch of the store's fence
// (indelible_fence), so that every commit of the old holder fails from then
// on however late it arrives. A takeover never waits on the old node: it
// ends the old node's database sessions first (pg_terminate_backend, by
// their application_name, which DSN sets), and its own statements run under
// a lock_timeout shorter than the lease.
//
// A node counts its lease from before it asked, on its own monotonic clock:
// a renewal sent at t0 that succeeds holds the lease until t0+lease at the
// latest (the database computed now()+lease after t0). Holding reports
// false from then on, whatever the database later says, so a node that
// cannot renew (frozen, partitioned, its database down) stops acknowledging
// before any other node may take over.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Limits and defaults.
const (
	// MinLease is the shortest lease Open accepts: renewals every lease/3
	// must fit a database round trip with room to spare.
	MinLease = 1 * time.Second
	// MaxNodeName bounds a node's name (it goes into application_name,
	// at most 63 bytes, with a prefix and an instance id).
	MaxNodeName = 40
)

// expiryMargin is how long after the holder's lease would expire (on the
// database's clock, as last read) a standby reads the lease again.
const expiryMargin = 20 * time.Millisecond

// Role is what a node does now.
type Role int

const (
	// Standby: serves reads, forwards writes, waits for the lease.
	Standby Role = iota
	// Active: holds the lease, sequences, signs, publishes.
	Active
)

func (r Role) String() string {
	if r == Active {
		return "active"
	}
	return "standby"
}

// Peer names a node: its name and the URL it advertises.
type Peer struct {
	Node string `json:"node"`
	URL  string `json:"url"`
}

// Status is the lease as this node last saw it.
type Status struct {
	Node  string // this node's name
	Role  Role
	Epoch int64 // the epoch this node holds (active), or the holder's (standby)
	// Active is the lease holder as last read from the database (empty
	// before the first read, or if no node ever held it).
	Active Peer
	// Size is the log's size the fence recorded at that read (-1: no log
	// yet).
	Size int64
	// Expires is, on a standby, when the holder's lease ends unless it
	// renews it, on this node's clock, as of the last read that found it
	// held (zero before one): a standby whose reads keep finding the
	// lease renewed sees it move on; one past it either finds the lease
	// expired at its next read (and takes it) or cannot read it.
	Expires time.Time
}

// Change is a role change, delivered in order on Lease.Changes.
type Change struct {
	Role  Role
	Epoch int64 // the epoch taken (Active); the epoch given up (Standby)
}

// Options configure Open.
type Options struct {
	// Node names this node (see DefaultNode). Required.
	Node string
	// URL is the address this node gives the others (serve --advertise):
	// standbys forward writes to it. Required.
	URL string
	// Lease is how long a lease lasts (serve --lease). At least MinLease.
	Lease time.Duration
	// Logger receives role changes and errors. Default slog.Default().
	Logger *slog.Logger
}

// DefaultNode is a node's default name: the host name and the listen
// port, so that two nodes on one host differ.
func DefaultNode(listen string) string {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	port := listen
	if i := strings.LastIndexByte(listen, ':'); i >= 0 {
		port = listen[i+1:]
	}
	return host + ":" + port
}

// Lease is a node's side of the lease. Open starts it as a standby; Run
// renews or takes the lease until its context ends.
//
// Goroutines: Run's goroutine owns every database call and is the only
// writer of the fields under mu; any goroutine may call Status, Holding
// and ValidUntil. Changes is written only by Run.
type Lease struct {
	pool     *pgxpool.Pool
	opt      Options
	instance string // this process's random id, in application_name
	appName  string
	logger   *slog.Logger
	changes  chan Change

	mu         sync.Mutex
	role       Role
	epoch      int64
	validUntil time.Time // monotonic: the end of the lease as this node counts it
	active     Peer
	size       int64         // the fence's size at the last read
	expiresIn  time.Duration // at the last read (standby): how long the holder's lease had left
	expires    time.Time     // at the last read that found it held (standby): when it ends unrenewed
	err        error         // the last error of a database call, nil after a success
}

// ErrConfig reports bad Options.
var ErrConfig = errors.New("cluster: bad configuration")

// Open connects to the database at dsn (a postgres:// URL) and creates the
// lease table (and the fence table, if the store has not yet) if missing.
// The node starts as a standby; call Run.
func Open(ctx context.Context, dsn string, o Options) (*Lease, error) {
	if o.Node == "" || len(o.Node) > MaxNodeName {
		return nil, fmt.Errorf("%w: node name %q: want 1 to %d bytes", ErrConfig, o.Node, MaxNodeName)
	}
	if o.Lease < MinLease {
		return nil, fmt.Errorf("%w: lease %v: want at least %v", ErrConfig, o.Lease, MinLease)
	}
	if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: advertised URL %q: want http://HOST:PORT or https://HOST:PORT", ErrConfig, o.URL)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var b [4]byte
	rand.Read(b[:])
	instance := hex.EncodeToString(b[:])
	dsn, err := DSN(dsn, o.Node, instance, o.Lease)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// Not the parser's message: it may quote the URL, password and all.
		return nil, fmt.Errorf("%w: the store URL does not parse (not shown: it may hold a password)", ErrConfig)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting: %w", err)
	}
	l := &Lease{pool: pool, opt: o, instance: instance, appName: AppName(o.Node, instance), logger: o.Logger,
		changes: make(chan Change, 16)}
	if err := l.createTables(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := l.checkSingle(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return l, nil
}

// checkSingle returns ErrSingleNode if a node without a lease holds the
// store's owner lock. A takeover holds it for its transaction: a few
// tries tell the two apart.
func (l *Lease) checkSingle(ctx context.Context) error {
	for try := 0; ; try++ {
		var free bool
		err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(ownerLock)).Scan(&free)
		})
		if err != nil {
			return fmt.Errorf("cluster: reading the store's owner lock: %w", err)
		}
		if free {
			return nil
		}
		if try == 4 {
			return ErrSingleNode
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close closes the lease's connections. It does not give the lease up: the
// others take it when it expires.
func (l *Lease) Close() { l.pool.Close() }

// AppName is the application_name of node's sessions in the process with
// this instance id: "indelible:NODE:INSTANCE". A takeover ends the sessions
// whose name starts with the old holder's prefix (appPrefix).
func AppName(node, instance string) string { return appPrefix(node) + instance }

func appPrefix(node string) string { return "indelible:" + node + ":" }

// DSN returns dsn with the session settings every connection of a node
// must have: its application_name (so that a takeover can end its sessions)
// and idle_in_transaction_session_timeout below the lease (so that a frozen
// node's open transaction ends even where the takeover may not end
// sessions). The store opens its connections with it too.
func DSN(dsn, node, instance string, lease time.Duration) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%w: store URL: want postgres://USER@HOST:PORT/DB", ErrConfig)
	}
	q := u.Query()
	q.Set("application_name", AppName(node, instance))
	q.Set("idle_in_transaction_session_timeout", strconv.FormatInt((lease/2).Milliseconds(), 10))
	if q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", strconv.FormatInt(max(1, int64((lease/3).Seconds())), 10))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// SessionDSN returns dsn with this node's session settings (see DSN), for
// the store's connections.
func (l *Lease) SessionDSN(dsn string) (string, error) {
	return DSN(dsn, l.opt.Node, l.instance, l.opt.Lease)
}

// The schema: the lease is ours; the fence is the store's, created here
// too (the same definition and first row: epoch 0, size -1 for "no log
// yet") so that the takeover bumps it whichever starts first. The first
// rows are inserted only where a table is empty: NOT EXISTS reads past a
// row lock, so a node starting while the active one is frozen in a commit
// does not wait on it.
const schema = `
CREATE TABLE IF NOT EXISTS indelible_lease (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	node text NOT NULL, url text NOT NULL, epoch bigint NOT NULL, expires_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS indelible_fence (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	epoch bigint NOT NULL, size bigint NOT NULL, root bytea NOT NULL);
INSERT INTO indelible_lease (node, url, epoch, expires_at) SELECT '', '', 0, '-infinity'
	WHERE NOT EXISTS (SELECT 1 FROM indelible_lease) ON CONFLICT DO NOTHING;
INSERT INTO indelible_fence (epoch, size, root) SELECT 0, -1, ''
	WHERE NOT EXISTS (SELECT 1 FROM indelible_fence) ON CONFLICT DO NOTHING;
`

// schemaLock is the advisory lock held while creating the schema: the
// store's (its pgkv package) so the two never collide on the catalog.
const schemaLock = 0x696e64656c69626c // "indelibl"

// ownerLock is the advisory lock a single node (serve without --lease) holds
// on the store for its life (pgkv.OwnerLock). A takeover takes it for its
// transaction and takes nothing if it cannot: a node without a lease is
// serving the store, and bumping the epoch would fence it off.
const ownerLock = 0x696e64656c6f776e // "indelown"

// ErrSingleNode means a node started without a lease serves the store.
var ErrSingleNode = errors.New("cluster: a node started without --lease is serving this store: stop it, or start it with --lease too")

func (l *Lease) createTables(ctx context.Context) error {
	// Two nodes starting at once: CREATE TABLE IF NOT EXISTS can still
	// collide on the catalog; a transaction-scoped advisory lock orders them.
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: creating the lease table: %w", err)
	}
	return nil
}

// Changes delivers role changes in order. A consumer must keep up (the
// channel holds 16); Run blocks on it otherwise.
func (l *Lease) Changes() <-chan Change { return l.changes }

// Status returns the lease as this node last saw it.
func (l *Lease) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Status{Node: l.opt.Node, Role: l.role, Epoch: l.epoch, Active: l.active, Size: l.size}
	if l.role == Standby {
		st.Expires = l.expires
	}
	return st
}

// Err returns the error of the last database call, nil if it succeeded.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Holding reports whether this node holds the lease now, and under which
// epoch: it is active and its lease, counted from before its last renewal
// was sent, has not ended. Acknowledge a write only if Holding is true, with
// the epoch the write was committed under, after the commit.
func (l *Lease) Holding() (epoch int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch, l.role == Active && time.Now().Before(l.validUntil)
}

// ValidUntil returns when this node's lease ends (monotonic), the zero time
// on a standby.
func (l *Lease) ValidUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.role != Active {
		return time.Time{}
	}
	return l.validUntil
}

// Run renews the lease while this node holds it and tries to take it when
// it has expired, every lease/3, until ctx ends. It steps down as soon as
// the lease ends unrenewed. It returns ctx's error; it does not give the
// lease up (the next node takes it when it expires).
func (l *Lease) Run(ctx context.Context) error {
	period := l.opt.Lease / 3
	for {
		l.tick(ctx)
		next := time.Now().Add(period)
		l.mu.Lock()
		if l.role == Active && l.validUntil.Before(next) {
			next = l.validUntil // step down on time if the renewal failed
		}
		if l.role == Standby && l.expiresIn > 0 {
			// Read again just after the holder's lease would expire
			// (unless renewed), not up to a period later: a takeover
			// comes within the lease plus a read, not plus lease/3.
			if at := time.Now().Add(l.expiresIn + expiryMargin); at.Before(next) {
				next = at
			}
			l.expiresIn = 0
		}
		l.mu.Unlock()
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (l *Lease) tick(ctx context.Context) {
	l.mu.Lock()
	role, epoch, until := l.role, l.epoch, l.validUntil
	l.mu.Unlock()
	if role == Active {
		if time.Now().Before(until) {
			t0 := time.Now()
			// A renewal is bounded by the lease: past its end it
			// cannot help any more.
			rctx, cancel := context.WithDeadline(ctx, until)
			ok, err := l.renew(rctx, epoch)
			cancel()
			l.setErr(err)
			if ok {
				l.mu.Lock()
				l.validUntil = t0.Add(l.opt.Lease)
				l.mu.Unlock()
				return
			}
			if err != nil && time.Now().Before(until) {
				l.logger.Warn("cluster: renewing the lease", "err", err, "left", time.Until(until).Round(time.Millisecond))
				return // try again at the next tick, still before the end
			}
		}
		l.stepDown(epoch, "the lease ended unrenewed")
		return
	}
	t0 := time.Now()
	actx, cancel := context.WithTimeout(ctx, l.opt.Lease/3)
	holder, newEpoch, took, size, err := l.acquire(actx)
	cancel()
	l.setErr(err)
	if err != nil {
		if ctx.Err() == nil {
			l.logger.Warn("cluster: reading the lease", "err", err)
		}
		return
	}
	l.mu.Lock()
	l.active, l.size = holder, size
	if took {
		l.role, l.epoch, l.validUntil, l.expires = Active, newEpoch, t0.Add(l.opt.Lease), time.Time{}
	} else {
		l.epoch = newEpoch
	}
	l.mu.Unlock()
	if took {
		l.logger.Info("cluster: took the lease: active", "node", l.opt.Node, "epoch", newEpoch)
		l.changes <- Change{Role: Active, Epoch: newEpoch}
	}
}

func (l *Lease) setErr(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

func (l *Lease) stepDown(epoch int64, why string) {
	l.mu.Lock()
	l.role, l.validUntil, l.expires = Standby, time.Time{}, time.Time{}
	if l.active.Node == l.opt.Node {
		l.active = Peer{} // unknown until the next read: not this node
	}
	l.mu.Unlock()
	l.logger.Warn("cluster: stepping down to standby", "node", l.opt.Node, "epoch", epoch, "why", why)
	l.changes <- Change{Role: Standby, Epoch: epoch}
}

// renew extends the lease by one lease from the database's now(), if this
// node still holds it under epoch and it has not expired there. One
// statement, so it never leaves a lock behind if this node freezes.
func (l *Lease) renew(ctx context.Context, epoch int64) (bool, error) {
	tag, err := l.pool.Exec(ctx, `UPDATE indelible_lease SET expires_at = now() + $1::interval
		WHERE node = $2 AND epoch = $3 AND expires_at > now()`, l.opt.Lease.String(), l.opt.Node, epoch)
	if err != nil {
		return false, fmt.Errorf("cluster: renewing: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// acquire reads the lease and takes it if it has expired on the database's
// clock: in one transaction, it ends the old holder's sessions, sets itself
// as the holder under a new epoch (one past both the lease's and the
// fence's) and bumps the fence to it, so the old holder's commits fail from
// the moment this commits. It returns the holder after the call and its
// epoch, and whether that is this node.
func (l *Lease) acquire(ctx context.Context) (holder Peer, epoch int64, took bool, size int64, err error) {
	// Most reads find the lease held: one plain statement, no lock (a
	// standby frozen inside a transaction must not block the renewals).
	var expired bool
	var left float64 // seconds until the lease expires, on the database's clock
	if err := l.pool.QueryRow(ctx, `SELECT node, url, epoch, expires_at < now(),
		coalesce((SELECT size FROM indelible_fence), -1),
		CASE WHEN isfinite(expires_at) THEN greatest(0, least(3600, extract(epoch FROM expires_at - now())))::float8 ELSE 0 END
		FROM indelible_lease`).
		Scan(&holder.Node, &holder.URL, &epoch, &expired, &size, &left); err != nil {
		return Peer{}, 0, false, 0, fmt.Errorf("cluster: reading the lease: %w", err)
	}
	if !expired {
		l.mu.Lock()
		l.expiresIn = time.Duration(left * float64(time.Second))
		l.expires = time.Now().Add(l.expiresIn)
		l.mu.Unlock()
		return holder, epoch, false, size, nil
	}
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		// Never wait on a frozen node's locks longer than this: the
		// next tick tries again (and its sessions are being ended).
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, max(100, (l.opt.Lease/6).Milliseconds()))); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT node, url, epoch, expires_at < now() FROM indelible_lease FOR UPDATE`).
			Scan(&holder.Node, &holder.URL, &epoch, &expired); err != nil {
			return err
		}
		if !expired {
			return nil
		}
		// A node without a lease serving the store holds its owner lock
		// for its life: take nothing. (A single node starting meanwhile
		// finds the lock taken and refuses to start.)
		var free bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(ownerLock)).Scan(&free); err != nil {
			return err
		}
		if !free {
			return ErrSingleNode
		}
		// The old holder's lease is over: end its sessions so that none
		// of its open transactions (a frozen commit holding the fence's
		// row) can block this one. Not ours: a restarted node of the
		// same name has another instance id.
		if holder.Node != "" {
			if _, err := tx.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE starts_with(application_name, $1) AND application_name <> $2 AND pid <> pg_backend_pid()`,
				appPrefix(holder.Node), l.appName); err != nil {
				return fmt.Errorf("ending the old holder's sessions: %w", err)
			}
		}
		var fence int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(epoch), 0) FROM indelible_fence`).Scan(&fence); err != nil {
			return err
		}
		epoch = max(epoch, fence) + 1
		if _, err := tx.Exec(ctx, `UPDATE indelible_lease SET node = $1, url = $2, epoch = $3, expires_at = now() + $4::interval`,
			l.opt.Node, l.opt.URL, epoch, l.opt.Lease.String()); err != nil {
			return err
		}
		// The fence: every commit checks its epoch in its own transaction.
		if _, err := tx.Exec(ctx, `UPDATE indelible_fence SET epoch = $1`, epoch); err != nil {
			return fmt.Errorf("bumping the fence: %w", err)
		}
		holder, took = Peer{Node: l.opt.Node, URL: l.opt.URL}, true
		return nil
	})
	if err != nil {
		return Peer{}, 0, false, 0, fmt.Errorf("cluster: taking the lease: %w", err)
	}
	return holder, epoch, took, size, nil
}

// Release gives the lease up, if this node still holds it under epoch, so
// that another node takes it at once instead of when it expires. Call it
// only once this node has stopped committing (its store closed): a node
// that gives up its lease must not commit again under its epoch. The next
// takeover still bumps the epoch.
func (l *Lease) Release(ctx context.Context, epoch int64) error {
	l.mu.Lock()
	l.role, l.validUntil = Standby, time.Time{}
	l.mu.Unlock()
	if _, err := l.pool.Exec(ctx, `UPDATE indelible_lease SET expires_at = now() WHERE node = $1 AND epoch = $2`,
		l.opt.Node, epoch); err != nil {
		return fmt.Errorf("cluster: giving the lease up: %w", err)
	}
	return nil
}
