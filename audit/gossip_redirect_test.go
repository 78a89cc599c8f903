package audit_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"indelible.dev/audit"
	"indelible.dev/client"
)

// TestGossipNoRedirect: a gossip witness that answers with a redirect is not
// followed: the redirect target is never contacted, and the submission
// fails with the 3xx status.
func TestGossipNoRedirect(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"result":"fork"}`))
	}))
	defer target.Close()
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+r.URL.Path, code)
		}))
		c, err := client.New(redirector.URL, "", client.WithOptions(client.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		f := &audit.Failure{Kind: audit.KindFork, Previous: []byte("a\n"), Checkpoint: []byte("b\n")}
		answers, err := audit.Gossip(context.Background(), c, []string{redirector.URL}, f)
		var se *client.StatusError
		if len(answers) != 0 || !errors.As(err, &se) || se.Status != code {
			t.Errorf("%d: Gossip = %q, %v; want no answer and a %d StatusError", code, answers, err, code)
		}
		if err := audit.SendAlert(context.Background(), c, redirector.URL+"/hook", audit.Alert{}); !errors.As(err, &se) {
			t.Errorf("%d: SendAlert = %v; want a StatusError", code, err)
		}
		redirector.Close()
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the redirect target was contacted %d times", n)
	}
}
