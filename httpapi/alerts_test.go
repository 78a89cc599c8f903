package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"indelible.dev/alert"
	"indelible.dev/event"
)

// TestAlertsRoute: GET /v1/alerts lists only indelible.alert.fired events,
// newest first, as records; it needs the read scope, refuses unknown
// parameters with 400, and is audited.
func TestAlertsRoute(t *testing.T) {
	te := newTestEvents(t)
	fired := func(rule string) event.Event {
		return event.Event{Actor: &event.Actor{ID: "indelible"}, Action: alert.ActionFired, Resource: &event.Resource{Type: "rule", ID: rule},
			Metadata: json.RawMessage(`{"rule":"` + rule + `"}`)}
	}
	if _, err := te.layer.Record(t.Context(), "indelible", []event.Event{fired("a")}, nil); err != nil {
		t.Fatal(err)
	}
	te.append("application/json", `{"action":"alert.fired"}`)
	if _, err := te.layer.Record(t.Context(), "indelible", []event.Event{fired("b"), {Action: "indelible.alert.resolved"}}, nil); err != nil {
		t.Fatal(err)
	}
	te.waitPublished(t)
	status, _, body := te.req(http.MethodGet, "/v1/alerts", "read", "", nil)
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	var page struct {
		Events []struct {
			Index int64 `json:"index"`
			Event struct {
				Action   string `json:"action"`
				Resource struct{ ID string }
			} `json:"event"`
			EventBytes string `json:"event_bytes"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 2 || page.Events[0].Event.Resource.ID != "b" || page.Events[1].Event.Resource.ID != "a" || page.Events[0].EventBytes == "" {
		t.Fatalf("alerts %s", body)
	}
	if status, _, _ := te.req(http.MethodGet, "/v1/alerts", "append", "", nil); status != http.StatusForbidden {
		t.Fatalf("append token: %d", status)
	}
	if status, _, _ := te.req(http.MethodGet, "/v1/alerts", "", "", nil); status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", status)
	}
	for _, q := range []string{"?action=x", "?limit=0", "?since=yesterday", "?cursor=zzz"} {
		status, _, body := te.req(http.MethodGet, "/v1/alerts"+q, "read", "", nil)
		if status != http.StatusBadRequest || !strings.Contains(string(body), "error") {
			t.Fatalf("%s: %d %s", q, status, body)
		}
	}
	status, _, body = te.req(http.MethodGet, "/v1/alerts?limit=1", "read", "", nil)
	if status != 200 || !strings.Contains(string(body), `"next_cursor"`) {
		t.Fatalf("limit 1: %d %s", status, body)
	}
	te.waitPublished(t)
	reads := strings.Join(te.readEvents(t), "\n")
	if !strings.Contains(reads, `"route":"/v1/alerts"`) || !strings.Contains(reads, `"limit":"1"`) {
		t.Fatalf("reads not audited:\n%s", reads)
	}
}
