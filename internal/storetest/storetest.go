// Package storetest opens a real ledger and the events layer over it in a
// test's temporary directory, with the same log key and master key at each
// reopen, as a restarted server has: the set-up of the tests of the
// packages above eventstore (audited, export). Only tests import it
// (deps_test.go).
package storetest

import (
	"crypto/rand"
	"log/slog"
	"testing"

	"indelible.dev/eventstore"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

// Store is a ledger and its events layer in a temporary directory. Log and
// Layer are nil while it is closed.
type Store struct {
	t      testing.TB
	Dir    string
	Key    tlogtest.Key // the log key, named by the origin
	Master []byte       // the master key of the layer's keyring
	Log    *ledger.Log
	Layer  *eventstore.Layer

	up   func(*Store) (down func())
	down func()
}

// New opens a new store whose log has origin in t.TempDir(); t's cleanup
// closes it. up, if not nil, starts what the test runs over the layer
// (an audit service, say) after each Open, and returns what stops it,
// which each Close calls first.
func New(t testing.TB, origin string, up func(*Store) (down func())) *Store {
	t.Helper()
	s := &Store{t: t, Dir: t.TempDir(), Key: tlogtest.NewKey(t, origin), Master: make([]byte, 32), up: up}
	rand.Read(s.Master)
	s.Open()
	t.Cleanup(s.Close)
	return s
}

// OpenLog opens the ledger alone, with the store's key and no logging: a
// test that edits the store as an earlier version or an operator would
// closes it before Open.
func (s *Store) OpenLog() *ledger.Log {
	s.t.Helper()
	l, err := ledger.Open(s.Dir, ledger.Options{Signer: s.Key.Signer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		s.t.Fatal(err)
	}
	return l
}

// Open opens the ledger and the layer over it, then runs New's up, as a
// (re)started server does.
func (s *Store) Open() {
	s.t.Helper()
	s.Log = s.OpenLog()
	kr, err := eventstore.NewKeyring(s.Master)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.Layer, err = eventstore.Open(eventstore.Config{Log: s.Log, Keyring: kr}); err != nil {
		s.t.Fatal(err)
	}
	if s.up != nil {
		s.down = s.up(s)
	}
}

// Close stops what up started, then closes the layer and the ledger; it
// does nothing when closed.
func (s *Store) Close() {
	if s.Log == nil {
		return
	}
	if s.down != nil {
		s.down()
		s.down = nil
	}
	if s.Layer != nil {
		s.Layer.Close()
	}
	s.Log.Close()
	s.Log, s.Layer = nil, nil
}

// Reopen closes and opens the store: a restart.
func (s *Store) Reopen() { s.t.Helper(); s.Close(); s.Open() }
