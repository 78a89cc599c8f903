package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"indelible.dev/client"
)

// TestOTLPServe runs the binary in events mode over HTTPS with
// --otlp-listen: the golden request (gzip protobuf) posted to the second
// listener, over TLS with the same token, is stored (the record with no
// action under --otlp-default-action), and queried back on the main one.
// The second listener serves nothing else.
func TestOTLPServe(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, t.TempDir())
	data := filepath.Join(dir, "data")
	var mainURL, otlpURL string
	args := append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--otlp-listen", "127.0.0.1:0", "--otlp-default-action", "otel.log"}, pki.args()...)
	startProc(t, args, func(line string) bool {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "listening" && f[1] == "on":
			mainURL = f[2]
		case strings.HasPrefix(line, "  OpenTelemetry logs (OTLP/HTTP): POST "):
			otlpURL = strings.Fields(strings.TrimPrefix(line, "  OpenTelemetry logs (OTLP/HTTP): POST "))[0]
			return true
		}
		return false
	})
	if !strings.HasPrefix(mainURL, "https://") || !strings.HasPrefix(otlpURL, "https://") || !strings.HasSuffix(otlpURL, "/v1/logs") {
		t.Fatalf("main %q, OTLP %q: want https URLs", mainURL, otlpURL)
	}
	tok, err := os.ReadFile(filepath.Join(data, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	hc := &http.Client{Transport: client.NewTransport(pki.pool), Timeout: 30 * time.Second}
	wire, err := os.ReadFile("../../testdata/otlp/logs.pb.gz")
	if err != nil {
		t.Fatal(err)
	}
	post := func(url string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(wire))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status, body := post(otlpURL)
	if status != 200 {
		t.Fatalf("POST %s: %d %q", otlpURL, status, body)
	}
	resp := plogotlp.NewExportResponse()
	if err := resp.UnmarshalProto(body); err != nil || resp.PartialSuccess().RejectedLogRecords() != 0 {
		t.Fatalf("reply %q: %v, %d rejected", body, err, resp.PartialSuccess().RejectedLogRecords())
	}
	// The same on the main listener, as a retry would: the records with a
	// log.record.uid are stored once, the one without (otel.log) twice.
	if status, body := post(mainURL + "/v1/logs"); status != 200 {
		t.Fatalf("POST %s/v1/logs: %d %q", mainURL, status, body)
	}
	c, err := client.New(mainURL, token, client.WithOptions(client.Options{RootCAs: pki.pool}))
	if err != nil {
		t.Fatal(err)
	}
	for action, want := range map[string]int{"otel.log": 2, "ssh.login": 1, "k8s.create": 1} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			page, err := c.Query(t.Context(), client.Query{Action: action})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Events) == want {
				break
			}
			if time.Now().After(deadline) {
				recs, _ := json.Marshal(page.Events)
				t.Fatalf("action %s: %d events, want %d: %s", action, len(page.Events), want, recs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	r, err := hc.Get(strings.TrimSuffix(otlpURL, "/v1/logs") + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 404 {
		t.Errorf("GET /checkpoint on the OTLP listener: %d, want 404", r.StatusCode)
	}
}

// TestIngestExplain: indelible ingest otlp --explain prints what the golden
// requests map to, whatever their encoding, and refuses bad input.
func TestIngestExplain(t *testing.T) {
	want, err := os.ReadFile("../../testdata/otlp/explain.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"logs.pb", "logs.json", "logs.pb.gz", "logs.pb.zst", "logs.json.gz"} {
		out, stderr, code := run(t, nil, "ingest", "otlp", "--explain", "../../testdata/otlp/"+f)
		if code != 0 || out != string(want) || !strings.Contains(stderr, "6 records: 5 events, 1 refused") {
			t.Errorf("%s: exit %d, stderr %q, stdout\n%s", f, code, stderr, out)
		}
	}
	out, _, code := run(t, nil, "ingest", "otlp", "--explain", "../../testdata/otlp/logs.pb", "--default-action", "otel.log")
	if code != 0 || !strings.Contains(out, `{"record":4,"event":{"action":"otel.log"`) {
		t.Errorf("--default-action: exit %d\n%s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("\xff\xff\xff"), 0o644)
	for _, args := range [][]string{
		{"ingest", "otlp", "--explain", bad},
		{"ingest", "otlp"},
		{"ingest", "otlp", "--explain", "../../testdata/otlp/logs.pb", "--default-action", "has space"},
		{"ingest", "otlp", "--explain", "../../testdata/otlp/logs.pb", "--default-action", "indelible.x"},
		{"serve", "--mode", "raw", "--data", t.TempDir(), "--otlp-listen", "127.0.0.1:0"},
	} {
		if _, stderr, code := run(t, nil, args...); code == 0 || stderr == "" {
			t.Errorf("indelible %v: exit %d, stderr %q: want a failure", args, code, stderr)
		}
	}
}
