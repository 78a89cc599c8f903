package httpapi

import (
	"log/slog"
	"testing"

	"indelible.dev/internal/tlogtest"
)

// checkedLogger returns a logger for an in-process server and the secrets
// its output must not reveal; when the test ends (after the server's own
// cleanups, registered later, have run) the output is checked against them
// and against any token secret. Every server helper of this package uses
// it, so a new test gets the check for free.
func checkedLogger(t testing.TB) (*slog.Logger, *tlogtest.Buffer, *tlogtest.Secrets) {
	out := &tlogtest.Buffer{}
	s := tlogtest.NewSecrets()
	t.Cleanup(func() { s.Check(t, "server log", out.String()) })
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})), out, s
}

// TestSecretsCheckCatchesLeaks proves the check of a server's log fails
// when a token or a key is logged: a secret logged through the server's
// logger is found.
func TestSecretsCheckCatchesLeaks(t *testing.T) {
	te := newTestEvents(t)
	for _, leak := range []string{te.tok["read"], te.tok["revoked"], te.master, te.skey} {
		te.srv.logger.Warn("leaking", "value", leak)
		if leaks := te.secrets.Scan(te.logs.String()); len(leaks) == 0 {
			t.Errorf("a logged secret was not found")
		}
		te.logs.Reset() // so the end-of-test check passes
	}
	// Without leaks (the requests above log nothing secret), nothing is found.
	te.req("GET", "/v1/events", "bogus-"+te.tok["read"], "", nil)
	te.req("GET", "/v1/events", "revoked", "", nil)
	if leaks := te.secrets.Scan(te.logs.String()); len(leaks) != 0 {
		t.Fatalf("leaks in a clean log: %q", leaks)
	}
}
