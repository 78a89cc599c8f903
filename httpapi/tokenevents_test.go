package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"indelible.dev/api"
	"indelible.dev/auth"
	"indelible.dev/eventstore"
)

// TestTokenEvents: creating and revoking a token over the API appends
// indelible.token.create and indelible.token.revoke, by the admin token,
// naming the token and its scopes and never its secret.
func TestTokenEvents(t *testing.T) {
	te := newTestEvents(t)
	status, _, b := te.req(http.MethodPost, "/v1/tokens", "admin", "application/json", []byte(`{"name":"ci","scopes":["append","read"]}`))
	if status != 201 {
		t.Fatalf("create: %d %s", status, b)
	}
	var created api.NewToken
	if err := json.Unmarshal(b, &created); err != nil {
		t.Fatal(err)
	}
	if status, _, b := te.req(http.MethodDelete, "/v1/tokens/ci", "admin", "", nil); status != 204 {
		t.Fatalf("revoke: %d %s", status, b)
	}
	// A refused creation records nothing.
	if status, _, _ := te.req(http.MethodPost, "/v1/tokens", "admin", "application/json", []byte(`{"name":"ci","scopes":["read"]}`)); status != 409 {
		t.Fatalf("duplicate create: %d", status)
	}
	te.waitPublished(t)
	for _, action := range []string{auth.ActionCreate, auth.ActionRevoke} {
		page, err := te.layer.List(eventstore.Query{Action: action})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != 1 {
			t.Fatalf("%s: %d events, want 1", action, len(page.Records))
		}
		r := page.Records[0]
		e := r.Event
		if e.SubmittedBy != "admin" || e.Actor == nil || e.Actor.ID != "admin" || e.Resource == nil || e.Resource.ID != "ci" ||
			string(e.Metadata) != `{"name":"ci","scopes":["append","read"]}` || e.Source != auth.EventSource {
			t.Errorf("%s event: %s", action, r.EventBytes)
		}
		if strings.Contains(string(r.EventBytes), created.Secret) || strings.Contains(string(r.EventBytes), auth.SecretPrefix) {
			t.Errorf("%s event holds the secret: %s", action, r.EventBytes)
		}
	}
}

// TestTokenRateLimit: through a real server, a token over its rate gets 429
// with Retry-After and a JSON error naming the limit; another token is not
// affected; the limit is per token, not per client.
func TestTokenRateLimit(t *testing.T) {
	te := newTestEvents(t)
	te.tokens.SetRateLimit(0.5, 3) // a request every 2 s, bursts of 3
	for i := range 3 {
		if status, _, b := te.req(http.MethodGet, "/v1/events", "read", "", nil); status != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, status, b)
		}
	}
	status, hdr, b := te.req(http.MethodGet, "/v1/events", "read", "", nil)
	var body errorBody
	json.Unmarshal(b, &body)
	ra, _ := strconv.Atoi(hdr.Get("Retry-After"))
	if status != 429 || ra < 1 || ra > 2 || !strings.Contains(body.Error, `token "read"`) || !strings.Contains(body.Error, "0.5 requests/s") || !strings.Contains(body.Error, "bursts of 3") {
		t.Fatalf("over the limit: %d Retry-After %q %s", status, hdr.Get("Retry-After"), b)
	}
	// Over the limit on every route, not only reads; other tokens pass.
	if status, _, _ := te.req(http.MethodPost, "/v1/events", "read", "application/json", []byte(`{"action":"a"}`)); status != 429 {
		t.Fatalf("POST over the limit: %d", status)
	}
	if status, _, b := te.req(http.MethodGet, "/v1/events", "admin", "", nil); status != 200 {
		t.Fatalf("another token: %d %s", status, b)
	}
	// Unauthenticated requests are 401, not counted against anyone.
	if status, _, _ := te.req(http.MethodGet, "/v1/events", "", "", nil); status != 401 {
		t.Fatalf("no token: %d", status)
	}
	time.Sleep(2100 * time.Millisecond)
	if status, _, b := te.req(http.MethodGet, "/v1/events", "read", "", nil); status != 200 {
		t.Fatalf("after the wait: %d %s", status, b)
	}
	// Removing the limit.
	te.tokens.SetRateLimit(0, 0)
	for range 10 {
		if status, _, _ := te.req(http.MethodGet, "/v1/events", "read", "", nil); status != 200 {
			t.Fatalf("no limit: %d", status)
		}
	}
}
