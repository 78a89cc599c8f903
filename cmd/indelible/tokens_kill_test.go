package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"indelible.dev/audited"
	"indelible.dev/auth"
	"indelible.dev/client"
	"indelible.dev/eventstore"
)

// tokenKillRounds is how often TestTokensKillAtomic kills the server.
const tokenKillRounds = 8

// TestTokensKillAtomic SIGKILLs the real binary in events mode at random
// moments while admins create and revoke tokens concurrently, then opens
// its store and checks that a token's record and the event recording its
// creation (or revocation) are there together or not at all: every stored
// token has exactly one indelible.token.create event, every such event
// names a stored token, a stored revocation has its indelible.token.revoke
// event and the other way round; and every creation the API acknowledged
// is stored.
func TestTokensKillAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var (
		mu      sync.Mutex
		created = map[string]bool{}
	)
	for round := range tokenKillRounds {
		p := startEvents(t, dir)
		c, err := client.New(p.url, "", client.WithOptions(client.Options{Token: p.token, Retries: -1}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ctx.Err() == nil; n++ {
					name := fmt.Sprintf("r%d-w%d-%d", round, w, n)
					rctx, rcancel := context.WithTimeout(ctx, killTestTimeout)
					_, err := c.CreateToken(rctx, name, []string{"read"})
					if err == nil {
						mu.Lock()
						created[name] = true
						mu.Unlock()
						if n%2 == 0 {
							c.RevokeToken(rctx, name)
						}
					}
					rcancel()
					if err != nil {
						time.Sleep(time.Millisecond) // the server is going down
					}
				}
			}()
		}
		killMidRound(t, p, cancel, &wg)
	}
	// A last start replays nothing and serves; then the store is checked.
	startEvents(t, dir).stop(t)
	if len(created) == 0 {
		t.Fatal("no token creation was acknowledged")
	}

	stored, creates, revokes := tokensAndRecords(t, dir)
	for name := range created {
		if _, ok := stored[name]; !ok {
			t.Errorf("token %s: creation acknowledged, not stored", name)
		}
	}
	for name, tok := range stored {
		if n := creates[name]; n != 1 {
			t.Errorf("token %s is stored, with %d creation events", name, n)
		}
		if r := revokes[name]; tok.Revoked.IsZero() != (r == 0) {
			t.Errorf("token %s: revoked %v, %d revocation events", name, !tok.Revoked.IsZero(), r)
		}
	}
	for name := range creates {
		if _, ok := stored[name]; !ok {
			t.Errorf("a creation event names token %s, which is not stored", name)
		}
	}
	t.Logf("%d kills: %d creations acknowledged, %d tokens stored, %d creation events", tokenKillRounds, len(created), len(stored), len(creates))
}

// tokensAndRecords opens the events store in dir and returns its tokens
// and, by token name, the number of indelible.token.create and
// indelible.token.revoke events in the log.
func tokensAndRecords(t testing.TB, dir string) (map[string]auth.Token, map[string]int, map[string]int) {
	t.Helper()
	l, el, closeStore := openCheckedStore(t, dir)
	defer closeStore()
	tokens, err := audited.OpenTokens(l, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]auth.Token{}
	for _, tok := range tokens.List() {
		stored[tok.Name] = tok
	}
	count := func(action string) map[string]int {
		out := map[string]int{}
		q := eventstore.Query{Action: action, Limit: eventstore.MaxLimit}
		for {
			p, err := el.List(q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Records {
				out[r.Event.Resource.ID]++
			}
			if p.NextCursor == "" {
				return out
			}
			q.Cursor = p.NextCursor
		}
	}
	return stored, count(auth.ActionCreate), count(auth.ActionRevoke)
}
