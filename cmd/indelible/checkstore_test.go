package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/cmd/indelible/internal/eventsetup"
	"indelible.dev/eventstore"
	"indelible.dev/ledger"
)

// checkEventsStore opens the stopped server's store in dir and runs the
// events layer's invariant check over all of it (eventstore.Layer.Check).
func checkEventsStore(t testing.TB, dir string) {
	t.Helper()
	_, _, closeStore := openCheckedStore(t, dir)
	closeStore()
}

// openCheckedStore opens the stopped server's store in dir (ledger and
// events layer) and runs eventstore.Layer.Check over it; closeStore closes
// both, and must be called before the server starts on dir again.
func openCheckedStore(t testing.TB, dir string) (l *ledger.Log, el *eventstore.Layer, closeStore func()) {
	t.Helper()
	skey, err := os.ReadFile(filepath.Join(dir, logKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	l, err = ledger.Open(filepath.Join(dir, ledgerDir), ledger.Options{Signer: s, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	master, _, err := eventsetup.MasterKey(dir, eventsetup.KeyOptions{}, false)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	kr, err := eventstore.NewKeyring(master)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	el, err = eventstore.Open(eventstore.Config{Log: l, Keyring: kr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	closeStore = func() { el.Close(); l.Close() }
	if err := el.Check(); err != nil {
		closeStore()
		t.Fatalf("events store after the run: %v", err)
	}
	return l, el, closeStore
}
