package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"indelible.dev/ledger"
)

// TestBadInput sends malformed tile paths, proof requests out of range or
// for future sizes, non-numeric parameters and oversize bodies: each gets a
// 4xx with a JSON {"error": ...} naming the problem, and the tree (the signed
// checkpoint, byte for byte) is unchanged afterwards.
func TestBadInput(t *testing.T) {
	tl := newTestLog(t, ledger.Options{})
	tl.addN(300) // level 0: tile 000 full, 001.p/44; level 1: 000.p/1
	_, before := tl.checkpoint()

	big := strings.Repeat("x", 65536)
	huge := strings.Repeat("x", MaxRequestBody+1)
	cases := []struct {
		name   string
		method string
		path   string // sent verbatim (no cleaning, no escaping)
		body   string
		status int
		want   string // in the error message
	}{
		// Malformed tile paths.
		{"index leading zeros", "GET", "/tile/0/0000", "", 404, "three digits"},
		{"index short group", "GET", "/tile/0/00", "", 404, "three digits"},
		{"level leading zero", "GET", "/tile/00/000", "", 404, "leading zero"},
		{"partial width 0", "GET", "/tile/0/001.p/0", "", 404, "partial width"},
		{"partial width 256", "GET", "/tile/0/001.p/256", "", 404, "partial width"},
		{"partial width leading zero", "GET", "/tile/0/001.p/044", "", 404, "partial width"},
		{"x on last group", "GET", "/tile/0/x001", "", 404, "three digits"},
		{"missing x", "GET", "/tile/0/001/000", "", 404, `must start with "x"`},
		{"leading zero group", "GET", "/tile/0/x000/001", "", 404, "leading zero group"},
		{"level 64", "GET", "/tile/64/000", "", 404, "level"},
		{"level 100", "GET", "/tile/100/000", "", 404, "level"},
		{"negative level", "GET", "/tile/-1/000", "", 404, "level"},
		{"data not entries", "GET", "/tile/data/000", "", 404, "level"},
		{"height segment", "GET", "/tile/8/0/000", "", 404, "malformed tile path"},
		{"traversal", "GET", "/tile/../checkpoint", "", 404, "malformed tile path"},
		{"traversal escaped", "GET", "/tile/%2e%2e/checkpoint", "", 404, "malformed tile path"},
		{"traversal in index", "GET", "/tile/0/../../checkpoint", "", 404, "malformed tile path"},
		{"escaped digit", "GET", "/tile/0/%30%30%30", "", 404, "malformed tile path"},
		{"trailing slash", "GET", "/tile/0/000/", "", 404, "malformed tile path"},
		{"no index", "GET", "/tile/0", "", 404, "malformed tile path"},
		{"too long", "GET", "/tile/0/" + strings.Repeat("x001/", 40) + "000", "", 404, "malformed tile path"},
		// Tiles beyond the published size.
		{"full tile beyond size", "GET", "/tile/0/001", "", 404, "not found"},
		{"partial wider than size", "GET", "/tile/0/001.p/45", "", 404, "not found"},
		{"bundle beyond size", "GET", "/tile/entries/002.p/1", "", 404, "not found"},
		{"level 1 partial too wide", "GET", "/tile/1/000.p/2", "", 404, "not found"},
		{"level 2", "GET", "/tile/2/000.p/1", "", 404, "not found"},
		// Proofs.
		{"inclusion index = size", "GET", "/v1/proof/inclusion?index=300&size=300", "", 400, "out of range"},
		{"inclusion future size", "GET", "/v1/proof/inclusion?index=0&size=301", "", 400, "beyond the published size"},
		{"inclusion huge size", "GET", "/v1/proof/inclusion?index=0&size=9223372036854775807", "", 400, "beyond the published size"},
		{"inclusion size overflow", "GET", "/v1/proof/inclusion?index=0&size=9223372036854775808", "", 400, "size"},
		{"inclusion size 0", "GET", "/v1/proof/inclusion?index=0&size=0", "", 400, "out of range"},
		{"inclusion non-numeric size", "GET", "/v1/proof/inclusion?index=0&size=abc", "", 400, "parameter size"},
		{"inclusion negative index", "GET", "/v1/proof/inclusion?index=-1&size=10", "", 400, "parameter index"},
		{"inclusion plus sign", "GET", "/v1/proof/inclusion?index=%2B1&size=10", "", 400, "parameter index"},
		{"inclusion leading zero", "GET", "/v1/proof/inclusion?index=01&size=10", "", 400, "parameter index"},
		{"inclusion missing size", "GET", "/v1/proof/inclusion?index=1", "", 400, "missing parameter size"},
		{"inclusion missing index", "GET", "/v1/proof/inclusion?size=1", "", 400, "missing parameter index"},
		{"inclusion both", "GET", "/v1/proof/inclusion?index=1&size=10&hash=47DEQpj8HBSa%2B%2FTImW%2B5JCeuQeRkm5NMpJWZG3hSuFU%3D", "", 400, "not both"},
		{"inclusion bad hash", "GET", "/v1/proof/inclusion?hash=abc&size=10", "", 400, "parameter hash"},
		{"inclusion unknown hash", "GET", "/v1/proof/inclusion?hash=47DEQpj8HBSa%2B%2FTImW%2B5JCeuQeRkm5NMpJWZG3hSuFU%3D&size=10", "", 404, "no entry with leaf hash"},
		{"inclusion unknown parameter", "GET", "/v1/proof/inclusion?index=1&size=10&sise=3", "", 400, `unknown parameter "sise"`},
		{"inclusion repeated parameter", "GET", "/v1/proof/inclusion?index=1&size=10&size=11", "", 400, "given 2 times"},
		{"inclusion bad query", "GET", "/v1/proof/inclusion?index=1&size=%zz", "", 400, "malformed query"},
		{"consistency future", "GET", "/v1/proof/consistency?from=5&to=301", "", 400, "beyond the published size"},
		{"consistency backwards", "GET", "/v1/proof/consistency?from=10&to=5", "", 400, "larger than to"},
		{"consistency non-numeric", "GET", "/v1/proof/consistency?from=x&to=5", "", 400, "parameter from"},
		{"consistency missing to", "GET", "/v1/proof/consistency?from=1", "", 400, "missing parameter to"},
		{"consistency float", "GET", "/v1/proof/consistency?from=1.0&to=5", "", 400, "parameter from"},
		// Appends.
		{"empty body", "POST", "/add", "", 400, "empty entry"},
		{"entry 65536 bytes", "POST", "/add", big, 413, "65535"},
		{"body over request limit", "POST", "/add", huge, 413, "too large"},
		{"bad wait", "POST", "/add?wait=forever", "x", 400, "parameter wait"},
		{"unknown add parameter", "POST", "/add?index=3", "x", 400, `unknown parameter "index"`},
		// Routing.
		{"GET /add", "GET", "/add", "", 405, "Method Not Allowed"},
		{"POST /checkpoint", "POST", "/checkpoint", "x", 405, "Method Not Allowed"},
		{"unknown route", "GET", "/v1/nothing", "", 404, "Not Found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := rawRequest(t, tl.hs.Listener.Addr().String(), tc.method, tc.path, tc.body, false)
			checkJSONError(t, tc.method+" "+tc.path, status, hdr, body, tc.status, tc.want)
		})
	}
	t.Run("chunked entry over 65535", func(t *testing.T) {
		status, hdr, body := rawRequest(t, tl.hs.Listener.Addr().String(), "POST", "/add", big, true)
		checkJSONError(t, "chunked POST /add", status, hdr, body, 413, "65535")
	})
	t.Run("chunked body over request limit", func(t *testing.T) {
		status, hdr, body := rawRequest(t, tl.hs.Listener.Addr().String(), "POST", "/add", huge, true)
		checkJSONError(t, "chunked POST /add", status, hdr, body, 413, "too large")
	})

	if _, after := tl.checkpoint(); !bytes.Equal(before, after) {
		t.Fatalf("bad input changed the checkpoint:\n%s\nthen\n%s", before, after)
	}
	// A control: the largest entry is accepted (and does change the tree).
	if idx := tl.add([]byte(big[:65535])); idx != 300 {
		t.Fatalf("65535-byte entry got index %d", idx)
	}
}

func checkJSONError(t *testing.T, what string, status int, hdr http.Header, body []byte, wantStatus int, want string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("%s: status %d, want %d (body %s)", what, status, wantStatus, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
	var e struct {
		Error string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("%s: body %q is not {\"error\": ...}: %v", what, body, err)
	}
	if !strings.Contains(e.Error, want) {
		t.Fatalf("%s: error %q does not contain %q", what, e.Error, want)
	}
}

// rawRequest sends one HTTP/1.1 request with the request target exactly as
// given (Go's client would clean or escape it), and reads the response.
func rawRequest(t *testing.T, addr, method, target, body string, chunked bool) (int, http.Header, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var req bytes.Buffer
	req.WriteString(method + " " + target + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n")
	switch {
	case chunked:
		req.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for b := body; len(b) > 0; {
			n := min(len(b), 4096)
			req.WriteString(strconv.FormatInt(int64(n), 16) + "\r\n" + b[:n] + "\r\n")
			b = b[n:]
		}
		req.WriteString("0\r\n\r\n")
	case method == "POST":
		req.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	default:
		req.WriteString("\r\n")
	}
	// Write concurrently: the server may answer (413) before reading it all.
	go conn.Write(req.Bytes())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}
