// Package eventsetup opens the events layer of indelible serve: the master
// key (from a file, the environment or the data directory, created on first
// start), the token store and the first admin token.
package eventsetup

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"indelible.dev/audited"
	"indelible.dev/auth"
	"indelible.dev/events"
	"indelible.dev/internal/keyfile"
	"indelible.dev/ledger"
)

// Files of events mode inside the data directory, and the variable that may
// hold the master key.
const (
	MasterKeyFile  = "master.key"  // the master key, 0600: 32 random bytes, hex
	TokensFile     = "tokens.json" // token names, scopes and SHA-256 hashes, 0600
	AdminTokenFile = "admin.token" // the first admin token, 0600, written once
	MasterKeyEnv   = "INDELIBLE_MASTER_KEY"
	firstAdmin     = "admin" // the first admin token's name
	masterKeySize  = 32
)

// Server is the events layer, audit service and token store of a running
// server.
type Server struct {
	Layer      *events.Layer
	Audit      *audited.Service // the audit policy: close it before Layer
	Tokens     *auth.Store
	AdminToken string // the first admin token if it was created on this start ("" otherwise)
}

// Open opens the events layer over l with the master key, and the audit
// service with its token store (in the store beside the events; an
// existing <data>/tokens.json is migrated into it and renamed
// tokens.json.migrated). It creates the first admin token (and
// <data>/admin.token) if there is no token yet and the log is empty; with
// no token but entries in the log, the tokens were lost and it fails
// (audited.ErrTokensLost) unless newAdmin is set. retention, if positive,
// shreds the days older than it (see events.Layer.Retain).
func Open(dataDir, masterKeyArg string, l *ledger.Log, logger *slog.Logger, retention time.Duration, newAdmin bool) (*Server, error) {
	master, err := MasterKey(dataDir, masterKeyArg)
	if err != nil {
		return nil, err
	}
	kr, err := events.NewKeyring(master)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if n, err := audited.MigrateTokenFile(l, filepath.Join(dataDir, TokensFile)); err != nil {
		return nil, fmt.Errorf("opening the token store: %w", err)
	} else if n > 0 {
		logger.Info("tokens migrated into the store", "tokens", n, "from", filepath.Join(dataDir, TokensFile), "renamed_to", TokensFile+".migrated")
	}
	es := &Server{}
	es.Layer, err = events.Open(events.Config{Log: l, Keyring: kr, Logger: logger, Retention: retention})
	if err != nil {
		return nil, err
	}
	es.Audit, err = audited.New(audited.Config{Layer: es.Layer, Log: l})
	if err != nil {
		es.Layer.Close()
		return nil, fmt.Errorf("opening the token store: %w", err)
	}
	es.Tokens = es.Audit.Tokens()
	// The token and the event recording it are one batch (package audited).
	secret, created, err := es.Audit.Bootstrap(context.Background(), firstAdmin, []auth.Scope{auth.ScopeAdmin}, newAdmin)
	if err != nil {
		es.Layer.Close()
		if errors.Is(err, audited.ErrTokensLost) {
			return nil, fmt.Errorf("%w: restore %s from a backup, or start once with --new-admin-token to make a new admin token (recorded in the log)", err, TokensFile)
		}
		return nil, err
	}
	if created {
		if newAdmin {
			logger.Warn("a new admin token was created: the log had entries but no token", "name", firstAdmin)
		}
		// The secret is shown by the banner and kept in this file; a file
		// left by the admin token of a lost token store is replaced.
		if err := keyfile.Write(filepath.Join(dataDir, AdminTokenFile), secret+"\n", keyfile.SecretPerm, true); err != nil {
			es.Layer.Close()
			return nil, fmt.Errorf("writing the first admin token: %w", err)
		}
		es.AdminToken = secret
	}
	return es, nil
}

// MasterKey returns the master key: from --master-key FILE, else from
// $INDELIBLE_MASTER_KEY, else from <data>/master.key, created (32 random
// bytes, hex, 0600) if missing. Files and the variable may hold the key raw
// (files only), in hex or in standard base64.
func MasterKey(dataDir, file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading the master key: %w", err)
		}
		return ParseMasterKey(b, "--master-key "+file)
	}
	if v, ok := os.LookupEnv(MasterKeyEnv); ok {
		return ParseMasterKey([]byte(v), "$"+MasterKeyEnv)
	}
	file = filepath.Join(dataDir, MasterKeyFile)
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, masterKeySize)
		rand.Read(key)
		if err := keyfile.Write(file, hex.EncodeToString(key)+"\n", keyfile.SecretPerm, false); err != nil {
			return nil, fmt.Errorf("creating the master key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the master key: %w", err)
	}
	return ParseMasterKey(b, file)
}

// ParseMasterKey decodes a master key given raw, in hex or in base64. The
// error never includes the key.
func ParseMasterKey(b []byte, from string) ([]byte, error) {
	if len(b) == masterKeySize {
		return b, nil
	}
	s := strings.TrimSpace(string(b))
	if k, err := hex.DecodeString(s); err == nil && len(k) == masterKeySize {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == masterKeySize {
		return k, nil
	}
	return nil, fmt.Errorf("master key from %s: want %d bytes, raw, hex or base64", from, masterKeySize)
}
