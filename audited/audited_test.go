package audited

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/internal/storetest"
	"indelible.dev/ledger"
)

// env is a store (a ledger and its events layer, storetest) and the
// service over it, started and stopped with it as a restarted server would.
type env struct {
	*storetest.Store
	t testing.TB
	s *Service
}

func newEnv(t testing.TB) *env {
	e := &env{t: t}
	e.Store = storetest.New(t, "example.com/audited-test", func(s *storetest.Store) func() {
		var err error
		if e.s, err = New(Config{Layer: s.Layer, Log: s.Log}); err != nil {
			t.Fatal(err)
		}
		return func() { e.s.Close() }
	})
	return e
}

// tokenEvents returns "action name by" for every indelible.token.* event.
func (e *env) tokenEvents() []string {
	e.t.Helper()
	size, _ := e.Log.Published()
	if _, _, err := e.Log.WaitSize(e.t.Context(), size.N); err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, action := range []string{auth.ActionCreate, auth.ActionRevoke} {
		p, err := e.Layer.List(eventstore.Query{Action: action, Limit: eventstore.MaxLimit})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range p.Records {
			out = append(out, r.Event.Action+" "+r.Event.Resource.ID+" "+r.Event.SubmittedBy)
		}
	}
	slices.Sort(out)
	return out
}

// waitAll waits until everything appended so far is published.
func (e *env) waitAll() {
	e.t.Helper()
	for {
		cp, _ := e.Log.Published()
		if e.Log.QueueLen() == 0 {
			if _, _, err := e.Log.WaitSize(e.t.Context(), cp.N); err != nil {
				e.t.Fatal(err)
			}
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTokenChangesRecorded: a token's creation and revocation are stored
// with their events; a restart finds both; a change whose event cannot be
// appended leaves neither (a creation) or only the in-memory revocation.
func TestTokenChangesRecorded(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, _, err := e.s.CreateToken(ctx, "root", "alice", []auth.Scope{auth.ScopeRead}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := e.s.CreateToken(ctx, "root", "bob", []auth.Scope{auth.ScopeAppend})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.RevokeToken(ctx, "root", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.RevokeToken(ctx, "root", "nobody"); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("revoking an unknown token: %v", err)
	}
	if _, _, err := e.s.CreateToken(ctx, "root", "bob", []auth.Scope{auth.ScopeAppend}); !errors.Is(err, auth.ErrExists) {
		t.Fatalf("creating bob twice: %v", err)
	}
	e.waitAll()
	want := []string{"indelible.token.create alice root", "indelible.token.create bob root", "indelible.token.revoke alice root"}
	if got := e.tokenEvents(); !slices.Equal(got, want) {
		t.Fatalf("token events %q, want %q", got, want)
	}

	e.Reopen()
	if got := e.tokenEvents(); !slices.Equal(got, want) {
		t.Fatalf("after a restart: token events %q, want %q", got, want)
	}
	if tok, err := e.s.Tokens().Authenticate(secret); err != nil || tok.Name != "bob" {
		t.Fatalf("bob after a restart: %+v %v", tok, err)
	}
	if tok, _ := e.s.Tokens().Get("alice"); tok.Revoked.IsZero() {
		t.Fatal("alice's revocation was lost")
	}
	if err := e.Layer.Check(); err != nil {
		t.Fatal(err)
	}

	// The layer is closed: the event cannot be appended, so no token.
	e.Layer.Close()
	if _, _, err := e.s.CreateToken(ctx, "root", "carol", []auth.Scope{auth.ScopeRead}); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("creating carol on a closed layer: %v", err)
	}
	if _, err := e.s.Tokens().Get("carol"); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("carol exists without her record: %v", err)
	}
	if _, err := e.s.RevokeToken(ctx, "root", "bob"); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("revoking bob on a closed layer: %v", err)
	}
	if _, err := e.s.Tokens().Authenticate(secret); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatal("a revocation that could not be recorded does not hold in memory")
	}
	e.Reopen()
	if _, err := e.s.Tokens().Get("carol"); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("carol stored without her record: %v", err)
	}
	if got := e.tokenEvents(); !slices.Equal(got, want) {
		t.Fatalf("after failed changes: token events %q, want %q", got, want)
	}
	// A revocation fails closed: it held in memory and Close persisted it
	// with the last-use times; revoking again records it.
	if _, err := e.s.Tokens().Authenticate(secret); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("bob came back after a restart: %v", err)
	}
	if _, err := e.s.RevokeToken(ctx, "root", "bob"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "indelible.token.revoke bob root")
	slices.Sort(want)
	if got := e.tokenEvents(); !slices.Equal(got, want) {
		t.Fatalf("token events %q, want %q", got, want)
	}
}

