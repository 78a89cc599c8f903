// Package kv is the key-value seam under the ledger: the few operations the
// ledger (and, through its extension namespace, the events layer) needs from
// a store, with two backends: pebble (kv/pebblekv, a directory on the local
// disk, the default) and PostgreSQL (kv/pgkv). kvtest is the conformance
// suite both run.
//
// Keys and values are byte strings; keys sort bytewise (pebble's default
// comparer, and PostgreSQL's bytea order). A Batch is atomic: all of its
// writes become visible and durable together, or none do.
//
// The fence: a Batch that advances the log carries the log's head before and
// after it (Advance). A backend shared by several nodes (PostgreSQL) commits
// the batch only if the stored head is still the one the batch extends and
// the node's epoch is still the current one, in the batch's own
// transaction; otherwise it commits nothing and returns ErrFenced. A batch
// without Advance still checks the epoch. The pebble backend is held by one
// process at a time (its directory lock) and ignores Advance.
package kv

import (
	"context"
	"errors"
	"io"
)

// Errors the ledger branches on.
var (
	// ErrNotFound means the key is not stored.
	ErrNotFound = errors.New("kv: not found")
	// ErrFenced means the store refused a commit because another node has
	// taken it over (a newer epoch) or the log's head is not the one the
	// batch extends: this node must stop writing and signing, and restart
	// from what the store holds. Nothing of the batch was committed.
	ErrFenced = errors.New("kv: fenced: the store's epoch or log head moved on under this node")
	// ErrAmbiguous means the connection was lost while a commit was in
	// flight: it may or may not have committed. The node must stop and
	// reload from the store (it may never sign or serve from memory a state
	// the store may not hold).
	ErrAmbiguous = errors.New("kv: commit outcome unknown (connection lost during COMMIT)")
)

// Head is the log's head as the fence records it: the tree size and root.
type Head struct {
	Size int64
	Root []byte
}

// Store is an open key-value store. All methods are safe for concurrent use.
type Store interface {
	// Get returns the value at key, valid until closer is closed (it may be
	// borrowed from the store's cache), or ErrNotFound.
	Get(key []byte) (value []byte, closer io.Closer, err error)
	// GetSorted calls f(i, value) for each keys[i] that is stored, in order,
	// with value valid only during the call. The keys must be sorted and
	// distinct.
	GetSorted(keys [][]byte, f func(i int, value []byte)) error
	// GetNear is GetSorted for keys that are mostly stored and close
	// together (pebble: plain forward seeks instead of prefix seeks that
	// ask every table's bloom filter). The same contract.
	GetNear(keys [][]byte, f func(i int, value []byte)) error
	// Scan calls f for each key in [lo, hi) (hi nil: no upper bound) in key
	// order, or in reverse order if reverse is set, with key and value valid
	// only during the call, until f returns false.
	Scan(lo, hi []byte, reverse bool, f func(key, value []byte) bool) error
	// NewBatch returns an empty batch; sizeHint is about how many bytes it
	// will hold.
	NewBatch(sizeHint int) Batch
	// Purge makes the keys deleted (by committed batches) in the given
	// [lo, hi) ranges gone from the store's own files as far as the backend
	// can (hi nil: no upper bound): pebble compacts and deletes the obsolete
	// files, PostgreSQL vacuums the table.
	Purge(ctx context.Context, ranges [][2][]byte) error
	// Close closes the store.
	Close() error
}

// Batch is a set of writes committed atomically. A batch is used by one
// goroutine, committed at most once, then closed.
type Batch interface {
	Set(key, value []byte) error
	// SetPrefixed sets prefix+key to value (without building the key).
	SetPrefixed(prefix byte, key, value []byte) error
	// Insert is Set for a key the caller knows is new (an event's keys,
	// which hold its index). The result is Set's whether or not the key
	// is stored; a backend may write new keys more cheaply (PostgreSQL: a
	// plain INSERT instead of an upsert, the whole commit redone with
	// upserts if one of them was stored after all).
	Insert(key, value []byte) error
	// InsertPrefixed is Insert of prefix+key (SetPrefixed's Insert).
	InsertPrefixed(prefix byte, key, value []byte) error
	Delete(key []byte) error
	// DeleteRange deletes every key in [lo, hi).
	DeleteRange(lo, hi []byte) error
	// Advance makes the commit conditional on the log's head being from,
	// and records to as the new head (see the package comment).
	Advance(from, to Head)
	// Commit commits the batch; with sync, it is durable when Commit
	// returns.
	Commit(sync bool) error
	// Apply starts a durable commit and Wait waits for its outcome: the
	// ledger builds its next batch meanwhile. Batches applied one after the
	// other commit in that order. What Apply made visible before Wait
	// returns depends on the backend: callers read nothing of it before.
	Apply() error
	Wait() error
	// Close releases the batch.
	Close()
}

// Epocher is a store shared by several nodes, whose commits are fenced by an
// epoch (PostgreSQL).
type Epocher interface {
	// Epoch returns the epoch this store commits under.
	Epoch() int64
	// SetEpoch sets the epoch this store commits under (after a takeover
	// has set it in the store).
	SetEpoch(int64)
	// FenceHead returns the log head the fence records, and false if no log
	// has been created.
	FenceHead(ctx context.Context) (Head, bool, error)
}

// Fatal reports whether err means the node must stop and reload from the
// store: a fenced or ambiguous commit.
func Fatal(err error) bool {
	return errors.Is(err, ErrFenced) || errors.Is(err, ErrAmbiguous)
}
