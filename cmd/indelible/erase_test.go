package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"indelible.dev/client"
)

// httpDo sends a bodiless request with the bearer token (none if empty)
// and returns the status and the body.
func httpDo(t *testing.T, method, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestEraseCommand erases an event through the real binary: the DELETE
// route's refusals (400 without a reason, 403 for a non-admin token, 404
// beyond the log), `indelible erase`, then 410 with the tombstone from the
// record and receipt routes, and a second erasure; queries skip the event;
// the store checks out after a clean stop. serve refuses a bad --retention.
func TestEraseCommand(t *testing.T) {
	dir := t.TempDir()
	p := startEvents(t, dir, "--retention", "400d")
	c := p.client(t)
	ctx := t.Context()
	reader, err := c.CreateToken(ctx, "reader", []string{"read", "append"})
	if err != nil {
		t.Fatal(err)
	}
	var evs []client.Event
	for k := range 5 {
		evs = append(evs, client.Event{Action: "door.open", Actor: &client.Actor{ID: "erase-test-user"}, Reason: fmt.Sprint("MARKER-erase-", k)})
	}
	res, err := c.Append(ctx, evs, true)
	if err != nil {
		t.Fatal(err)
	}
	target := res[2].Index
	u := fmt.Sprintf("%s/v1/events/%d", p.url, target)

	if code, b := httpDo(t, http.MethodDelete, u, p.token); code != http.StatusBadRequest {
		t.Fatalf("no reason: %d %s", code, b)
	}
	if code, b := httpDo(t, http.MethodDelete, u+"?reason=", p.token); code != http.StatusBadRequest {
		t.Fatalf("empty reason: %d %s", code, b)
	}
	if code, b := httpDo(t, http.MethodDelete, u+"?reason=x", reader.Secret); code != http.StatusForbidden {
		t.Fatalf("non-admin: %d %s", code, b)
	}
	if code, b := httpDo(t, http.MethodDelete, p.url+"/v1/events/99999?reason=x", p.token); code != http.StatusNotFound {
		t.Fatalf("beyond the log: %d %s", code, b)
	}
	if _, errOut, code := run(t, p.env(), "erase", fmt.Sprint(target)); code == 0 || !strings.Contains(errOut, "--reason") {
		t.Fatalf("erase without --reason: exit %d, %s", code, errOut)
	}
	env := []string{"INDELIBLE_URL=" + p.url, "INDELIBLE_TOKEN=" + reader.Secret}
	if _, errOut, code := run(t, env, "erase", fmt.Sprint(target), "--reason", "x"); code == 0 || !strings.Contains(errOut, "403") {
		t.Fatalf("erase with a reader token: exit %d, %s", code, errOut)
	}

	out := mustRun(t, p.env(), "erase", fmt.Sprint(target), "--reason", "GDPR art. 17")
	if !strings.Contains(out, fmt.Sprintf("erased event %d", target)) || !strings.Contains(out, "by admin") || !strings.Contains(out, "GDPR art. 17") {
		t.Fatalf("erase output: %s", out)
	}
	for _, path := range []string{u, u + "/receipt"} {
		code, b := httpDo(t, http.MethodGet, path, reader.Secret)
		var body struct {
			Error, ErasedBy, Reason string
			ErasedAt                string `json:"erased_at"`
		}
		json.Unmarshal(b, &body)
		if code != http.StatusGone || !strings.Contains(string(b), `"erased_by":"admin"`) || !strings.Contains(string(b), `"reason":"GDPR art. 17"`) ||
			body.Error == "" || body.ErasedAt == "" {
			t.Fatalf("GET %s after erasure: %d %s", path, code, b)
		}
	}
	if code, b := httpDo(t, http.MethodDelete, u+"?reason=again", p.token); code != http.StatusGone || !strings.Contains(string(b), "GDPR art. 17") {
		t.Fatalf("second erasure: %d %s", code, b)
	}
	_, err = c.Erase(ctx, target, "again")
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusGone {
		t.Fatalf("client second erasure: %v", err)
	}
	recs := queryJSON(t, p.env(), "--actor", "erase-test-user")
	if len(recs) != 4 {
		t.Fatalf("query after erasure: %d records", len(recs))
	}
	for _, r := range recs {
		if r.Index == target {
			t.Fatal("query returned the erased event")
		}
	}
	erased := queryJSON(t, p.env(), "--action", "indelible.erase")
	if len(erased) != 1 {
		t.Fatalf("%d erase events", len(erased))
	}
	if _, err := c.Receipt(ctx, erased[0].Index); err != nil {
		t.Fatalf("receipt of the erase event: %v", err)
	}
	p.stop(t)
	checkEventsStore(t, dir)

	if _, errOut, code := run(t, nil, "serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--retention", "1h"); code == 0 || !strings.Contains(errOut, "--retention") {
		t.Fatalf("serve --retention 1h: exit %d, %s", code, errOut)
	}
}
