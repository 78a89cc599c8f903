// Package eventsetup opens the events layer of indelible serve: the master
// key (from a file, the environment or the data directory, created on first
// start), the token store and the first admin token.
package eventsetup

import (
	"bytes"
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
	"slices"
	"strings"
	"time"

	"indelible.dev/audited"
	"indelible.dev/auth"
	"indelible.dev/cmd/indelible/internal/keyfile"
	"indelible.dev/eventstore"
	"indelible.dev/ledger"
)

// Files of events mode inside the data directory, and the variable that may
// hold the master key.
const (
	MasterKeyFile  = "master.key"  // where earlier versions kept the master key (now DefaultMasterKeyPath)
	TokensFile     = "tokens.json" // token names, scopes and SHA-256 hashes, 0600
	AdminTokenFile = "admin.token" // the first admin token, 0600, written once
	MasterKeyEnv   = "INDELIBLE_MASTER_KEY"
	// MasterKeySuffix makes the default master key file's name from the
	// data directory's: beside it, not in it (DefaultMasterKeyPath).
	MasterKeySuffix = ".master.key"
	firstAdmin      = "admin" // the first admin token's name
	masterKeySize   = 32
)

// Server is the events layer, audit service and token store of a running
// server.
type Server struct {
	Layer      *eventstore.Layer
	Audit      *audited.Service // the audit policy: close it before Layer
	Tokens     *auth.Store
	AdminToken string // the admin token created on this start, if any ("" otherwise)
	// AdminTokenExpires is when AdminToken, a bootstrap token, expires.
	AdminTokenExpires time.Time
	MasterKey         KeySource // where the master key came from
}

// Options are indelible serve's flags of events mode that Open reads.
type Options struct {
	Key KeyOptions // --master-key, --allow-key-in-data
	// NewAdminToken (--new-admin-token) makes a new bootstrap admin token
	// on a start that is not the first: the way back in when the tokens
	// were lost or no admin token works (all revoked, expired, or their
	// secrets lost).
	NewAdminToken bool
}

// Open opens the events layer over l with the master key (see MasterKey),
// and the audit service with its token store (in the store beside the
// events; an existing <data>/tokens.json is migrated into it and renamed
// tokens.json.migrated). It creates the first admin token (and
// <data>/admin.token) if there is no token yet and the log is empty: a
// bootstrap token (see auth.Token.Bootstrap). With no token but entries in
// the log, the tokens were lost and it fails (audited.ErrTokensLost)
// unless o.NewAdminToken is set. On a later start it warns while
// admin.token still holds a live token, deletes the file once its token
// can no longer authenticate, and warns when no admin token works at all;
// with o.NewAdminToken it makes a new bootstrap admin token (and file)
// instead. retention, if positive, shreds the days older than it (see
// eventstore.Layer.Retain).
func Open(dataDir string, o Options, l *ledger.Log, logger *slog.Logger, retention time.Duration) (*Server, error) {
	key := o.Key
	cp, _ := l.Published()
	master, src, err := MasterKey(dataDir, key, cp.N == 0)
	if err != nil {
		return nil, err
	}
	if src.InData && !key.AllowInData {
		logger.Warn("the master key is inside the data directory: a copy of the directory can read every event; move it beside the directory (then restart), or pass --allow-key-in-data to keep it there",
			"file", src.Path, "move_to", DefaultMasterKeyPath(dataDir))
	}
	kr, err := eventstore.NewKeyring(master)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if n, err := audited.MigrateTokenFile(l, filepath.Join(dataDir, TokensFile)); err != nil {
		return nil, fmt.Errorf("opening the token store: %w", err)
	} else if n > 0 {
		logger.Info("tokens migrated into the store", "tokens", n, "from", filepath.Join(dataDir, TokensFile), "renamed_to", TokensFile+".migrated")
	}
	es := &Server{MasterKey: src}
	es.Layer, err = eventstore.Open(eventstore.Config{Log: l, Keyring: kr, Logger: logger, Retention: retention})
	if err != nil {
		return nil, err
	}
	es.Audit, err = audited.New(audited.Config{Layer: es.Layer, Log: l})
	if err != nil {
		es.Layer.Close()
		return nil, fmt.Errorf("opening the token store: %w", err)
	}
	es.Tokens = es.Audit.Tokens()
	file := filepath.Join(dataDir, AdminTokenFile)
	// The token and the event recording it are one batch (package audited).
	secret, created, err := es.Audit.Bootstrap(context.Background(), firstAdmin, []auth.Scope{auth.ScopeAdmin}, o.NewAdminToken)
	if err != nil {
		es.Layer.Close()
		if errors.Is(err, audited.ErrTokensLost) {
			return nil, fmt.Errorf("%w: restore %s from a backup, or start once with --new-admin-token to make a new admin token (recorded in the log)", err, TokensFile)
		}
		return nil, err
	}
	switch {
	case created:
		if o.NewAdminToken {
			logger.Warn("a new admin token was created: the log had entries but no token", "name", firstAdmin)
		}
		// The secret is shown by the banner and kept in this file; a file
		// left by the admin token of a lost token store is replaced.
		if err := keyfile.Write(file, secret+"\n", keyfile.SecretPerm, true); err != nil {
			es.Layer.Close()
			return nil, fmt.Errorf("writing the first admin token: %w", err)
		}
		es.AdminToken = secret
		if t, err := es.Tokens.Get(firstAdmin); err == nil {
			es.AdminTokenExpires = t.Expires
		}
	case o.NewAdminToken:
		if err := es.newAdminToken(file); err != nil {
			es.Layer.Close()
			return nil, err
		}
	default:
		checkAdminTokenFile(file, es.Tokens, logger)
		if !es.Tokens.LiveAdmin() {
			logger.Warn("no admin token works (revoked or expired): to make a new one, restart with --new-admin-token")
		}
	}
	return es, nil
}

