package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"indelible.dev/ledger"
)

// hwmSuffix names the key's high-water mark file: <key file>.hwm, beside the
// key (see ledger/keyguard.go).
const hwmSuffix = ".hwm"

// keyGuard returns the ledger's key guard for the key file. init is --init,
// or a key this very start created (which has signed nothing).
func keyGuard(keyFile string, init bool) *ledger.KeyGuard {
	return &ledger.KeyGuard{File: keyFile + hwmSuffix, Init: init}
}

// checkKeyNotLost refuses to create a new <data>/log.key when the data
// directory already holds a store: that store's log key is lost, and a new
// key would start a second log in its place.
func checkKeyNotLost(dataDir string) error {
	store := filepath.Join(dataDir, ledgerDir)
	if _, err := os.Stat(store); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	return fmt.Errorf("%s holds a log store, but its key %s is missing: restore the key (the log's verifiers know only that one), "+
		"or give its path with --key; refusing to create a new key for an existing log",
		store, filepath.Join(dataDir, logKeyFile))
}
