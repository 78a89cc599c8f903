package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/cmd/indelible/internal/eventsetup"
	"indelible.dev/events"
	"indelible.dev/ledger"
)

// checkEventsStore opens the stopped server's store in dir and runs the
// events layer's invariant check over all of it (events.Layer.Check).
func checkEventsStore(t testing.TB, dir string) {
	t.Helper()
	skey, err := os.ReadFile(filepath.Join(dir, logKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(filepath.Join(dir, ledgerDir), ledger.Options{Signer: s, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	master, _, err := eventsetup.MasterKey(dir, eventsetup.KeyOptions{}, false)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := events.NewKeyring(master)
	if err != nil {
		t.Fatal(err)
	}
	el, err := events.Open(events.Config{Log: l, Keyring: kr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer el.Close()
	if err := el.Check(); err != nil {
		t.Fatalf("events store after the run: %v", err)
	}
}
