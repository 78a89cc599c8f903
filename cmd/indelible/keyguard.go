package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
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

// monitoredWitness is a witness client that can also read the witness's
// monitoring endpoint, so the ledger can ask at start what it last cosigned
// (ledger.WitnessMonitor).
type monitoredWitness struct {
	*witness.Client
	hc *http.Client
}

// monitorWitnesses wraps the configured witnesses as monitoredWitness.
func monitorWitnesses(cfg ledger.WitnessConfig) {
	hc := &http.Client{
		Timeout: ledger.DefaultWitnessTimeout,
		// A witness answers for itself: never follow a redirect elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for i, w := range cfg.Witnesses {
		if c, ok := w.(*witness.Client); ok {
			cfg.Witnesses[i] = monitoredWitness{Client: c, hc: hc}
		}
	}
}

// LatestCheckpoint reads GET <url>/<hex sha256 of origin>/checkpoint.
func (m monitoredWitness) LatestCheckpoint(ctx context.Context, origin string) ([]byte, error) {
	h := sha256.Sum256([]byte(origin))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL()+"/"+hex.EncodeToString(h[:])+"/checkpoint", nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil // the witness knows no checkpoint of this log
	default:
		return nil, fmt.Errorf("witness %s: monitoring endpoint answered %d", m.URL(), resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, itlog.MaxCheckpointSize+1))
	if err != nil {
		return nil, fmt.Errorf("witness %s: reading the monitoring endpoint: %w", m.URL(), err)
	}
	if len(body) > itlog.MaxCheckpointSize {
		return nil, fmt.Errorf("witness %s: checkpoint larger than %d bytes", m.URL(), itlog.MaxCheckpointSize)
	}
	return body, nil
}
