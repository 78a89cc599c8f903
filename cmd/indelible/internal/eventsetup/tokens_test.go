package eventsetup

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"indelible.dev/audited"
	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

// openLog opens the ledger of a data directory.
func openLog(t *testing.T, dir string, key tlogtest.Key) *ledger.Log {
	t.Helper()
	l, err := ledger.Open(filepath.Join(dir, "ledger"), ledger.Options{Signer: key.Signer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// oldDataDir makes the data directory of an earlier version: a log with
// an event in it, the master key, and tokens.json holding an admin token
// if withTokens (its secret is returned).
func oldDataDir(t *testing.T, key tlogtest.Key, withTokens bool) (dir, secret string) {
	t.Helper()
	dir = t.TempDir()
	l := openLog(t, dir, key)
	master, _, err := MasterKey(dir, KeyOptions{}, true)
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := eventstore.NewKeyring(master)
	el, err := eventstore.Open(eventstore.Config{Log: l, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := el.Append(t.Context(), "admin", []event.Event{{Action: "app.thing"}}); err != nil {
		t.Fatal(err)
	}
	el.Close()
	l.Close()
	if withTokens {
		s, err := auth.Open(auth.NewFilePersister(filepath.Join(dir, TokensFile)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, secret, err = s.Create("admin", []auth.Scope{auth.ScopeAdmin}); err != nil {
			t.Fatal(err)
		}
	}
	return dir, secret
}

// TestLostTokensRefused (issue 18.10): a log with entries whose tokens are
// lost (tokens.json deleted) no longer gets a second admin token silently:
// the start fails naming the way out, and --new-admin-token makes one,
// recorded in the log.
func TestLostTokensRefused(t *testing.T) {
	t.Setenv(MasterKeyEnv, "")
	os.Unsetenv(MasterKeyEnv)
	key := tlogtest.NewKey(t, "example.com/lost-tokens")
	dir, _ := oldDataDir(t, key, false)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l := openLog(t, dir, key)
	defer l.Close()
	if _, err := Open(dir, Options{}, l, logger, 0); !errors.Is(err, audited.ErrTokensLost) || !strings.Contains(err.Error(), "--new-admin-token") {
		t.Fatalf("start with lost tokens: %v, want ErrTokensLost naming --new-admin-token", err)
	}
	if _, err := os.Stat(filepath.Join(dir, AdminTokenFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an admin token file was written: %v", err)
	}
	es, err := Open(dir, Options{NewAdminToken: true}, l, logger, 0)
	if err != nil || es.AdminToken == "" {
		t.Fatalf("--new-admin-token: %v", err)
	}
	defer es.Layer.Close()
	defer es.Audit.Close()
	if _, _, err := l.WaitSize(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	r, err := es.Layer.Get(1)
	if err != nil || r.Event.Action != auth.ActionCreate || r.Event.SubmittedBy != auth.ServerActor || r.Event.Resource.ID != "admin" {
		t.Fatalf("event 1: %+v %v, want the new admin token's creation", r.Event, err)
	}
}

// TestTokensJSONMigrated: an earlier version's tokens.json is moved into the
// store at start (renamed tokens.json.migrated); its admin token still
// works and no other is made.
func TestTokensJSONMigrated(t *testing.T) {
	t.Setenv(MasterKeyEnv, "")
	os.Unsetenv(MasterKeyEnv)
	key := tlogtest.NewKey(t, "example.com/migrated-tokens")
	dir, secret := oldDataDir(t, key, true)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for start := range 2 {
		l := openLog(t, dir, key)
		es, err := Open(dir, Options{}, l, logger, 0)
		if err != nil {
			t.Fatalf("start %d: %v", start, err)
		}
		if es.AdminToken != "" {
			t.Fatalf("start %d: a new admin token was made", start)
		}
		if tok, err := es.Tokens.Authenticate(secret); err != nil || tok.Name != "admin" {
			t.Fatalf("start %d: the migrated admin token: %v", start, err)
		}
		if _, err := os.Stat(filepath.Join(dir, TokensFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("start %d: tokens.json still there: %v", start, err)
		}
		if _, err := os.Stat(filepath.Join(dir, TokensFile+".migrated")); err != nil {
			t.Fatalf("start %d: %v", start, err)
		}
		es.Audit.Close()
		es.Layer.Close()
		l.Close()
	}
}
