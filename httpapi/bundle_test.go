package httpapi

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"indelible.dev/evidence"
	itlog "indelible.dev/tlog"
)

// TestBundleRoute: GET /v1/bundle needs the read scope, refuses bad
// parameters with 400 naming them, answers 404 for a size never served,
// and streams a tar that verifies, with a Content-Length, the same bytes
// for the same request, and the read recorded after the bundle's checkpoint.
func TestBundleRoute(t *testing.T) {
	te := newTestEvents(t)
	te.append("application/x-ndjson", "{\"action\":\"a.one\"}\n{\"action\":\"a.two\",\"outcome\":\"denied\"}\n{\"action\":\"a.three\"}\n")
	cp, _ := te.l.Checkpoint()
	n := cp.N
	path := "/v1/bundle?from=0&to=" + strconv.FormatInt(n, 10) + "&size=" + strconv.FormatInt(n, 10)
	for who, want := range map[string]int{"": 401, "revoked": 401, "append": 403} {
		if st, _, _ := te.req(http.MethodGet, path, who, "", nil); st != want {
			t.Errorf("token %q: %d, want %d", who, st, want)
		}
	}
	for q, want := range map[string]string{
		"":                                       "give since and until",
		"from=0":                                 "needs both from and to",
		"from=0&to=1&since=2026-01-01T00:00:00Z": "not both",
		"from=-1&to=1":                           "parameter from",
		"from=01&to=2":                           "parameter from",
		"from=0&to=1&size=x":                     "parameter size",
		"since=yesterday&until=2026-01-01T00:00:00Z": "parameter since",
		"from=0&to=99":               "beyond the checkpoint's tree size",
		"from=2&to=1":                "not a range",
		"from=0&to=1&pinned_size=99": "pinned_size 99",
		"from=0&to=1&color=red":      "unknown parameter",
	} {
		st, _, b := te.req(http.MethodGet, "/v1/bundle?"+q, "read", "", nil)
		if st != http.StatusBadRequest || !strings.Contains(string(b), want) {
			t.Errorf("?%s: %d %s, want 400 naming %q", q, st, b, want)
		}
	}
	if st, _, b := te.req(http.MethodGet, "/v1/bundle?from=0&to=1&size=12345", "read", "", nil); st != http.StatusNotFound {
		t.Errorf("a size never served: %d %s", st, b)
	}
	st, hdr, b1 := te.req(http.MethodGet, path, "read", "", nil)
	if st != http.StatusOK || hdr.Get("Content-Type") != "application/x-tar" || hdr.Get("Content-Length") != strconv.Itoa(len(b1)) {
		t.Fatalf("GET %s: %d %v (%d bytes)", path, st, hdr, len(b1))
	}
	_, _, b2 := te.req(http.MethodGet, path, "read", "", nil)
	if !bytes.Equal(b1, b2) {
		t.Fatal("the same request twice gave different bytes")
	}
	policy := itlog.Policy{Log: te.verifier}
	r, err := evidence.Verify(bytes.NewReader(b1), evidence.Options{Policy: policy})
	if err != nil || !r.OK() || r.Open != n {
		t.Fatalf("verify: %v %v %s", err, r.Failures, r.SummaryLine())
	}
	// Each fetch was recorded after the checkpoint it used.
	last, _ := te.l.Checkpoint()
	rec, err := te.layer.Get(last.N - 1)
	if err != nil || rec.Event.Action != ActionRead || !strings.Contains(string(rec.Event.Metadata), `"route":"/v1/bundle"`) || last.N-1 < n {
		t.Fatalf("the last entry is %+v (%v)", rec.Event, err)
	}
}
