package eventstore

import (
	"context"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/api"
	"indelible.dev/event"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

type env struct {
	t      testing.TB
	dir    string
	signer note.Signer
	vkey   string
	master []byte
	fs     vfs.FS
	log    *ledger.Log
	l      *Layer
	clock  *tlogtest.Clock
}

func newSigner(t testing.TB) (note.Signer, string) {
	key := tlogtest.NewKey(t, "example.com/events-test")
	s, vkey := key.Signer, key.VKey
	return s, vkey
}

// newEnv opens a real log in a temporary directory (or on fs, if not nil)
// and the events layer over it.
func newEnv(t testing.TB, fs vfs.FS) *env {
	s, vkey := newSigner(t)
	master := make([]byte, MasterKeySize)
	rand.Read(master)
	e := &env{t: t, dir: t.TempDir(), signer: s, vkey: vkey, master: master, fs: fs,
		clock: tlogtest.NewClock()}
	if fs != nil {
		e.dir = "/data"
	}
	e.open()
	t.Cleanup(func() { e.close() })
	return e
}

func (e *env) open() {
	e.t.Helper()
	log, err := ledger.Open(e.dir, ledger.Options{Signer: e.signer, FS: e.fs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		e.t.Fatal(err)
	}
	kr, err := NewKeyring(e.master)
	if err != nil {
		e.t.Fatal(err)
	}
	l, err := Open(Config{Log: log, Keyring: kr, Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.log, e.l = log, l
}

func (e *env) close() {
	if e.l != nil {
		e.l.Close()
		e.log.Close()
		e.l, e.log = nil, nil
	}
}

func (e *env) reopen() {
	e.close()
	e.open()
}

func (e *env) append(submittedBy string, evs ...event.Event) []Appended {
	e.t.Helper()
	a, err := e.l.Append(context.Background(), submittedBy, evs)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// ev builds an event with the given fields.
func ev(actor, action, resource, outcome, source string, at time.Time) event.Event {
	e := event.Event{Action: action, Outcome: outcome, Source: source, Time: at}
	if actor != "" {
		e.Actor = &event.Actor{ID: actor, Type: "user"}
	}
	if resource != "" {
		e.Resource = &event.Resource{Type: "pod", ID: resource}
	}
	return e
}

func mustQuery(t testing.TB, kv ...string) Query {
	t.Helper()
	v := map[string][]string{}
	for i := 0; i < len(kv); i += 2 {
		v[kv[i]] = []string{kv[i+1]}
	}
	q, err := api.ParseQuery(v)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// listAll pages through q, checking every page's size and cursor.
func (e *env) listAll(q Query) []Record {
	e.t.Helper()
	var all []Record
	for pages := 0; ; pages++ {
		if pages > 100000 {
			e.t.Fatal("too many pages")
		}
		p, err := e.l.List(q)
		if err != nil {
			e.t.Fatal(err)
		}
		lim := q.Limit
		if lim == 0 {
			lim = DefaultLimit
		}
		if len(p.Records) > lim {
			e.t.Fatalf("page of %d records, limit %d", len(p.Records), lim)
		}
		if p.NextCursor != "" && len(p.Records) != lim {
			e.t.Fatalf("page of %d records with a next cursor, limit %d", len(p.Records), lim)
		}
		all = append(all, p.Records...)
		if p.NextCursor == "" {
			return all
		}
		q.Cursor = p.NextCursor
	}
}
