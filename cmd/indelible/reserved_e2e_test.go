package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestServerRecordsReservedE2E (issue 18.4) through the real binary: a
// writer's event with an indelible.* action or the source "indelible" is
// refused with 422 naming the event and field, over HTTP in each form and
// through `indelible append`; the server's own records (the first admin
// token's creation) are still written.
func TestServerRecordsReservedE2E(t *testing.T) {
	p := startEvents(t, t.TempDir())
	defer p.stop(t)
	for _, tc := range []struct{ ct, body, want string }{
		{"application/json", `{"action":"indelible.erase","resource":{"type":"event","id":"0"}}`, `"event":0,"field":"action"`},
		{"application/json", `[{"action":"ok"},{"action":"x","source":"indelible"}]`, `"event":1,"field":"source"`},
		{"application/x-ndjson", "{\"action\":\"ok\"}\n{\"action\":\"indelible.token.create\"}\n", `"event":1,"field":"action"`},
	} {
		req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/events", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+p.token)
		req.Header.Set("Content-Type", tc.ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), tc.want) || !json.Valid(b) {
			t.Errorf("POST %s: %d %s, want 422 with %s", tc.body, resp.StatusCode, b, tc.want)
		}
	}
	out, errOut, code := run(t, p.env(), "append", "--action", "indelible.read", "--actor", "bob")
	if code == 0 || !strings.Contains(errOut+out, "422") || !strings.Contains(errOut+out, "reserved") {
		t.Errorf("indelible append --action indelible.read: exit %d\n%s%s", code, out, errOut)
	}
	// The server still records: the first admin token's creation is there, once.
	q := mustRun(t, p.env(), "query", "--action", "indelible.token.create", "--json")
	if n := strings.Count(q, "\n"); n != 1 || !strings.Contains(q, `"indelible.token.create"`) {
		t.Errorf("server records after the refusals:\n%s", q)
	}
}