// newAdminToken makes a new bootstrap admin token, named after the time,
// with its record (actor and submitter the server) in one batch, and
// writes it to file.
func (es *Server) newAdminToken(file string) error {
	name := "admin-" + time.Now().UTC().Format("20060102T150405Z")
	t, secret, err := es.Audit.NewBootstrapToken(context.Background(), name, []auth.Scope{auth.ScopeAdmin})
	if err != nil {
		return fmt.Errorf("creating a new admin token: %w", err)
	}
	if err := keyfile.Write(file, secret+"\n", keyfile.SecretPerm, true); err != nil {
		return fmt.Errorf("writing the new admin token: %w", err)
	}
	es.AdminToken, es.AdminTokenExpires = secret, t.Expires
	return nil
}

// checkAdminTokenFile warns while the first admin token, in file, can
// still authenticate, and deletes the file once it cannot (expired,
// superseded or revoked): a live admin token must not stay in the data
// directory, and a dead one is of no use there.
func checkAdminTokenFile(file string, tokens *auth.Store, logger *slog.Logger) {
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	t, err := tokens.Lookup(strings.TrimSpace(string(b)))
	switch {
	case errors.Is(err, auth.ErrNoToken):
		// Not a token of this store: left alone.
	case err != nil:
		if rerr := os.Remove(file); rerr == nil {
			logger.Info("deleted the first admin token's file: the token no longer authenticates", "file", file, "reason", err)
		}
	case t.Bootstrap:
		logger.Warn("the data directory holds a live admin token: create an admin token of your own (indelible token create --name NAME --scope admin), which ends this one, and delete the file",
			"file", file, "expires", t.Expires)
	default:
		logger.Warn("the data directory holds a live admin token that never expires (made by an earlier version): create an admin token of your own, revoke this one (indelible token revoke "+t.Name+") and delete the file",
			"file", file)
	}
}

// KeyOptions say where the master key is: indelible serve's --master-key
// and --allow-key-in-data.
type KeyOptions struct {
	File        string // a file holding the key; "" for $INDELIBLE_MASTER_KEY, else the default path
	AllowInData bool   // accept a key file inside the data directory
}

// KeySource says where the master key came from.
type KeySource struct {
	Path    string // the file; "" for the environment
	Created bool   // created by this start, at the default path
	// InData: the key is in the data directory (the legacy
	// <data>/master.key, or a file --allow-key-in-data let in).
	InData bool
}

// DefaultMasterKeyPath is where the master key is kept when neither
// --master-key nor the environment gives it: beside the data directory, not
// in it (<data>.master.key, e.g. ./indelible-data.master.key), so that a
// copy, backup or snapshot of the data directory cannot read the events.
func DefaultMasterKeyPath(dataDir string) string {
	d := filepath.Clean(dataDir)
	if b := filepath.Base(d); b == "." || b == ".." || b == string(filepath.Separator) {
		if abs, err := filepath.Abs(d); err == nil {
			d = abs
		}
	}
	return d + MasterKeySuffix
}