// TestBootstrap: the first admin token is made once, on an empty log, with
// its record (by the server); a log with entries but no token (the tokens
// were lost) refuses, unless asked again, which is recorded too.
func TestBootstrap(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	scopes := []auth.Scope{auth.ScopeAdmin}
	secret, created, err := e.s.Bootstrap(ctx, "admin", scopes, false)
	if err != nil || !created {
		t.Fatalf("first start: %v %v", created, err)
	}
	if _, _, err := e.s.Bootstrap(ctx, "admin", scopes, false); err != nil {
		t.Fatal(err)
	}
	e.Reopen()
	if s, created, err := e.s.Bootstrap(ctx, "admin", scopes, false); err != nil || created || s != "" {
		t.Fatalf("second start: %v %v", created, err)
	}
	if tok, err := e.s.Tokens().Authenticate(secret); err != nil || tok.Name != "admin" {
		t.Fatalf("admin: %v", err)
	}
	if got, want := e.tokenEvents(), []string{"indelible.token.create admin indelible"}; !slices.Equal(got, want) {
		t.Fatalf("token events %q, want %q", got, want)
	}

	// The tokens are lost (as when an earlier version's tokens.json was
	// deleted before this version migrated it).
	e.Close()
	l := e.OpenLog()
	if err := l.WriteExt(func(w ledger.Writer) error { return w.Delete(eventstore.TokenKey("admin")) }); err != nil {
		t.Fatal(err)
	}
	l.Close()
	e.Open()
	if _, _, err := e.s.Bootstrap(ctx, "admin", scopes, false); !errors.Is(err, ErrTokensLost) {
		t.Fatalf("lost tokens: %v, want ErrTokensLost", err)
	}
	if len(e.s.Tokens().List()) != 0 {
		t.Fatal("a token was made")
	}
	secret2, created, err := e.s.Bootstrap(ctx, "admin", scopes, true)
	if err != nil || !created || secret2 == secret {
		t.Fatalf("asked again: %v %v", created, err)
	}
	if got, want := e.tokenEvents(), []string{"indelible.token.create admin indelible", "indelible.token.create admin indelible"}; !slices.Equal(got, want) {
		t.Fatalf("token events %q, want %q (the second admin recorded too)", got, want)
	}
}

