package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"indelible.dev/witness"
)

// TestWitnessErrorsThroughTable: the witness handlers' errors get their
// status from the one table: a malformed monitoring path is a 404 with the
// JSON error body every other error has, and a busy witness is a 503 with
// Retry-After.
func TestWitnessErrorsThroughTable(t *testing.T) {
	_, ts := startWitness(t, t.TempDir())
	for _, p := range []string{strings.Repeat("A", 64), strings.Repeat("a", 63), witness.OriginHash("unknown.example/log")} {
		resp, err := http.Get(ts.URL + "/" + p + "/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var eb errorBody
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			t.Errorf("/%s/checkpoint: %d %q %s", p, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
	for _, tc := range []struct {
		err    error
		status int
	}{
		{errWitnessPath, http.StatusNotFound},
		{fmt.Errorf("observe: %w", witness.ErrBusy), http.StatusServiceUnavailable},
	} {
		if got := statusOf(tc.err); got != tc.status {
			t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.status)
		}
	}
}
