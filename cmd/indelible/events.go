package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"indelible.dev/auth"
	"indelible.dev/events"
	"indelible.dev/internal/keyfile"
	"indelible.dev/ledger"
)

// Files of events mode inside the data directory.
const (
	masterKeyFile  = "master.key"  // the master key, 0600: 32 random bytes, hex
	tokensFile     = "tokens.json" // token names, scopes and SHA-256 hashes, 0600
	adminTokenFile = "admin.token" // the first admin token, 0600, written once
	firstAdmin     = "admin"       // the first admin token's name
	masterKeyEnv   = "INDELIBLE_MASTER_KEY"
	masterKeySize  = 32
)

// eventsFlags registers the flags of events mode on serve.
func eventsFlags(f *pflag.FlagSet, cfg *serveConfig) {
	f.StringVar(&cfg.masterKey, "master-key", "", "events mode: file holding the 32-byte master key (raw, hex or base64; default: $"+masterKeyEnv+", else <data>/"+masterKeyFile+", created on first start)")
}

// eventsServer is the events layer and token store of a running server.
type eventsServer struct {
	layer      *events.Layer
	tokens     *auth.Store
	adminToken string // the first admin token if it was created on this start ("" otherwise)
}

// openEvents opens the events layer over l with the master key and the token
// store, creating the first admin token (and <data>/admin.token) if there is
// no token yet.
func openEvents(cfg serveConfig, l *ledger.Log, logger *slog.Logger) (*eventsServer, error) {
	master, err := masterKey(cfg)
	if err != nil {
		return nil, err
	}
	kr, err := events.NewKeyring(master)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	tokens, err := auth.Open(auth.NewFilePersister(filepath.Join(cfg.dataDir, tokensFile)), time.Now)
	if err != nil {
		return nil, fmt.Errorf("opening the token store: %w", err)
	}
	es := &eventsServer{tokens: tokens}
	if len(tokens.List()) == 0 {
		_, secret, err := tokens.Create(firstAdmin, []auth.Scope{auth.ScopeAdmin})
		if err != nil {
			return nil, fmt.Errorf("creating the first admin token: %w", err)
		}
		if err := keyfile.Write(filepath.Join(cfg.dataDir, adminTokenFile), secret+"\n", keyfile.SecretPerm, true); err != nil {
			return nil, fmt.Errorf("writing the first admin token: %w", err)
		}
		es.adminToken = secret
	}
	es.layer, err = events.Open(events.Config{Log: l, Keyring: kr, Logger: logger})
	if err != nil {
		return nil, err
	}
	return es, nil
}

// masterKey returns the master key: from --master-key FILE, else from
// $INDELIBLE_MASTER_KEY, else from <data>/master.key, created (32 random
// bytes, hex, 0600) if missing. Files and the variable may hold the key raw
// (files only), in hex or in standard base64.
func masterKey(cfg serveConfig) ([]byte, error) {
	if cfg.masterKey != "" {
		b, err := os.ReadFile(cfg.masterKey)
		if err != nil {
			return nil, fmt.Errorf("reading the master key: %w", err)
		}
		return parseMasterKey(b, "--master-key "+cfg.masterKey)
	}
	if v, ok := os.LookupEnv(masterKeyEnv); ok {
		return parseMasterKey([]byte(v), "$"+masterKeyEnv)
	}
	file := filepath.Join(cfg.dataDir, masterKeyFile)
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
	return parseMasterKey(b, file)
}

// parseMasterKey decodes a master key given raw, in hex or in base64. The
// error never includes the key.
func parseMasterKey(b []byte, from string) ([]byte, error) {
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

// printEventsBanner tells the operator what is running in events mode and how
// to use it: the first lines as in raw mode, the admin token when it was just
// created, and commands to paste.
func printEventsBanner(w io.Writer, cfg serveConfig, addr, origin, vkey string, created bool, size int64, es *eventsServer) {
	url := "http://" + addr
	if cfg.tlsCert != "" {
		url = "https://" + addr
	}
	keyNote := ""
	if created {
		keyNote = fmt.Sprintf("\n  new key:      signer %s (0600, keep it secret), verifier %s",
			filepath.Join(cfg.dataDir, logKeyFile), filepath.Join(cfg.dataDir, logPubFile))
	}
	tokenFile := filepath.Join(cfg.dataDir, adminTokenFile)
	tokenNote := ""
	if es.adminToken != "" {
		tokenNote = fmt.Sprintf("\n  admin token:  %s\n                (shown once; also written to %s, 0600)", es.adminToken, tokenFile)
	}
	auth := fmt.Sprintf(`-H "Authorization: Bearer $(cat %s)"`, shellQuote(tokenFile))
	fmt.Fprintf(w, `Indelible audit ledger (mode events)
  origin:       %s
  verifier key: %s%s
  data:         %s (tree size %d)
  listening on  %[6]s%[8]s

Try:
  curl %[7]s -H 'Content-Type: application/json' -d '{"action":"demo.hello"}' %[6]s/v1/events
  curl %[7]s '%[6]s/v1/events?action=demo.hello'
  curl %[7]s %[6]s/v1/events/0/receipt > receipt.txt
  indelible verify receipt.txt --key '%[2]s'
  indelible checkpoint --url %[6]s --key '%[2]s'
`, origin, vkey, keyNote, cfg.dataDir, size, url, auth, tokenNote)
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
