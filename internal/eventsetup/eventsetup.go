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

	"indelible.dev/auth"
	"indelible.dev/event"
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
	// firstAdminEventID is the id of the event recording the first admin
	// token (written by auth.ServerActor).
	firstAdminEventID = "indelible.first-admin-token"
	masterKeySize     = 32
)

// Server is the events layer and token store of a running server.
type Server struct {
	Layer      *events.Layer
	Tokens     *auth.Store
	AdminToken string // the first admin token if it was created on this start ("" otherwise)
}

// Open opens the events layer over l with the master key and the token
// store, creating the first admin token (and <data>/admin.token) if there is
// no token yet. retention, if positive, shreds the days older than it (see
// events.Layer.Retain).
func Open(dataDir, masterKeyArg string, l *ledger.Log, logger *slog.Logger, retention time.Duration) (*Server, error) {
	master, err := MasterKey(dataDir, masterKeyArg)
	if err != nil {
		return nil, err
	}
	kr, err := events.NewKeyring(master)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	tokens, err := auth.Open(auth.NewFilePersister(filepath.Join(dataDir, TokensFile)), time.Now)
	if err != nil {
		return nil, fmt.Errorf("opening the token store: %w", err)
	}
	es := &Server{Tokens: tokens}
	es.Layer, err = events.Open(events.Config{Log: l, Keyring: kr, Logger: logger, Retention: retention})
	if err != nil {
		return nil, err
	}
	if len(tokens.List()) == 0 {
		// Recorded first, under a fixed id: a start that dies before the
		// token exists records it again as the same event (deduplicated).
		scopes := []auth.Scope{auth.ScopeAdmin}
		ev := auth.Event(auth.ActionCreate, auth.ServerActor, auth.Token{Name: firstAdmin, Scopes: scopes})
		ev.ID = firstAdminEventID
		if _, err := es.Layer.Append(context.Background(), auth.ServerActor, []event.Event{ev}); err != nil {
			es.Layer.Close()
			return nil, fmt.Errorf("recording the first admin token: %w", err)
		}
		_, secret, err := tokens.Create(firstAdmin, scopes)
		if err != nil {
			es.Layer.Close()
			return nil, fmt.Errorf("creating the first admin token: %w", err)
		}
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
