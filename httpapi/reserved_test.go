package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"

	"indelible.dev/eventstore"
)

// TestServerRecordsReserved (issue 18.4): a writer cannot store an event
// passing for the server's own: an indelible.* action or the source
// "indelible" is refused with 422 naming the event and the field, in each
// form of POST /v1/events, even for an admin token, and nothing of the
// request is stored. The Kubernetes webhook goes through the same check
// (its events are k8s.* from kube-apiserver, never reserved).
func TestServerRecordsReserved(t *testing.T) {
	te := newTestEvents(t)
	before, _ := te.l.Published()
	for _, tc := range []struct {
		name, ct, body string
		pos            int
		field          string
	}{
		{"object, fake read", "application/json", `{"action":"indelible.read","actor":{"id":"alice"}}`, 0, "action"},
		{"array, fake erasure", "application/json", `[{"action":"ok"},{"action":"indelible.erase","resource":{"type":"event","id":"0"}}]`, 1, "action"},
		{"ndjson, fake token", "application/x-ndjson", "{\"action\":\"ok\"}\n{\"action\":\"ok\"}\n{\"action\":\"INDELIBLE.token.create\"}\n", 2, "action"},
		{"object, server source", "application/json", `{"action":"user.login","source":"indelible"}`, 0, "source"},
		{"ndjson, server source", "application/x-ndjson", "{\"action\":\"user.login\",\"source\":\"Indelible\"}\n", 0, "source"},
	} {
		for _, tok := range []string{"append", "admin"} {
			status, _, b := te.req(http.MethodPost, "/v1/events", tok, tc.ct, []byte(tc.body))
			var body eventErrorBody
			if err := json.Unmarshal(b, &body); err != nil || status != http.StatusUnprocessableEntity ||
				body.Field != tc.field || body.Position == nil || *body.Position != tc.pos {
				t.Errorf("%s (%s token): %d %s, want 422 naming event %d, field %s", tc.name, tok, status, b, tc.pos, tc.field)
			}
		}
	}
	// Near misses are a writer's own.
	te.append("application/json", `[{"action":"indelibleish"},{"action":"app.indelible.read","source":"indelible-app"}]`)
	if status, _, b := te.req(http.MethodPost, "/v1/ingest/kubernetes", "append", "application/json", []byte(kubernetesSample)); status != http.StatusOK {
		t.Fatalf("kubernetes webhook: %d %s", status, b)
	}
	te.waitPublished(t)
	p, err := te.layer.List(eventstore.Query{Source: "indelible", Limit: eventstore.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Records {
		if r.Event.SubmittedBy == "append" || r.Event.SubmittedBy == "admin" && r.Event.Action != ActionRead {
			t.Errorf("a writer stored a server record: %s", r.EventBytes)
		}
	}
	if after, _ := te.l.Published(); after.N <= before.N {
		t.Fatal("nothing was appended at all")
	}
}
