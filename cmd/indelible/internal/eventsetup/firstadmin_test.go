package eventsetup

import (
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"indelible.dev/api"
	"indelible.dev/auth"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

// TestFirstAdminTokenRecorded: the first start records the first admin
// token's creation as event 0 (actor and submitter "indelible", name and
// scopes, no secret); a restart records nothing more.
func TestFirstAdminTokenRecorded(t *testing.T) {
	dir := t.TempDir()
	key := tlogtest.NewKey(t, "example.com/first-admin")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for start := range 2 {
		l, err := ledger.Open(filepath.Join(dir, "ledger"), ledger.Options{Signer: key.Signer, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		es, err := Open(dir, Options{}, l, logger, 0)
		if err != nil {
			t.Fatal(err)
		}
		if (es.AdminToken != "") != (start == 0) {
			t.Fatalf("start %d: admin token %v", start, es.AdminToken != "")
		}
		if _, _, err := l.WaitSize(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		if cp, _ := l.Published(); cp.N != 1 {
			t.Fatalf("start %d: tree size %d, want 1", start, cp.N)
		}
		r, err := es.Layer.Get(0)
		if err != nil {
			t.Fatal(err)
		}
		e := r.Event
		if e.Action != auth.ActionCreate || e.SubmittedBy != auth.ServerActor || e.Actor.ID != auth.ServerActor ||
			string(e.Metadata) != `{"name":"admin","scopes":["admin"]}` || strings.Contains(string(r.EventBytes), auth.SecretPrefix) {
			t.Fatalf("event 0: %s", r.EventBytes)
		}
		es.Layer.Close()
		l.Close()
	}
}

// TestAdminTokenBootstrap: the first admin token is a bootstrap token (it
// expires within auth.BootstrapTTL); a restart keeps <data>/admin.token
// while the token lives, and deletes the file once another admin token has
// ended it.
func TestAdminTokenBootstrap(t *testing.T) {
	dir := t.TempDir()
	key := tlogtest.NewKey(t, "example.com/bootstrap")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	file := filepath.Join(dir, AdminTokenFile)
	var secret string
	for start := range 3 {
		l, err := ledger.Open(filepath.Join(dir, "ledger"), ledger.Options{Signer: key.Signer, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		es, err := Open(dir, Options{}, l, logger, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, statErr := os.Stat(file)
		switch start {
		case 0:
			secret = es.AdminToken
			tok, err := es.Tokens.Authenticate(secret)
			if err != nil || !tok.Bootstrap || es.AdminTokenExpires.IsZero() || !tok.Expires.Equal(es.AdminTokenExpires) ||
				time.Until(tok.Expires) > auth.BootstrapTTL || time.Until(tok.Expires) < auth.BootstrapTTL-time.Minute {
				t.Fatalf("first admin token %+v (expires %v), %v", tok, es.AdminTokenExpires, err)
			}
		case 1:
			if statErr != nil {
				t.Fatalf("restart with a live bootstrap token: %v", statErr)
			}
			if _, _, err := es.Tokens.Create("ops", []auth.Scope{auth.ScopeAdmin}); err != nil {
				t.Fatal(err)
			}
			if _, err := es.Tokens.Authenticate(secret); err == nil {
				t.Fatal("the bootstrap token still authenticates after another admin token was made")
			}
		case 2:
			if statErr == nil {
				t.Fatal("restart kept admin.token, whose token is dead")
			}
		}
		es.Layer.Close()
		l.Close()
	}
}

// TestNewAdminToken: once no admin token works, a start warns and says
// how to get back in; a start with Options.NewAdminToken makes a new
// bootstrap admin token, writes it to admin.token and records it.
func TestNewAdminToken(t *testing.T) {
	dir := t.TempDir()
	key := tlogtest.NewKey(t, "example.com/new-admin")
	var logs tlogtest.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	var l *ledger.Log
	open := func(o Options) (*Server, func()) {
		var err error
		l, err = ledger.Open(filepath.Join(dir, "ledger"), ledger.Options{Signer: key.Signer, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		es, err := Open(dir, o, l, logger, 0)
		if err != nil {
			t.Fatal(err)
		}
		return es, func() { es.Layer.Close(); l.Close() }
	}
	es, done := open(Options{})
	if err := es.Tokens.Revoke(firstAdmin); err != nil {
		t.Fatal(err)
	}
	done()
	es, done = open(Options{})
	if es.AdminToken != "" || !strings.Contains(logs.String(), "no admin token works") || !strings.Contains(logs.String(), "--new-admin-token") {
		t.Fatalf("start with no working admin token: token %v, logs:\n%s", es.AdminToken != "", logs.String())
	}
	done()
	es, done = open(Options{NewAdminToken: true})
	defer done()
	tok, err := es.Tokens.Authenticate(es.AdminToken)
	if err != nil || !tok.Bootstrap || !tok.Allows(auth.ScopeAdmin) || !strings.HasPrefix(tok.Name, "admin-") {
		t.Fatalf("new admin token %+v, %v", tok, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, AdminTokenFile)); err != nil || strings.TrimSpace(string(b)) != es.AdminToken {
		t.Fatalf("admin.token does not hold the new token: %v", err)
	}
	if _, _, err := l.WaitSize(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	q, _ := api.ParseQuery(url.Values{"action": {auth.ActionCreate}})
	p, err := es.Layer.List(q)
	if err != nil || len(p.Records) != 2 || p.Records[0].Event.Resource.ID != tok.Name || p.Records[0].Event.Actor.ID != auth.ServerActor {
		t.Fatalf("token creations recorded: %+v, %v", p.Records, err)
	}
}
