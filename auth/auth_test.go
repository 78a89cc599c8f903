package auth

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"indelible.dev/internal/tlogtest"
)

func openFile(t *testing.T, path string, c *tlogtest.Clock) *Store {
	t.Helper()
	s, err := Open(NewFilePersister(path), c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCreateAuthenticateRevoke(t *testing.T) {
	c := tlogtest.NewClock()
	s := openFile(t, filepath.Join(t.TempDir(), "tokens.json"), c)
	tok, secret, err := s.Create("ci", []Scope{ScopeRead, ScopeAppend, ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tok.Scopes, []Scope{ScopeAppend, ScopeRead}) || tok.Name != "ci" || !tok.Created.Equal(c.Now()) {
		t.Fatalf("%+v", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if !strings.HasPrefix(secret, SecretPrefix) || err != nil || len(raw) != 32 {
		t.Fatalf("secret %q is not ind_ + base64url(32 bytes)", secret)
	}
	c.Add(time.Minute)
	got, err := s.Authenticate(secret)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "ci" || !got.LastUsed.Equal(c.Now()) || !got.Allows(ScopeAppend) || !got.Allows(ScopeRead) || got.Allows(ScopeAdmin) {
		t.Fatalf("%+v", got)
	}
	for _, bad := range []string{"", secret[:len(secret)-1], secret + "x", strings.ToUpper(secret), "Bearer " + secret, SecretPrefix, strings.Repeat("x", 1000)} {
		if _, err := s.Authenticate(bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Authenticate(%q) = %v", bad, err)
		}
	}
	_, other, err := s.Create("admin", []Scope{ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if other == secret {
		t.Fatal("same secret twice")
	}
	if err := s.Revoke("ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(secret); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked token authenticates: %v", err)
	}
	if _, err := s.Authenticate(other); err != nil {
		t.Fatalf("other token: %v", err)
	}
	if err := s.Revoke("ci"); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if err := s.Revoke("nobody"); !errors.Is(err, ErrNoToken) {
		t.Fatalf("Revoke(nobody) = %v", err)
	}
	list := s.List()
	if len(list) != 2 || list[0].Name != "admin" || list[1].Name != "ci" || list[1].Revoked.IsZero() || list[1].LastUsed.IsZero() || !list[0].Revoked.IsZero() {
		t.Fatalf("List = %+v", list)
	}
	// A revoked name stays taken.
	if _, _, err := s.Create("ci", []Scope{ScopeRead}); !errors.Is(err, ErrExists) {
		t.Fatalf("reusing a revoked name: %v", err)
	}
}

func TestCreateInvalid(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "tokens.json"), tlogtest.NewClock())
	for _, tt := range []struct {
		name   string
		scopes []Scope
	}{
		{"", []Scope{ScopeRead}},
		{strings.Repeat("a", MaxNameLen+1), []Scope{ScopeRead}},
		{"has space", []Scope{ScopeRead}},
		{"slash/", []Scope{ScopeRead}},
		{"é", []Scope{ScopeRead}},
		{"ok", nil},
		{"ok", []Scope{"write"}},
		{"ok", []Scope{ScopeRead, ""}},
	} {
		if _, _, err := s.Create(tt.name, tt.scopes); !errors.Is(err, ErrInvalid) {
			t.Errorf("Create(%q, %v) = %v, want ErrInvalid", tt.name, tt.scopes, err)
		}
	}
	if _, _, err := s.Create(strings.Repeat("a", MaxNameLen), []Scope{ScopeRead}); err != nil {
		t.Error(err)
	}
	if _, _, err := s.Create("A-z0.9_@x", []Scope{ScopeRead}); err != nil {
		t.Error(err)
	}
	if _, _, err := s.Create("A-z0.9_@x", []Scope{ScopeAdmin}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate: %v", err)
	}
	if len(s.List()) != 2 {
		t.Fatal("a failed Create left a token")
	}
}

func TestAllowsAndParseScopes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []Scope
	}{
		{"append", []Scope{ScopeAppend}},
		{"read,append", []Scope{ScopeAppend, ScopeRead}},
		{" admin , read ", []Scope{ScopeRead, ScopeAdmin}},
		{"read,read", []Scope{ScopeRead}},
	} {
		got, err := ParseScopes(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseScopes(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", ",", "read,", "write", "READ", "read;append"} {
		if _, err := ParseScopes(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseScopes(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	admin := Token{Scopes: []Scope{ScopeAdmin}}
	reader := Token{Scopes: []Scope{ScopeRead}}
	for _, sc := range allScopes {
		if !admin.Allows(sc) {
			t.Errorf("admin does not allow %s", sc)
		}
		if reader.Allows(sc) != (sc == ScopeRead) {
			t.Errorf("read token: Allows(%s) = %v", sc, reader.Allows(sc))
		}
	}
	if (Token{}).Allows(ScopeRead) {
		t.Error("no scope allows read")
	}
}

func TestPersistedAcrossReopen(t *testing.T) {
	c := tlogtest.NewClock()
	path := filepath.Join(t.TempDir(), "tokens.json")
	s := openFile(t, path, c)
	_, secretA, err := s.Create("a", []Scope{ScopeAppend})
	if err != nil {
		t.Fatal(err)
	}
	_, secretB, err := s.Create("b", []Scope{ScopeRead, ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	if _, err := s.Authenticate(secretA); err != nil {
		t.Fatal(err)
	}
	usedAt := c.Now()
	if err := s.Revoke("b"); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	if _, err := s.Authenticate(secretA); err != nil {
		t.Fatal(err)
	}
	// Last use is not persisted until Flush.
	s2 := openFile(t, path, c)
	if !reflect.DeepEqual(s2.List(), []Token{
		{Name: "a", Scopes: []Scope{ScopeAppend}, Created: c.Now().Add(-2 * time.Hour)},
		{Name: "b", Scopes: []Scope{ScopeRead, ScopeAdmin}, Created: c.Now().Add(-2 * time.Hour), Revoked: usedAt},
	}) {
		t.Fatalf("after reopen: %+v", s2.List())
	}
	if _, err := s2.Authenticate(secretA); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	if _, err := s2.Authenticate(secretB); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked token after reopen: %v", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s3 := openFile(t, path, c)
	if lu := s3.List()[0].LastUsed; !lu.Equal(c.Now()) {
		t.Fatalf("LastUsed after Flush = %v, want %v", lu, c.Now())
	}

	// File mode 0600; no secret in the file, only its hash.
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{secretA, secretB} {
		rest := strings.TrimPrefix(secret, SecretPrefix)
		raw, _ := base64.RawURLEncoding.DecodeString(rest)
		for _, form := range []string{secret, rest, rest[:16], hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw)} {
			if strings.Contains(string(b), form) {
				t.Fatalf("the token file holds the secret (%q):\n%s", form, b)
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// failingPersister fails every Put after the first n.
type failingPersister struct {
	mu   sync.Mutex
	n    int
	puts []Record
}

func (p *failingPersister) Load() ([]Record, error) { return nil, nil }
func (p *failingPersister) Put(r Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.puts) >= p.n {
		return errors.New("disk on fire")
	}
	p.puts = append(p.puts, r)
	return nil
}

func TestPersistFailure(t *testing.T) {
	p := &failingPersister{n: 1}
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := s.Create("a", []Scope{ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	// A token whose hash could not be stored does not exist.
	if _, _, err := s.Create("b", []Scope{ScopeRead}); err == nil || len(s.List()) != 1 {
		t.Fatalf("Create with a failing persister: %v, %d tokens", err, len(s.List()))
	}
	// A revocation that could not be stored still holds in memory.
	if err := s.Revoke("a"); err == nil {
		t.Fatal("Revoke with a failing persister succeeded")
	}
	if _, err := s.Authenticate(secret); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("token usable after a failed revoke: %v", err)
	}
	p.n = 10
	if err := s.Revoke("a"); err != nil || p.puts[len(p.puts)-1].Revoked.IsZero() {
		t.Fatalf("retrying the revoke: %v", err)
	}
}

func TestOpenRejectsBadFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"garbage":   "not json",
		"bad hash":  `{"tokens":[{"name":"a","scopes":["read"],"sha256":"xyz"}]}`,
		"twice":     `{"tokens":[{"name":"a","scopes":["read"],"sha256":"` + strings.Repeat("00", 32) + `"},{"name":"a","scopes":["read"],"sha256":"` + strings.Repeat("11", 32) + `"}]}`,
		"same hash": `{"tokens":[{"name":"a","scopes":["read"],"sha256":"` + strings.Repeat("00", 32) + `"},{"name":"b","scopes":["read"],"sha256":"` + strings.Repeat("00", 32) + `"}]}`,
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(NewFilePersister(path), nil); err == nil {
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

func TestBootstrap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	s := openFile(t, path, tlogtest.NewClock())
	secret, created, err := s.Bootstrap("admin", []Scope{ScopeAdmin})
	if err != nil || !created || secret == "" {
		t.Fatalf("Bootstrap = %q, %v, %v", secret, created, err)
	}
	if tok, err := s.Authenticate(secret); err != nil || !tok.Allows(ScopeAdmin) {
		t.Fatalf("%+v %v", tok, err)
	}
	again, created, err := s.Bootstrap("admin2", []Scope{ScopeAdmin})
	if err != nil || created || again != "" {
		t.Fatalf("second Bootstrap = %q, %v, %v", again, created, err)
	}
	// Not even after reopening, nor when every token is revoked.
	s2 := openFile(t, path, tlogtest.NewClock())
	if err := s2.Revoke("admin"); err != nil {
		t.Fatal(err)
	}
	if _, created, _ := s2.Bootstrap("admin3", []Scope{ScopeAdmin}); created {
		t.Fatal("Bootstrap created a token in a store that has one")
	}
}

// TestConcurrent runs creates, authentications, revocations, lists and
// flushes at once (meant for -race).
func TestConcurrent(t *testing.T) {
	c := tlogtest.NewClock()
	s := openFile(t, filepath.Join(t.TempDir(), "tokens.json"), c)
	_, keep, err := s.Create("keep", []Scope{ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				name := fmt.Sprintf("w%d-%d", w, i)
				_, secret, err := s.Create(name, []Scope{ScopeAppend})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Authenticate(secret); err != nil {
					t.Error(err)
				}
				if err := s.Revoke(name); err != nil {
					t.Error(err)
				}
				if _, err := s.Authenticate(secret); !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("%s after revoke: %v", name, err)
				}
			}
		})
		wg.Go(func() {
			for range 500 {
				if _, err := s.Authenticate(keep); err != nil {
					t.Error(err)
					return
				}
				c.Add(time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			s.List()
			if err := s.Flush(); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if n := len(s.List()); n != 41 {
		t.Fatalf("%d tokens, want 41", n)
	}
}

// TestTokenFileFormat pins the token file's bytes: the public record's
// fields in order (zero times left out) and the hex SHA-256 of the secret,
// never the secret.
func TestTokenFileFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	p := NewFilePersister(path)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, r := range []Record{
		{Token: Token{Name: "ci", Scopes: []Scope{ScopeAppend, ScopeRead}, Created: at}, Hash: [32]byte{1, 2, 3}},
		{Token: Token{Name: "old", Scopes: []Scope{ScopeAdmin}, Created: at, LastUsed: at.Add(time.Hour), Revoked: at.Add(2 * time.Hour)}, Hash: [32]byte{0xff}},
	} {
		if err := p.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{
  "tokens": [
    {
      "name": "ci",
      "scopes": [
        "append",
        "read"
      ],
      "created": "2026-11-25T10:00:00Z",
      "sha256": "0102030000000000000000000000000000000000000000000000000000000000"
    },
    {
      "name": "old",
      "scopes": [
        "admin"
      ],
      "created": "2026-11-25T10:00:00Z",
      "last_used": "2026-11-25T11:00:00Z",
      "revoked": "2026-11-25T12:00:00Z",
      "sha256": "ff00000000000000000000000000000000000000000000000000000000000000"
    }
  ]
}
`
	if string(b) != want {
		t.Fatalf("token file:\n%s\nwant\n%s", b, want)
	}
	recs, err := NewFilePersister(path).Load()
	if err != nil || len(recs) != 2 || recs[0].Name != "ci" || recs[0].Hash != ([32]byte{1, 2, 3}) || !recs[1].Revoked.Equal(at.Add(2*time.Hour)) {
		t.Fatalf("Load: %+v, %v", recs, err)
	}
}

// TestBootstrapLapses: the bootstrap token (the first admin token a server
// makes) authenticates for BootstrapTTL at most, and never again once
// another admin token exists (even revoked, even after a reopen); tokens
// made by Create never lapse.
func TestBootstrapLapses(t *testing.T) {
	c := tlogtest.NewClock()
	path := filepath.Join(t.TempDir(), "tokens.json")
	s := openFile(t, path, c)
	boot, _, err := s.Bootstrap("admin", []Scope{ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Authenticate(boot)
	if err != nil || !tok.Bootstrap || !tok.Expires.Equal(c.Now().Add(BootstrapTTL)) {
		t.Fatalf("bootstrap token %+v, %v", tok, err)
	}
	// Tokens without the admin scope do not end it.
	if _, _, err := s.Create("ci", []Scope{ScopeAppend, ScopeRead}); err != nil {
		t.Fatal(err)
	}
	c.Add(BootstrapTTL - time.Second)
	if _, err := s.Authenticate(boot); err != nil {
		t.Fatalf("bootstrap token before its expiry: %v", err)
	}
	c.Add(time.Second)
	if _, err := s.Authenticate(boot); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("bootstrap token at its expiry: %v", err)
	}

	// A second server's bootstrap token, superseded by an admin token.
	c2 := tlogtest.NewClock()
	path2 := filepath.Join(t.TempDir(), "tokens.json")
	s2 := openFile(t, path2, c2)
	boot2, _, err := s2.Bootstrap("admin", []Scope{ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	_, ops, err := s2.Create("ops", []Scope{ScopeRead, ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Authenticate(boot2); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "superseded") {
		t.Fatalf("bootstrap token after a second admin token: %v", err)
	}
	if _, err := s2.Authenticate(ops); err != nil {
		t.Fatal(err)
	}
	// For good: after a reopen, and with the other admin token revoked.
	if err := s2.Revoke("ops"); err != nil {
		t.Fatal(err)
	}
	s3 := openFile(t, path2, c2)
	if _, err := s3.Authenticate(boot2); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("bootstrap token after a reopen: %v", err)
	}
	if l := s3.List(); len(l) != 2 || !l[0].Bootstrap || l[0].Expires.IsZero() || l[1].Bootstrap || !l[1].Expires.IsZero() {
		t.Fatalf("List after a reopen: %+v", l)
	}

	// Tokens from Create (and stores written before bootstrap tokens
	// existed) never lapse.
	c2.Add(100 * BootstrapTTL)
	s4 := openFile(t, filepath.Join(t.TempDir(), "tokens.json"), c2)
	_, a, err := s4.Create("admin", []Scope{ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s4.Create("ops", []Scope{ScopeAdmin}); err != nil {
		t.Fatal(err)
	}
	c2.Add(100 * BootstrapTTL)
	if _, err := s4.Authenticate(a); err != nil {
		t.Fatal(err)
	}
}

// TestBootstrapAgain: with every admin token gone (revoked or expired), a
// new bootstrap token (serve --new-admin-token) works: only admin tokens
// made after it end it. LiveAdmin tells whether any admin token works.
func TestBootstrapAgain(t *testing.T) {
	c := tlogtest.NewClock()
	s := openFile(t, filepath.Join(t.TempDir(), "tokens.json"), c)
	if s.LiveAdmin() {
		t.Fatal("LiveAdmin in an empty store")
	}
	if _, _, err := s.Bootstrap("admin", []Scope{ScopeAdmin}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create("old", []Scope{ScopeAdmin}); err != nil {
		t.Fatal(err)
	}
	if !s.LiveAdmin() {
		t.Fatal("no live admin with one")
	}
	if err := s.Revoke("old"); err != nil {
		t.Fatal(err)
	}
	if s.LiveAdmin() {
		t.Fatal("LiveAdmin with the bootstrap token superseded and the other revoked")
	}
	c.Add(time.Second)
	_, again, err := s.CreateBootstrap("admin-2", []Scope{ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Authenticate(again); err != nil || !tok.Bootstrap || !s.LiveAdmin() {
		t.Fatalf("a new bootstrap token after older admin tokens: %+v, %v", tok, err)
	}
	c.Add(time.Second)
	if _, _, err := s.Create("ops", []Scope{ScopeAdmin}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(again); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("the new bootstrap token after a newer admin token: %v", err)
	}
}
