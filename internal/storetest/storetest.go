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
}

// New opens a new store whose log has origin in t.TempDir(); t's cleanup
// closes it (after the cleanups registered later, so a service over the
// layer that the test registers closes first).
func New(t testing.TB, origin string) *Store {
	t.Helper()
	s := &Store{t: t, Dir: t.TempDir(), Key: tlogtest.NewKey(t, origin), Master: make([]byte, 32)}
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

// Open opens the ledger and the layer over it, as a (re)started server
// does.
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
}

// Close closes the layer, then the ledger; it does nothing when closed.
func (s *Store) Close() {
	if s.Log == nil {
		return
	}
	if s.Layer != nil {
		s.Layer.Close()
	}
	s.Log.Close()
	s.Log, s.Layer = nil, nil
}
