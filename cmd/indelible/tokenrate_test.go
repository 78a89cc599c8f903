package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeTokenRate: `indelible serve --token-rate 1 --token-burst 2`
// answers a token's third request in a burst with 429, Retry-After and a
// JSON error naming the token and the limit; the flags refuse negatives.
func TestServeTokenRate(t *testing.T) {
	p := startEvents(t, filepath.Join(t.TempDir(), "data"), "--token-rate", "0.2", "--token-burst", "2")
	get := func() (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, p.url+"/v1/tokens", nil)
		req.Header.Set("Authorization", "Bearer "+p.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&body)
		return resp, body.Error
	}
	for i := range 2 {
		if resp, msg := get(); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, msg)
		}
	}
	resp, msg := get()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(msg, `token "admin"`) || !strings.Contains(msg, "0.2 requests/s") {
		t.Fatalf("third request: %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), msg)
	}
	if _, errOut, code := run(t, nil, "serve", "--data", t.TempDir(), "--token-rate", "-1"); code == 0 || !strings.Contains(errOut, "--token-rate") {
		t.Fatalf("negative --token-rate: exit %d, %s", code, errOut)
	}
}
