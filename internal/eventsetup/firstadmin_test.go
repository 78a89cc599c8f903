package eventsetup

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

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
		es, err := Open(dir, "", l, logger, 0, false)
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
