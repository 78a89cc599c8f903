package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"indelible.dev/client"
	"indelible.dev/export"
)

// bulkFake is a minimal Elasticsearch _bulk endpoint (create actions only):
// 201 for a new _id, 409 for an existing one. Each request is answered
// after delay, so the server can be killed with a request in flight.
type bulkFake struct {
	mu        sync.Mutex
	docs      map[string]bulkFakeDoc
	requests  int
	conflicts int
	delay     time.Duration
}

type bulkFakeDoc struct {
	Index      int64  `json:"index"`
	Commitment string `json:"commitment"`
	ReceiptURL string `json:"receipt_url"`
	raw        []byte
}

func (b *bulkFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/_bulk" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	time.Sleep(b.delay)
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests++
	var items []string
	for sc.Scan() {
		var a struct {
			Create struct {
				Index string `json:"_index"`
				ID    string `json:"_id"`
			} `json:"create"`
		}
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil || a.Create.ID == "" || !sc.Scan() {
			http.Error(w, "bad bulk body", http.StatusBadRequest)
			return
		}
		var d bulkFakeDoc
		d.raw = append([]byte(nil), sc.Bytes()...)
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			http.Error(w, "bad document", http.StatusBadRequest)
			return
		}
		status := 201
		if _, ok := b.docs[a.Create.ID]; ok {
			status = 409
			b.conflicts++
		} else {
			b.docs[a.Create.ID] = d
		}
		items = append(items, fmt.Sprintf(`{"create":{"_index":%q,"_id":%q,"status":%d}}`, a.Create.Index, a.Create.ID, status))
	}
	fmt.Fprintf(w, `{"took":1,"errors":false,"items":[%s]}`, strings.Join(items, ","))
}

func (b *bulkFake) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.docs)
}