// MasterKey returns the master key and where it came from, in this order:
//
//   - --master-key FILE (o.File); refused inside the data directory unless
//     o.AllowInData;
//   - $INDELIBLE_MASTER_KEY;
//   - the default path (DefaultMasterKeyPath), or, for a data directory of
//     an earlier version, <data>/master.key, used with a warning
//     (KeySource.InData) until the operator moves it; if both exist they
//     must hold the same key;
//   - else a new key (32 random bytes, hex, 0600) at the default path, if
//     mayCreate: a store that already holds events was sealed under a key
//     that must be found, not replaced.
//
// Files hold the key in hex or base64 (or 32 raw bytes); the variable in
// hex or base64 (ParseMasterKey).
func MasterKey(dataDir string, o KeyOptions, mayCreate bool) ([]byte, KeySource, error) {
	if o.File != "" {
		if inside(dataDir, o.File) && !o.AllowInData {
			return nil, KeySource{}, fmt.Errorf("--master-key %s is inside the data directory %s, where a copy of the directory would carry the key with the events it decrypts: keep it elsewhere (e.g. %s), or pass --allow-key-in-data",
				o.File, dataDir, DefaultMasterKeyPath(dataDir))
		}
		k, err := readMasterKey(o.File, "--master-key "+o.File)
		return k, KeySource{Path: o.File, InData: inside(dataDir, o.File)}, err
	}
	if v, ok := os.LookupEnv(MasterKeyEnv); ok {
		k, err := parseMasterKey([]byte(v), "$"+MasterKeyEnv, false)
		return k, KeySource{}, err
	}
	def, legacy := DefaultMasterKeyPath(dataDir), filepath.Join(dataDir, MasterKeyFile)
	kd, errd := readMasterKey(def, def)
	kl, errl := readMasterKey(legacy, legacy)
	switch {
	case errd == nil && errl == nil:
		if !bytes.Equal(kd, kl) {
			return nil, KeySource{}, fmt.Errorf("two different master keys: %s and %s (of an earlier version, in the data directory): keep the one the store was written with and delete the other", def, legacy)
		}
		return kd, KeySource{Path: legacy, InData: true}, nil // a copy left behind: warned about
	case errd == nil && errors.Is(errl, fs.ErrNotExist):
		return kd, KeySource{Path: def}, nil
	case errl == nil && errors.Is(errd, fs.ErrNotExist):
		return kl, KeySource{Path: legacy, InData: true}, nil
	case !errors.Is(errd, fs.ErrNotExist):
		return nil, KeySource{}, errd
	case !errors.Is(errl, fs.ErrNotExist):
		return nil, KeySource{}, errl
	}
	if !mayCreate {
		return nil, KeySource{}, fmt.Errorf("no master key: the store in %s holds events, but there is no %s (nor %s) and $%s is not set; give the key the events were sealed with (--master-key FILE or $%s): a new key would not open them",
			dataDir, def, legacy, MasterKeyEnv, MasterKeyEnv)
	}
	if inside(dataDir, def) && !o.AllowInData {
		return nil, KeySource{}, fmt.Errorf("the default master key path %s is inside the data directory %s: give --master-key FILE outside it, or $%s, or pass --allow-key-in-data", def, dataDir, MasterKeyEnv)
	}
	key := make([]byte, masterKeySize)
	rand.Read(key)
	if err := keyfile.Write(def, hex.EncodeToString(key)+"\n", keyfile.SecretPerm, false); err != nil {
		return nil, KeySource{}, fmt.Errorf("creating the master key (or give --master-key FILE or $%s): %w", MasterKeyEnv, err)
	}
	return key, KeySource{Path: def, Created: true}, nil
}

// readMasterKey reads and parses a key file (errors name it, never the key;
// a missing file is fs.ErrNotExist).
func readMasterKey(file, from string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the master key: %w", err)
	}
	return parseMasterKey(b, from, true)
}

// inside reports whether file is in dir or below it (symbolic links of
// existing directories resolved).
func inside(dir, file string) bool {
	real := func(p string) string {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return p
	}
	d := real(dir)
	f := filepath.Join(real(filepath.Dir(file)), filepath.Base(file))
	rel, err := filepath.Rel(d, f)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// ParseMasterKey decodes a master key given in hex (64 digits) or in
// standard base64 (44 characters, padded), surrounding white space
// ignored. Anything else, a passphrase in particular, is refused: the key
// must be 32 random bytes. The error never includes the key.
func ParseMasterKey(b []byte, from string) ([]byte, error) { return parseMasterKey(b, from, false) }

// parseMasterKey is ParseMasterKey; raw also accepts exactly 32 bytes taken
// as they are (a key file written with head -c 32 /dev/urandom), unless
// they are all printable, as a passphrase would be (32 random bytes are
// all printable with a probability of about 1e-14).
func parseMasterKey(b []byte, from string, raw bool) ([]byte, error) {
	if raw && len(b) == masterKeySize && slices.ContainsFunc(b, func(c byte) bool { return c < 0x20 || c > 0x7e }) {
		return b, nil
	}
	s := strings.TrimSpace(string(b))
	if len(s) == 2*masterKeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	if k, err := base64.StdEncoding.Strict().DecodeString(s); err == nil && len(k) == masterKeySize {
		return k, nil
	}
	what := "64 hex digits or standard base64 (44 characters) of 32 random bytes"
	if raw {
		what += ", or the 32 raw bytes"
	}
	return nil, fmt.Errorf("master key from %s: want %s (a passphrase is not a key; make one with: head -c 32 /dev/urandom | base64)", from, what)
}