// TestMigrateTokenFile: an earlier version's tokens.json moves into the
// store once, keeps its hashes (the secrets still work), and the file is
// renamed; a migration interrupted after the store write finishes at the
// next start without overwriting what the store holds.
func TestMigrateTokenFile(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "tokens.json")
	old, err := auth.Open(auth.NewFilePersister(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, adminSecret, _ := old.Create("admin", []auth.Scope{auth.ScopeAdmin})
	_, readerSecret, _ := old.Create("reader", []auth.Scope{auth.ScopeRead})
	if err := old.Revoke("reader"); err != nil {
		t.Fatal(err)
	}
	e.Close()
	kept, _ := os.ReadFile(path)
	for round := range 2 {
		l := e.OpenLog()
		n, err := MigrateTokenFile(l, path)
		if err != nil || n != 2-2*round {
			t.Fatalf("round %d: migrated %d, %v", round, n, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("round %d: tokens.json still there: %v", round, err)
		}
		if _, err := os.Stat(path + ".migrated"); err != nil {
			t.Fatal(err)
		}
		l.Close()
		// As if the rename had not happened: the next start migrates
		// again, writing nothing.
		os.WriteFile(path, kept, 0o600)
	}
	os.Remove(path)
	e.Open()
	if n, err := MigrateTokenFile(e.Log, path); n != 0 || err != nil {
		t.Fatalf("no file: %d %v", n, err)
	}
	if tok, err := e.s.Tokens().Authenticate(adminSecret); err != nil || tok.Name != "admin" {
		t.Fatalf("admin after the migration: %v", err)
	}
	if _, err := e.s.Tokens().Authenticate(readerSecret); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("revoked reader after the migration: %v", err)
	}
	if _, created, err := e.s.Bootstrap(t.Context(), "admin", []auth.Scope{auth.ScopeAdmin}, false); created || err != nil {
		t.Fatalf("bootstrap after a migration: %v %v", created, err)
	}
	if err := e.Layer.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReadBatcher: reads are recorded (as server records, by the reading
// token) before AuditRead's wait returns; a failing append fails the read
// with the cause; a full queue is ErrBusy; Close appends what is queued,
// then refuses.
func TestReadBatcher(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	wait, err := e.s.AuditRead(ctx, "reader", IndexMeta("/v1/events/:index", 7))
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	e.waitAll()
	p, err := e.Layer.List(eventstore.Query{Action: ActionRead})
	if err != nil || len(p.Records) != 1 {
		t.Fatalf("read events: %+v %v", p, err)
	}
	if ev := p.Records[0].Event; ev.SubmittedBy != "reader" || ev.Actor.ID != "reader" || ev.Source != event.ServerSource ||
		string(ev.Metadata) != `{"index":7,"route":"/v1/events/:index"}` {
		t.Fatalf("read event %s", p.Records[0].EventBytes)
	}

	// A failing append: the read fails with the cause.
	rb := e.s.reads
	real := rb.record
	for _, cause := range []error{ledger.ErrFailed, ledger.ErrPushback} {
		rb.record = func(context.Context, string, []event.Event) ([]eventstore.Appended, error) { return nil, cause }
		wait, err := e.s.AuditRead(ctx, "reader", IndexMeta("/x", 1))
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(); !errors.Is(err, cause) {
			t.Fatalf("failing append: %v, want %v", err, cause)
		}
	}

	// A full queue: the committer is held, so nothing drains.
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the env's cleanup closes the service
	rb.record = func(ctx context.Context, by string, evs []event.Event) ([]eventstore.Appended, error) {
		<-release
		return real(ctx, by, evs)
	}
	var waits []func() error
	// The held committer took a first batch; the queue then fills.
	for len(waits) <= MaxReadQueue+MaxReadBatch {
		w, err := e.s.AuditRead(ctx, "reader", IndexMeta("/x", 2))
		if errors.Is(err, ErrBusy) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	if len(waits) < MaxReadQueue || len(waits) > MaxReadQueue+MaxReadBatch {
		t.Fatalf("%d reads queued before ErrBusy, want %d plus the first batch", len(waits), MaxReadQueue)
	}
	if _, err := e.s.AuditRead(ctx, "reader", IndexMeta("/x", 3)); !errors.Is(err, ErrBusy) {
		t.Fatalf("full queue: %v, want ErrBusy", err)
	}
	// Close drains: every queued read is recorded, then reads are refused.
	closed := make(chan error)
	go func() { closed <- e.s.Close() }()
	time.Sleep(10 * time.Millisecond)
	unblock()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for i, w := range waits {
		if err := w(); err != nil {
			t.Fatalf("queued read %d: %v", i, err)
		}
	}
	if _, err := e.s.AuditRead(ctx, "reader", IndexMeta("/x", 4)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	e.waitAll()
	p, err = e.Layer.List(eventstore.Query{Action: ActionRead, Limit: eventstore.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if p.NextCursor == "" && len(p.Records) < 1+len(waits) {
		t.Fatalf("%d read events, want %d", len(p.Records), 1+len(waits))
	}
}