// TestExportKill SIGKILLs the real binary while an export to a (slow) fake
// Elasticsearch has a request in flight, restarts it: every event of the
// ledger arrives with its commitment, with no gap, and each _id holds the
// document of its index; receipt URLs are built on --public-url.
func TestExportKill(t *testing.T) {
	fake := &bulkFake{docs: map[string]bulkFakeDoc{}, delay: 300 * time.Millisecond}
	es := httptest.NewServer(fake)
	defer es.Close()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	xf := filepath.Join(dir, "exports.yaml")
	if err := os.WriteFile(xf, fmt.Appendf(nil, "exports:\n  - {name: es, type: elastic_bulk, url: %q, index: audit}\n", es.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	const public = "https://ledger.example.test/audit/"
	p := startEvents(t, data, "--exports", xf, "--public-url", public)
	c := p.client(t)
	ctx := context.Background()
	for b := range 6 {
		var nd strings.Builder
		for j := range 500 {
			fmt.Fprintf(&nd, `{"action":"export.test","id":"b%d-e%d"}`+"\n", b, j)
		}
		if _, err := c.AppendNDJSON(ctx, []byte(nd.String()), false); err != nil {
			t.Fatal(err)
		}
	}
	// Kill with the first batches delivered and more in flight.
	for deadline := time.Now().Add(30 * time.Second); fake.count() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nothing exported in 30s\nstderr:\n%s", p.stderr)
		}
	}
	time.Sleep(150 * time.Millisecond)
	p.kill()
	before := fake.count()
	if before >= 3000 {
		t.Fatalf("%d exported before the kill: the test did not kill mid-export", before)
	}

	p = startEvents(t, data, "--exports", xf, "--public-url", public)
	defer p.stop(t)
	c = p.client(t)
	// The ledger: every record up to the size at this point.
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if _, err := fmt.Sscanf(strings.SplitN(string(cp), "\n", 3)[1], "%d", &n); err != nil {
		t.Fatal(err)
	}
	want := map[int64]string{}
	sctx, cancel := context.WithCancel(ctx)
	errDone := errors.New("done")
	r0, err := c.Event(ctx, 0) // the stream resumes after an index: 0 is read alone
	if err != nil {
		t.Fatal(err)
	}
	want[0] = base64.StdEncoding.EncodeToString(r0.Commitment)
	err = c.Stream(sctx, client.Query{}, 0, func(r client.Record) error {
		if r.Index < n {
			want[r.Index] = base64.StdEncoding.EncodeToString(r.Commitment)
		}
		if r.Index >= n-1 {
			return errDone
		}
		return nil
	})
	cancel()
	if err != nil && !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	if int64(len(want)) < n-5 {
		t.Fatalf("%d records streamed below size %d", len(want), n)
	}
	pfx := ""
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		fake.mu.Lock()
		missing := -1
		for i := range n {
			if _, ok := want[i]; !ok {
				continue
			}
			found := false
			for id, d := range fake.docs {
				if d.Index == i {
					found = true
					pfx = id[:strings.IndexByte(id, '-')]
					break
				}
			}
			if !found {
				missing = int(i)
				break
			}
		}
		fake.mu.Unlock()
		if missing < 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("index %d never exported (%d exported)\nstderr:\n%s", missing, fake.count(), p.stderr)
		}
	}
	// indelible export status reads the cursor and lag from /metrics.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out := mustRun(t, p.env(), "export", "status")
		f := strings.Fields(out)
		if len(f) == 10 && f[5] == "es" && f[7] == "0" {
			if cur, _ := strconv.ParseInt(f[6], 10, 64); cur >= n {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("export status never showed the export caught up:\n%s", out)
		}
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	for id, d := range fake.docs {
		if id != fmt.Sprintf("%s-%d", pfx, d.Index) {
			t.Errorf("_id %s holds index %d", id, d.Index)
		}
		if c, ok := want[d.Index]; ok && c != d.Commitment {
			t.Errorf("index %d: exported commitment %s, ledger %s", d.Index, d.Commitment, c)
		}
		if u := fmt.Sprintf("%sv1/events/%d/receipt", public, d.Index); d.ReceiptURL != u {
			t.Errorf("index %d: receipt_url %q, want %q", d.Index, d.ReceiptURL, u)
		}
	}
	if fake.conflicts > export.DefaultBatchSize {
		t.Errorf("%d events resent after the restart, want at most the batch in flight (%d)", fake.conflicts, export.DefaultBatchSize)
	}
	// indelible export verify: the copy (as Elasticsearch hits) checks out
	// against the log up to n; dropped, altered and extra documents are
	// reported.
	var hits, tampered bytes.Buffer
	k := 0
	for _, d := range fake.docs {
		if d.Index >= n {
			continue
		}
		fmt.Fprintf(&hits, "{\"_id\":\"x\",\"_source\":%s}\n", d.raw)
		switch d.Index {
		case 5: // dropped
		case 7: // altered: the event bytes changed
			var m map[string]any
			json.Unmarshal(d.raw, &m)
			m["event_bytes"] = base64.StdEncoding.EncodeToString([]byte(`{"action":"forged"}`))
			b, _ := json.Marshal(m)
			tampered.Write(append(b, '\n'))
		default:
			tampered.Write(append(append([]byte(nil), d.raw...), '\n'))
		}
		k++
	}
	tampered.WriteString(`{"index":99999999,"event_bytes":"e30=","salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","commitment":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}` + "\n")
	hf, tf := filepath.Join(dir, "hits.ndjson"), filepath.Join(dir, "tampered.ndjson")
	os.WriteFile(hf, hits.Bytes(), 0o600)
	os.WriteFile(tf, tampered.Bytes(), 0o600)
	to := strconv.FormatInt(n, 10)
	out := mustRun(t, p.env(), "export", "verify", "--key", p.vkey, "--to", to, hf)
	if !strings.Contains(out, "0 missing, 0 altered, 0 extra") {
		t.Errorf("export verify of the full copy:\n%s", out)
	}
	out, errOut, code := run(t, p.env(), "export", "verify", "--key", p.vkey, "--to", to, tf)
	if code != 1 || !strings.Contains(out, "missing 5\n") || !strings.Contains(out, "altered 7: ") ||
		!strings.Contains(out, "extra 99999999") || !strings.Contains(out, "1 missing, 1 altered, 1 extra") {
		t.Errorf("export verify of the tampered copy: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("%d exported before the kill, %d resent after (409), %d requests", before, fake.conflicts, fake.requests)
}

// TestServeExportsRefused: a bad exports file refuses the start, naming the
// line; --exports in raw mode is refused too, and so are a public_url key
// in the file (not in its schema: --public-url replaces it), a bad
// --public-url and --public-url without --exports or --rules.
func TestServeExportsRefused(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("exports:\n  - name: x\n    type: kafka\n    url: http://127.0.0.1:1/\n"), 0o600)
	_, errOut, code := run(t, nil, "serve", "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--exports", bad)
	if code == 0 || !strings.Contains(errOut, "line 2") || !strings.Contains(errOut, `type "kafka"`) {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("exports:\n  - {name: x, type: http_ndjson, url: 'http://127.0.0.1:1/'}\n"), 0o600)
	_, errOut, code = run(t, nil, "serve", "--mode", "raw", "--data", filepath.Join(dir, "data2"), "--listen", "127.0.0.1:0", "--exports", good)
	if code == 0 || !strings.Contains(errOut, "--exports needs --mode events") {
		t.Errorf("raw mode: exit %d, stderr:\n%s", code, errOut)
	}
	old := filepath.Join(dir, "old.yaml")
	os.WriteFile(old, []byte("public_url: https://ledger.example/\nexports:\n  - {name: x, type: http_ndjson, url: 'http://127.0.0.1:1/'}\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--exports", old}, "line 1: public_url is not a key of the exports file"},
		{[]string{"--exports", good, "--public-url", "ledger.example"}, `--public-url: "ledger.example": want an absolute http:// or https:// URL`},
		{[]string{"--exports", good, "--public-url", "https://ledger.example/?x=1"}, "--public-url: "},
		{[]string{"--public-url", "https://ledger.example/"}, "--public-url is the base of the exports' receipt URLs and the alerts' console links: it needs --exports or --rules"},
	} {
		args := append([]string{"serve", "--data", filepath.Join(dir, "data3"), "--listen", "127.0.0.1:0"}, tc.args...)
		_, errOut, code = run(t, nil, args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr:\n%s", tc.args, code, errOut)
		}
	}
}
